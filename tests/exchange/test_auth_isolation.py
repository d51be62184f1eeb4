"""Auth and isolation matrix: every endpoint, with a missing, unknown, wrong-role or foreign key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import ADMIN_KEY, campaign_body, new_advertiser, new_publisher, rand_unit


@pytest.fixture
def world(server):
    rng = np.random.default_rng()
    a, b = new_advertiser(server, "A"), new_advertiser(server, "B")
    p, q = new_publisher(server, "P"), new_publisher(server, "Q")
    home = rand_unit(rng)
    camp = a.ok("POST", "/v1/campaigns", 201, json=campaign_body(home, sigma=0.2, bid=5_000_000, name="secret-A"))
    auction = p.ok("POST", "/v1/auctions", json={"embedding": home})
    assert auction["filled"] and auction["ad"]["campaign_id"] == camp["id"]
    p.ok("POST", f"/v1/auctions/{auction['auction_id']}/billing")
    return {"A": a, "B": b, "P": p, "Q": q, "camp": camp["id"], "auction": auction["auction_id"], "home": home}


def endpoints(w):
    c, au = w["camp"], w["auction"]
    patch = {"json": {"name": "renamed"}}
    return [
        # (method, path, kwargs, role that may call it, owner who sees it: None = any of the role)
        ("POST", "/v1/advertisers", {"json": {"name": "x"}}, "admin", None),
        ("GET", "/v1/advertisers", {}, "admin", None),
        ("POST", "/v1/publishers", {"json": {"name": "x"}}, "admin", None),
        ("GET", "/v1/publishers", {}, "admin", None),
        ("GET", "/v1/ledger/check", {}, "admin", None),
        ("GET", "/v1/stats", {}, "admin", None),
        ("POST", "/v1/campaigns", {"json": campaign_body(w["home"], sigma=0.2, status="paused")}, "advertiser", None),
        ("GET", "/v1/campaigns", {}, "advertiser", None),
        ("GET", f"/v1/campaigns/{c}", {}, "advertiser", "A"),
        ("PATCH", f"/v1/campaigns/{c}", patch, "advertiser", "A"),
        ("GET", "/v1/reports/campaigns", {}, "advertiser", None),
        ("GET", "/v1/reports/campaigns?format=csv", {}, "advertiser", None),
        ("POST", "/v1/auctions", {"json": {"embedding": w["home"], "reserve_micros": 10**12}}, "publisher", None),
        ("GET", "/v1/auctions", {}, "publisher", None),
        ("GET", f"/v1/auctions/{au}", {}, "publisher", "P"),
        ("POST", f"/v1/auctions/{au}/billing", {}, "publisher", "P"),
        ("POST", f"/v1/auctions/{au}/click", {}, "publisher", "P"),
        (
            "POST",
            "/openrtb2/auction",
            {
                "json": {
                    "id": "r1",
                    "imp": [{"id": "1", "native": {"request": "{}"}}],
                    "site": {"keywords": "no such kw"},
                }
            },
            "publisher",
            None,
        ),
        ("GET", "/v1/me", {}, None, None),
        ("GET", "/v1/ledger", {}, None, None),
        ("DELETE", f"/v1/campaigns/{c}", {}, "advertiser", "A"),  # last: it removes the campaign
    ]


def test_auth_and_isolation_matrix(server, world):
    w = world
    callers = {
        "none": (server.api(None), None, None),
        "unknown": (server.api("adsk_adv_" + "x" * 43), None, None),
        "malformed": (server.api("not a key at all"), None, None),
        "admin": (server.api(ADMIN_KEY), "admin", "admin"),
        "A": (w["A"], "advertiser", "A"),
        "B": (w["B"], "advertiser", "B"),
        "P": (w["P"], "publisher", "P"),
        "Q": (w["Q"], "publisher", "Q"),
    }
    secrets_of_others = {"B": [w["camp"], "secret-A"], "Q": [w["auction"]]}
    for method, path, kw, role, owner in endpoints(w):
        # Foreign and wrong-role callers first, so the owner's DELETE comes last.
        for name in ["none", "unknown", "malformed", "admin", "B", "Q", "P", "A"]:
            api, kind, who = callers[name]
            r = api.request(method, path, **kw)
            ctx = (method, path, name, r.status_code, r.text[:300])
            if kind is None:
                assert r.status_code == 401, ctx
                assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), ctx
            elif role is not None and kind != role:
                assert r.status_code == 403, ctx
            elif owner is not None and who != owner:
                assert r.status_code == 404, ctx
            else:
                assert r.status_code < 300 or (path.endswith("/click") and r.status_code == 200), ctx
            for leak in secrets_of_others.get(name, []):
                if leak not in path:  # an error may echo the id the caller sent, nothing else
                    assert leak not in r.text, ("leak", *ctx)


def test_lists_show_only_own(server, world):
    w = world
    assert all(c["advertiser_id"] == w["B"].id for c in w["B"].ok("GET", "/v1/campaigns"))
    assert w["camp"] in json.dumps(w["A"].ok("GET", "/v1/campaigns"))
    assert w["camp"] not in w["B"].get("/v1/reports/campaigns?format=csv").text
    assert w["auction"] not in w["Q"].get("/v1/auctions").text
    assert w["auction"] in w["P"].get("/v1/auctions").text
    assert w["auction"] not in w["Q"].get("/v1/ledger").text
    assert w["auction"] not in w["B"].get("/v1/ledger").text
    a_ledger = w["A"].ok("GET", "/v1/ledger")
    assert [e["account"] for e in a_ledger["entries"]] == [f"advertiser:{w['A'].id}"]


def test_keys_are_random_hashed_and_rotatable(server):
    a = new_advertiser(server)
    key = a.key
    assert key.startswith("adsk_adv_") and len(key) >= 9 + 43  # 32 random bytes, base64url
    other = new_advertiser(server)
    assert other.key != key
    new = server.api(ADMIN_KEY).ok("POST", f"/v1/accounts/{a.id}/keys", 201)
    assert a.get("/v1/me").status_code == 401  # the old key stops working
    assert server.api(new["api_key"]).ok("GET", "/v1/me")["id"] == a.id
    # the database holds no key, only hashes
    from sqlalchemy import text

    with server.db.engine().connect() as conn:
        hashes = [r[0] for r in conn.execute(text("select key_hash from api_keys"))]
        dump = json.dumps([list(map(str, r)) for r in conn.execute(text("select * from api_keys"))])
    assert key not in dump and new["api_key"] not in dump
    assert all(len(h) == 64 for h in hashes)


def test_rate_limit_429(server_factory, backend):
    srv = server_factory(backend, {"ADSPACE_RATE_LIMIT_PER_SECOND": "1", "ADSPACE_RATE_LIMIT_BURST": "5"})
    api = srv.api(ADMIN_KEY)
    codes = [api.get("/v1/me").status_code for _ in range(12)]
    assert codes[:5] == [200] * 5
    assert 429 in codes[5:]
    r = api.get("/v1/me")
    if r.status_code == 429:
        assert int(r.headers["retry-after"]) >= 1
    # another key has its own bucket
    other = new_advertiser_with_backoff(srv)
    assert other.get("/v1/me").status_code == 200


def new_advertiser_with_backoff(srv):
    import time

    for _ in range(30):
        r = srv.api(ADMIN_KEY).post("/v1/advertisers", json={"name": "late"})
        if r.status_code == 201:
            return srv.api(r.json()["api_key"])
        time.sleep(0.5)
    raise AssertionError("rate limit never refilled")


def test_body_limit_413(server):
    adv = new_advertiser(server)
    big = {"name": "x" * 300_000}
    r = adv.post("/v1/campaigns", json=big)
    assert r.status_code == 413, r.text
    assert "body" in r.json()["detail"]

    # chunked upload without Content-Length is limited too
    def gen():
        for _ in range(400):
            yield b"x" * 1024

    r = adv.post("/v1/campaigns", data=gen(), headers={"content-type": "application/json"})
    assert r.status_code == 413
