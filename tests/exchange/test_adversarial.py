"""The exchange attacked as an adversary would, over HTTP, on SQLite and PostgreSQL.

Each test plays one attack on the exchange's trust boundaries and asserts that it does not work:
respelling the API key to dodge the rate limit, flooding random keys to reset everyone's limit, a publisher reading bids to set the reserve just below the winner's value, OpenRTB currencies
ignored, unbounded query vectors, and a publisher locking an advertiser's budget with auctions it
never bills.
"""

from __future__ import annotations

import base64
import secrets

import numpy as np
import requests

from .conftest import ADMIN_KEY, DIM, campaign_body, isolated_dims, new_advertiser, new_publisher, unit

# -- 1. rate limits hold on identity ---------------------------------------------------------------


def _codes(srv, headers_list, path="/v1/me") -> list[int]:
    s = requests.Session()
    return [s.get(srv.base + path, headers=h, timeout=30).status_code for h in headers_list]


def test_respelled_key_shares_one_bucket(server_factory, backend):
    """`Bearer<3 spaces>KEY`, `BEARER KEY`, `bearer\\tKEY `: one account, so one bucket (burst 4)."""
    srv = server_factory(backend, {"ADSPACE_RATE_LIMIT_PER_SECOND": "0.2", "ADSPACE_RATE_LIMIT_BURST": "4"})
    spellings = [f"Bearer {ADMIN_KEY}", f"Bearer   {ADMIN_KEY}", f"BEARER {ADMIN_KEY}", f"bearer\t{ADMIN_KEY} "]
    codes = _codes(srv, [{"Authorization": spellings[i % 4]} for i in range(12)])
    assert codes[:4] == [200] * 4, codes
    assert codes[4:].count(429) >= 7, codes  # at most one refill in the time the requests take


def test_several_authorization_headers_are_refused(server):
    key = ADMIN_KEY
    # requests merges duplicate keys of a dict, so send raw header lists through urllib3
    import urllib3

    http = urllib3.PoolManager()
    for junk in ("Bearer x", f"Bearer {key}", "Basic abc"):
        r = http.request(
            "GET",
            server.base + "/v1/me",
            headers=urllib3.HTTPHeaderDict([("Authorization", f"Bearer {key}"), ("Authorization", junk)]),
        )
        assert r.status == 400, (r.status, r.data)
        assert b"Authorization" in r.data


def test_random_key_flood_neither_resets_nor_escapes(server_factory, backend):
    """Unknown keys are limited by address; a flood of them cannot reset an account's bucket
    (the tables are bounded by LRU eviction, per class, never cleared)."""
    srv = server_factory(
        backend,
        {
            "ADSPACE_RATE_LIMIT_PER_SECOND": "0.2",
            "ADSPACE_RATE_LIMIT_BURST": "3",
            "ADSPACE_RATE_LIMIT_ADDRESS_PER_SECOND": "0.2",
            "ADSPACE_RATE_LIMIT_ADDRESS_BURST": "5",
            "ADSPACE_RATE_LIMIT_TABLE_SIZE": "16",
        },
    )
    admin = [{"Authorization": f"Bearer {ADMIN_KEY}"}] * 5
    codes = _codes(srv, admin)
    assert codes[:3] == [200] * 3 and codes[3:] == [429, 429], codes
    flood = [{"Authorization": f"Bearer adsk_adv_{secrets.token_urlsafe(32)}"} for _ in range(40)]
    codes = _codes(srv, flood)
    # Each unknown key is looked up only with a token of its address (the admin's first, uncached lookup
    # took one of the 5), then the address runs out: no fresh bucket per key.
    assert codes[:4] == [401] * 4, codes
    assert codes[4:].count(429) >= 34, codes
    assert _codes(srv, admin[:1]) == [429]  # the admin's bucket was neither reset nor evicted


def test_limits_per_account_kind(server_factory, backend):
    srv = server_factory(
        backend,
        {
            "ADSPACE_RATE_LIMIT_PER_SECOND": "5000",
            "ADSPACE_RATE_LIMIT_BURST": "5000",
            "ADSPACE_RATE_LIMIT_PUBLISHER_PER_SECOND": "0.2",
            "ADSPACE_RATE_LIMIT_PUBLISHER_BURST": "2",
        },
    )
    pub, adv = new_publisher(srv), new_advertiser(srv)
    assert [pub.get("/v1/me").status_code for _ in range(4)][2:] == [429, 429]
    assert [adv.get("/v1/me").status_code for _ in range(4)] == [200] * 4


# -- 3. OpenRTB currency ---------------------------------------------------------------------------


def _aa(x) -> str:
    return base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode()


def rtb_request(x, *, cur=None, rid="r1", floor=None, floorcur=None) -> dict:
    imp = {"id": "1", "native": {"request": "{}", "ver": "1.2"}}
    if floor is not None:
        imp["bidfloor"] = floor
    if floorcur is not None:
        imp["bidfloorcur"] = floorcur
    req = {
        "id": rid,
        "imp": [imp],
        "user": {
            "data": [
                {
                    "segment": [
                        {"ext": {"aa": {"ver": "1.0", "vector": _aa(x), "dimension": DIM, "model": "all-MiniLM-L6-v2"}}}
                    ]
                }
            ]
        },
    }
    if cur is not None:
        req["cur"] = cur
    return req


