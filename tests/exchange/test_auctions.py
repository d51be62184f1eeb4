"""Auctions over HTTP: Clarke-pivot prices in whole micros, reserve, eligibility, holds, explain, ids.

Tests on the shared server work around their own random direction ``home`` with σ <= 0.2, so
campaigns of other tests (at squared distance >= ~1.5) have reported values below 1e-15 micros here.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from .conftest import ADMIN_KEY, campaign_body, new_advertiser, new_publisher, rand_unit


def value(x, c, sigma, bid):
    x, c = np.asarray(x), np.asarray(c)
    return bid * math.exp(-float(np.sum((x - c) ** 2)) / sigma**2)


def near(rng, home, scale):
    v = np.asarray(home) + scale * rng.normal(size=len(home)) / math.sqrt(len(home))
    return v.tolist()


@pytest.fixture
def rng():
    return np.random.default_rng()


def test_price_is_clarke_pivot_in_micros(server, rng):
    adv, pub = new_advertiser(server), new_publisher(server)
    home = rand_unit(rng)
    specs = []
    for _ in range(5):
        c = near(rng, home, 0.15)
        sigma = float(rng.uniform(0.1, 0.2))
        bid = int(rng.integers(1_000_000, 9_000_000))
        cid = adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(c, sigma=sigma, bid=bid))["id"]
        specs.append((cid, c, sigma, bid))
    for _ in range(10):
        x = near(rng, home, 0.1)
        out = pub.ok("POST", "/v1/auctions", json={"embedding": x})
        values = sorted(((value(x, c, s, b), cid, b) for cid, c, s, b in specs), reverse=True)
        (v1, w, bid_w), (v2, _, _) = values[0], values[1]
        assert out["filled"] and out["ad"]["campaign_id"] == w
        assert out["ad"]["label"] == "Sponsored"
        assert out["price_micros"] == math.floor(v2) or abs(out["price_micros"] - v2) < 1 + 1e-6 * v2
        assert out["price_micros"] <= bid_w
        ex = out["explain"]  # the publisher's share: the winner, no score or value (services/visibility.py)
        assert ex["winner"] == {"campaign_id": w} and "runner_up" not in ex
        # the stored explain is complete: the admin's auction log checks the scores
        log = server.api(ADMIN_KEY).ok("GET", "/v1/dashboard/auctions", params={"limit": 50})["auctions"]
        full = next(a["explain"] for a in log if a["auction_id"] == out["auction_id"])
        assert full["winner"]["score"] == pytest.approx(math.log(v1), rel=1e-9, abs=1e-9)
        assert full["runner_up"]["score"] == pytest.approx(math.log(v2), rel=1e-9, abs=1e-9)


def test_unopposed_pays_reserve_and_reserve_blocks(server, rng):
    adv, pub = new_advertiser(server), new_publisher(server)
    home = rand_unit(rng)
    cid = adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=2_000_000))["id"]
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home})
    assert out["filled"] and out["ad"]["campaign_id"] == cid and out["price_micros"] == 0
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 1_500_000})
    assert out["filled"] and out["price_micros"] == 1_500_000
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 2_000_000})
    assert out["filled"] and out["price_micros"] == 2_000_000  # reserve == value at the center: still filled
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 2_000_001})
    assert not out["filled"] and out["ad"] is None and out["price_micros"] == 0
    assert out["explain"]["reason"].startswith("below_reserve")


def test_auction_ids_are_unguessable(server, rng):
    pub = new_publisher(server)
    ids = [pub.ok("POST", "/v1/auctions", json={"embedding": rand_unit(rng)})["auction_id"] for _ in range(20)]
    assert len(set(ids)) == len(ids)
    # "auc_", a 9-digit time prefix (ids of one moment are neighbours in the database's index), then
    # 128 random bits: neighbours' random parts share no long prefix (not sequential).
    for i in ids:
        assert i.startswith("auc_") and len(i) == 4 + 9 + 22
    assert [i[4:13] for i in ids] == sorted(i[4:13] for i in ids)  # the prefix follows creation time
    randoms = [i[13:] for i in ids]
    common = [len(__import__("os").path.commonprefix([a, b])) for a, b in zip(randoms, randoms[1:], strict=False)]
    assert max(common) < 6


def test_eligibility_paused_schedule_budget_daily(server_factory, backend, rng):
    srv = server_factory(backend)
    adv, pub = new_advertiser(srv), new_publisher(srv)
    home = rand_unit(rng)
    now = datetime.now(UTC)
    mk = lambda **kw: adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, **kw))["id"]  # noqa: E731
    paused = mk(bid=9_000_000, status="paused")
    future = mk(bid=8_000_000, starts_at=(now + timedelta(days=1)).isoformat())
    mk(bid=7_500_000, ends_at=(now - timedelta(seconds=1)).isoformat())
    poor = mk(bid=7_000_000, budget=6_999_999)
    capped = mk(bid=6_000_000, daily_budget_micros=5_000_000)
    ok1 = mk(bid=3_000_000)
    ok2 = mk(bid=2_000_000)
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home})
    ex = out["explain"]
    assert out["ad"]["campaign_id"] == ok1 and out["price_micros"] == 2_000_000
    assert ex["campaigns_total"] == 7 and ex["considered"] == 2
    assert ex["excluded"] == {
        "paused": 1,
        "schedule": 2,
        "budget": 1,
        "daily_budget": 1,
        "publisher_holds": 0,
        "keyword": 0,
        "relevance": 0,
    }
    # a change is visible to the next auction
    adv.ok("PATCH", f"/v1/campaigns/{paused}", json={"status": "active"})
    assert pub.ok("POST", "/v1/auctions", json={"embedding": home})["ad"]["campaign_id"] == paused
    adv.ok("PATCH", f"/v1/campaigns/{paused}", json={"status": "paused"})
    adv.ok("PATCH", f"/v1/campaigns/{future}", json={"starts_at": None})
    assert pub.ok("POST", "/v1/auctions", json={"embedding": home})["ad"]["campaign_id"] == future
    adv.ok("DELETE", f"/v1/campaigns/{future}", status=204)
    assert adv.get(f"/v1/campaigns/{future}").status_code == 404
    # poor: raise its budget and it competes (capped is out by its daily budget, so ok1 sets the price)
    adv.ok("PATCH", f"/v1/campaigns/{poor}", json={"budget_micros": 7_000_000})
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home})
    assert out["ad"]["campaign_id"] == poor and out["price_micros"] == 3_000_000
    # its price is now held: 4,000,000 remains < its 7,000,000 bid, so it is out until the hold goes
    c = adv.ok("GET", f"/v1/campaigns/{poor}")
    assert c["held_micros"] == 3_000_000 and c["remaining_micros"] == 4_000_000
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home})
    assert out["ad"]["campaign_id"] == ok1 and out["price_micros"] == 2_000_000
    assert out["explain"]["excluded"]["budget"] == 1 and out["explain"]["excluded"]["daily_budget"] == 1
    # daily budget: 10,000,000 a day covers two wins at 3,000,000 (held), not a third 6,000,000 bid
    adv.ok("PATCH", f"/v1/campaigns/{capped}", json={"daily_budget_micros": 10_000_000})
    for _ in range(2):
        out = pub.ok("POST", "/v1/auctions", json={"embedding": home})
        assert out["ad"]["campaign_id"] == capped and out["price_micros"] == 3_000_000
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home})
    assert out["ad"]["campaign_id"] == ok1 and out["explain"]["excluded"]["daily_budget"] == 1
    assert out["price_micros"] == 2_000_000 and ok2  # ok2 sets the price


def test_tau_relevance_gate(server, rng):
    adv, pub = new_advertiser(server), new_publisher(server)
    home = rand_unit(rng)
    far = near(rng, home, 0.3)
    d2 = float(np.sum((np.asarray(far) - np.asarray(home)) ** 2))
    adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(far, sigma=0.2, bid=9_000_000))
    close = adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=1_000_000))["id"]
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home, "tau": d2 / 2})
    assert out["ad"]["campaign_id"] == close
    assert out["explain"]["excluded"]["relevance"] >= 1


def test_hold_released_when_unbilled_auction_expires(server_factory, backend, rng):
    srv = server_factory(backend, {"ADSPACE_HOLD_SECONDS": "1", "ADSPACE_SWEEP_SECONDS": "0.2"})
    adv, pub = new_advertiser(srv), new_publisher(srv)
    home = rand_unit(rng)
    cid = adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=1_000_000, budget=1_000_000))[
        "id"
    ]
    out = pub.ok("POST", "/v1/auctions", json={"embedding": home, "reserve_micros": 1_000_000})
    assert out["filled"]
    assert adv.ok("GET", f"/v1/campaigns/{cid}")["held_micros"] == 1_000_000
    assert not pub.ok("POST", "/v1/auctions", json={"embedding": home})["filled"]  # budget held
    deadline = time.monotonic() + 15
    while adv.ok("GET", f"/v1/campaigns/{cid}")["held_micros"] != 0:
        assert time.monotonic() < deadline, "hold never released"
        time.sleep(0.2)
    r = pub.post(f"/v1/auctions/{out['auction_id']}/billing")
    assert r.status_code == 410 and "expired" in r.json()["detail"]
    assert pub.ok("GET", f"/v1/auctions/{out['auction_id']}")["status"] == "expired"
    again = pub.ok("POST", "/v1/auctions", json={"embedding": home})
    assert again["filled"] and again["ad"]["campaign_id"] == cid
