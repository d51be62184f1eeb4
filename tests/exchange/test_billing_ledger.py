"""Billing exactly once, the double-entry ledger, clicks and reports."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sqlalchemy import text

from .conftest import ADMIN_KEY, Api, campaign_body, new_advertiser, new_publisher, rand_unit


def ledger_invariants(engine) -> None:
    """Postings sum to zero, per transaction and in all; one charge per billed auction; spend = prices."""
    with engine.connect() as conn:
        q = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
        assert q("select coalesce(sum(amount_micros), 0) from ledger_postings")[0][0] == 0
        assert (
            q("select transaction_id from ledger_postings group by transaction_id having sum(amount_micros) <> 0") == []
        )
        assert q("select auction_id from ledger_transactions group by auction_id, kind having count(*) > 1") == []
        billed = {r[0]: r[1] for r in q("select id, price_micros from auctions where status = 'billed'")}
        charged = {r[0] for r in q("select auction_id from ledger_transactions where kind = 'charge'")}
        assert charged == set(billed)
        # each advertiser's spend (its ledger debits) equals the sum of its billed prices
        debits = dict(
            q(
                "select a.owner_id, -sum(p.amount_micros) from ledger_postings p join ledger_accounts a "
                "on a.id = p.account_id where a.owner_kind = 'advertiser' group by a.owner_id"
            )
        )
        prices = dict(
            q("select advertiser_id, sum(price_micros) from auctions where status = 'billed' group by advertiser_id")
        )
        assert {k: int(v) for k, v in debits.items()} == {k: int(v) for k, v in prices.items()}
        spent = dict(q("select id, spent_micros from campaigns"))
        per_campaign = dict(
            q("select campaign_id, sum(price_micros) from auctions where status = 'billed' group by campaign_id")
        )
        for cid, s in spent.items():
            assert int(s) == int(per_campaign.get(cid, 0)), cid
        held = dict(q("select id, held_micros from campaigns"))
        per_hold = dict(
            q("select campaign_id, sum(price_micros) from auctions where status = 'held' group by campaign_id")
        )
        for cid, h in held.items():
            assert int(h) == int(per_hold.get(cid, 0)), cid


def test_same_notice_100_times_in_parallel_charges_once(server):
    rng = np.random.default_rng()
    adv, pub = new_advertiser(server), new_publisher(server)
    home = rand_unit(rng)
    cid = adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=4_000_000))["id"]
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 1_234_567})
    aid = out["auction_id"]

    def notice(_):
        api = Api(server.base, pub.key)
        r = api.post(f"/v1/auctions/{aid}/billing")
        return r.status_code, r.json()

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(notice, range(100)))
    assert {code for code, _ in results} == {200}
    bodies = {tuple(sorted(b.items())) for _, b in results}
    assert len(bodies) == 1  # every answer is the same result
    body = results[0][1]
    assert body["price_micros"] == 1_234_567 and body["campaign_id"] == cid
    entries = adv.ok("GET", "/v1/ledger")["entries"]
    assert [e["amount_micros"] for e in entries if e["auction_id"] == aid] == [-1_234_567]
    c = adv.ok("GET", f"/v1/campaigns/{cid}")
    assert c["spent_micros"] == 1_234_567 and c["held_micros"] == 0
    ledger_invariants(server.db.engine())


def test_revenue_share_and_ledger_views(server_factory, backend):
    srv = server_factory(backend, {"ADSPACE_PUBLISHER_SHARE_BPS": "7000"})
    rng = np.random.default_rng()
    adv, pub = new_advertiser(srv), new_publisher(srv)
    home = rand_unit(rng)
    adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=4_000_000))
    aid = pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 1_000_001})["auction_id"]
    bill = pub.ok("POST", f"/v1/auctions/{aid}/billing")
    assert bill["publisher_micros"] == 700_000 and bill["exchange_micros"] == 300_001  # floor for the publisher
    assert pub.ok("GET", "/v1/ledger")["balance_micros"] == 700_000
    assert adv.ok("GET", "/v1/ledger")["balance_micros"] == -1_000_001
    admin = srv.api(ADMIN_KEY)
    assert admin.ok("GET", "/v1/ledger")["balance_micros"] == 300_001
    check = admin.ok("GET", "/v1/ledger/check")
    assert check["balanced"] and check["transactions"] == 1
    ledger_invariants(srv.db.engine())


def test_click_and_reports(server):
    rng = np.random.default_rng()
    adv, pub = new_advertiser(server), new_publisher(server)
    home = rand_unit(rng)
    c1 = adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=3_000_000, name="one"))["id"]
    c2 = adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(rand_unit(rng), sigma=0.2, bid=1_000_000, name="two"))[
        "id"
    ]
    ids = [
        pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 1_000_000 + i})["auction_id"]
        for i in range(3)
    ]
    r = pub.post(f"/v1/auctions/{ids[0]}/click")
    assert r.status_code == 409 and "bill" in r.json()["detail"]
    for aid in ids[:2]:
        pub.ok("POST", f"/v1/auctions/{aid}/billing")
    first = pub.ok("POST", f"/v1/auctions/{ids[0]}/click")
    assert pub.ok("POST", f"/v1/auctions/{ids[0]}/click") == first  # once
    rep = {r["campaign_id"]: r for r in adv.ok("GET", "/v1/reports/campaigns")["campaigns"]}
    assert rep[c1]["wins"] == 3 and rep[c1]["impressions"] == 2 and rep[c1]["clicks"] == 1
    assert rep[c1]["spend_micros"] == 2_000_001 and rep[c1]["avg_price_micros"] == 1_000_000
    assert rep[c1]["ctr"] == 0.5
    assert rep[c2]["wins"] == 0 and rep[c2]["spend_micros"] == 0
    resp = adv.get("/v1/reports/campaigns?format=csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert {r["campaign_id"] for r in rows} == {c1, c2}
    assert next(r for r in rows if r["campaign_id"] == c1)["spend_micros"] == "2000001"
    # a publisher's auction view
    a = pub.ok("GET", f"/v1/auctions/{ids[0]}")
    assert a["status"] == "billed" and a["clicked_at"] == first["clicked_at"]
    assert pub.ok("GET", f"/v1/auctions/{ids[2]}")["status"] == "held"
    ledger_invariants(server.db.engine())


def test_ledger_pagination(server):
    rng = np.random.default_rng()
    adv, pub = new_advertiser(server), new_publisher(server)
    home = rand_unit(rng)
    adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=3_000_000))
    for _ in range(5):
        aid = pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 10})["auction_id"]
        pub.ok("POST", f"/v1/auctions/{aid}/billing")
    seen, after = [], 0
    while True:
        page = adv.ok("GET", f"/v1/ledger?limit=2&after={after}")
        seen += page["entries"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert len(seen) == 5 and page["balance_micros"] == -50