def test_openrtb_cur_without_the_exchange_currency_gets_no_bid(server_factory, backend):
    """The exchange's currency is a setting; a request allowing only other currencies is not bid on."""
    srv = server_factory(backend, {"ADSPACE_CURRENCY": "EUR"})
    adv, pub = new_advertiser(srv), new_publisher(srv)
    (d,) = isolated_dims(1)
    adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(unit(d), sigma=1.0, bid=2_000_000))
    r = pub.post("/openrtb2/auction", json=rtb_request(unit(d), cur=["USD"]))
    assert r.status_code == 200, r.text
    assert r.json()["nbr"] == 2 and "seatbid" not in r.json()
    assert "EUR" in r.json()["ext"]["adspace"]["reason"]
    assert pub.ok("GET", "/v1/auctions") == []  # nothing was auctioned, nothing held
    got = pub.ok("POST", "/openrtb2/auction", json=rtb_request(unit(d), cur=["USD", "EUR"]))
    assert got["cur"] == "EUR" and len(got["seatbid"][0]["bid"]) == 1
    # a floor in another currency: no bid on that imp (no conversion)
    assert pub.post("/openrtb2/auction", json=rtb_request(unit(d), floor=0.5, floorcur="USD")).status_code == 204


# -- 4. bounds everywhere --------------------------------------------------------------------------


def test_vectors_are_bounded_on_every_path(server):
    adv, pub = new_advertiser(server), new_publisher(server)
    huge = np.zeros(DIM)
    huge[3] = 3e38  # a finite float32: used to be accepted over OpenRTB, and fill
    r = pub.post("/openrtb2/auction", json=rtb_request(huge))
    assert r.status_code == 400 and "ext.aa.vector[3]" in r.json()["detail"], r.text
    wide = np.full(DIM, 1e5)  # every element in bounds, the norm (1.96e6) not
    r = pub.post("/openrtb2/auction", json=rtb_request(wide))
    assert r.status_code == 400 and "ext.aa.vector: its norm" in r.json()["detail"], r.text
    for path, who, extra in (
        ("/v1/auctions", pub, {}),
        ("/v1/dashboard/market", adv, {}),
        ("/v1/campaigns", adv, {k: v for k, v in campaign_body().items() if k != "embedding"}),
    ):
        for bad, needle in ((huge.tolist(), "embedding[3]"), (wide.tolist(), "embedding: its norm")):
            r = who.post(path, json={**extra, "embedding": bad})
            assert r.status_code == 422, (path, r.text)
            assert needle in r.text, (path, r.text)
        r = who.post(path, json={**extra, "embedding": [0.0] * (DIM - 1)})
        assert r.status_code == 422 and "dimension" in r.text, (path, r.text)


# -- 2. publishers cannot learn bids ---------------------------------------------------------------


def _numbers(obj) -> list[float]:
    """Every number anywhere in a JSON value."""
    if isinstance(obj, bool) or obj is None:
        return []
    if isinstance(obj, int | float):
        return [float(obj)]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _numbers(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in _numbers(x)]
    return []


def _leaks(obj, value: float) -> bool:
    """Whether ``value`` (a bid) or its log (a score) is anywhere in ``obj``."""
    return any(abs(v - value) < 1.0 or abs(v - np.log(value)) < 1e-6 for v in _numbers(obj))


def test_reserve_manipulation_has_nothing_to_read(server_factory, backend):
    """The attack: read the winner's reported value (at its center, its bid), set reserve = value - 1,
    and the winner pays 2,999,999 micros instead of its Clarke price of 2,000,000. Every answer a
    publisher gets -- the auction, its reads, OpenRTB, the market map -- no longer holds that value."""
    srv = server_factory(backend)
    a, b, pub = new_advertiser(srv, "A"), new_advertiser(srv, "B"), new_publisher(srv)
    (d,) = isolated_dims(1)
    x = unit(d)
    win = a.ok("POST", "/v1/campaigns", 201, json=campaign_body(x, sigma=1.0, bid=3_000_000, name="A-shoes"))["id"]
    b.ok("POST", "/v1/campaigns", 201, json=campaign_body(x, sigma=1.0, bid=2_000_000, name="B-shoes"))
    seen = []
    out = pub.ok("POST", "/v1/auctions", json={"embedding": x})
    assert out["ad"]["campaign_id"] == win and out["price_micros"] == 2_000_000
    seen += [out, pub.ok("GET", f"/v1/auctions/{out['auction_id']}"), pub.ok("GET", "/v1/auctions")]
    rtb = pub.ok("POST", "/openrtb2/auction", json=rtb_request(x))
    assert rtb["seatbid"][0]["bid"][0]["ext"]["adspace"]["price_micros"] == 2_000_000
    seen.append(rtb)
    m = pub.ok("POST", "/v1/dashboard/market", json={"embedding": x})
    seen += [m, pub.ok("POST", "/v1/dashboard/market", json={"embedding": x, "run": True})]
    seen.append(pub.ok("GET", "/v1/dashboard/projection"))
    for body in seen:
        assert not _leaks(body, 3_000_000), body
    assert m["outcome"]["price_micros"] == 2_000_000 and m["outcome"]["winner"] == "A-shoes"
    assert {r["name"] for r in m["campaigns"]} >= {"A-shoes", "B-shoes"}  # names and kinds are public
    # Bisecting fill / no fill over reserves on the free map would find it: a publisher names a reserve
    # only on a real, recorded auction.
    r = pub.post("/v1/dashboard/market", json={"embedding": x, "reserve_micros": 2_999_999})
    assert r.status_code == 403 and "reserve_micros" in r.json()["detail"]
    # The largest price-like number it saw is the price itself: a reserve there changes nothing.
    guess = int(max(v for v in _numbers(seen) if v < 10**8))
    assert guess == 2_000_000
    assert (
        pub.ok("POST", "/v1/auctions", json={"embedding": x, "reserve_micros": guess - 1})["price_micros"] == 2_000_000
    )
    # (What the information used to buy: the reserve the old explain gave away.)
    assert (
        pub.ok("POST", "/v1/auctions", json={"embedding": x, "reserve_micros": 2_999_999})["price_micros"] == 2_999_999
    )
    # The admin sees everything (the stored explain is complete).
    log = srv.api(ADMIN_KEY).ok("GET", "/v1/dashboard/auctions")["auctions"]
    full = next(e["explain"] for e in log if e["auction_id"] == out["auction_id"])
    assert full["winner"]["value_micros"] == 3_000_000


def test_advertiser_never_sees_a_competitors_bid(server_factory, backend):
    srv = server_factory(backend)
    a, b = new_advertiser(srv, "A"), new_advertiser(srv, "B")
    (d,) = isolated_dims(1)
    x = unit(d)
    a.ok("POST", "/v1/campaigns", 201, json=campaign_body(x, sigma=1.0, bid=3_000_000, name="A-shoes"))
    b_id = b.ok("POST", "/v1/campaigns", 201, json=campaign_body(x, sigma=1.0, bid=2_000_000, name="B-shoes"))["id"]
    m = b.ok("POST", "/v1/dashboard/market", json={"embedding": x})
    assert not _leaks(m, 3_000_000), m  # A's bid, value and score
    assert m["outcome"]["price_micros"] is None  # the price would be B's own value here, but in general a rival's
    mine = next(r for r in m["campaigns"] if r["campaign_id"] == b_id)
    assert abs(mine["value_micros"] - 2_000_000) < 1e-6  # its own campaign in full
    assert b.post("/v1/dashboard/market", json={"embedding": x, "reserve_micros": 1}).status_code == 403
    y = np.asarray(x)
    y[(d + 1) % DIM] = 0.5
    sl = b.ok("POST", "/v1/dashboard/slice", json={"a": b_id, "b": "query", "embedding": y.tolist()})
    assert [c["campaign_id"] for c in sl["curves"]] == [b_id]  # no rival curve, not even "others (best)"
    assert not _leaks(sl, 3_000_000), sl


# -- 5. budget griefing ----------------------------------------------------------------------------


def test_unbilled_auctions_cannot_lock_a_budget(server_factory, backend):
    """A publisher runs auctions it never bills. Before: 14 of them held 28 of the victim's 30 units for
    the hold period (15 min), and no other publisher could show it. Now its holds against one campaign
    stop at max(10 % of the budget, one bid); every other publisher still gets the campaign."""
    srv = server_factory(backend)
    victim_adv, twin_adv = new_advertiser(srv, "victim"), new_advertiser(srv, "twin")
    attacker, honest = new_publisher(srv, "attacker"), new_publisher(srv, "honest")
    (d,) = isolated_dims(1)
    x = unit(d)
    victim = victim_adv.ok(
        "POST", "/v1/campaigns", 201, json=campaign_body(x, sigma=1.0, bid=3_000_000, budget=30_000_000)
    )["id"]
    twin_adv.ok("POST", "/v1/campaigns", 201, json=campaign_body(x, sigma=1.0, bid=2_000_000))
    outs = [attacker.ok("POST", "/v1/auctions", json={"embedding": x}) for _ in range(20)]
    wins = [o for o in outs if o["ad"]["campaign_id"] == victim]
    assert len(wins) == 1  # 2,000,000 held; one more bid (3,000,000) would pass the cap of 3,000,000
    assert outs[-1]["explain"]["excluded"]["publisher_holds"] == 1  # said in the explain, in words
    c = victim_adv.ok("GET", f"/v1/campaigns/{victim}")
    assert c["held_micros"] == 2_000_000 and c["remaining_micros"] == 28_000_000
    assert honest.ok("POST", "/v1/auctions", json={"embedding": x})["ad"]["campaign_id"] == victim
    # Billing what it showed frees the attacker's share: the victim is back in its auctions.
    attacker.ok("POST", f"/v1/auctions/{wins[0]['auction_id']}/billing")
    assert attacker.ok("POST", "/v1/auctions", json={"embedding": x})["ad"]["campaign_id"] == victim
