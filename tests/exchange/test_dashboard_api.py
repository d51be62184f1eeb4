"""The dashboard's JSON views over HTTP: the market map agrees with the real auction, slices are the
kernel's envelope, who sees what, and the series count what was billed.

Campaigns sit around a random direction ``home`` with σ <= 0.2 so other tests' campaigns on the shared
server are irrelevant there; ``tau`` gates them out where a test needs an exact set of bidders.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adspace.mechanisms.vcg import Market, clear

from .conftest import ADMIN_KEY, campaign_body, new_advertiser, new_publisher, rand_unit


def near(rng, home, scale):
    v = np.asarray(home) + scale * rng.normal(size=len(home)) / math.sqrt(len(home))
    return v.tolist()


@pytest.fixture
def rng():
    return np.random.default_rng()


@pytest.fixture
def world(server, rng):
    a, b = new_advertiser(server, "A"), new_advertiser(server, "B")
    pub = new_publisher(server, "P")
    home = rand_unit(rng)
    specs = []
    for adv, name, bid in (
        (a, "alpha-1", 3_000_000),
        (a, "alpha-2", 2_000_000),
        (b, "beta-1", 2_500_000),
        (b, "beta-2", 1_000_000),
    ):
        c = near(rng, home, 0.1)
        sigma = float(rng.uniform(0.12, 0.2))
        body = campaign_body(c, sigma=sigma, bid=bid, name=name)
        cid = adv.ok("POST", "/v1/campaigns", 201, json=body)["id"]
        specs.append({"id": cid, "name": name, "center": c, "sigma": sigma, "bid": bid, "adv": adv})
    return {"A": a, "B": b, "P": pub, "home": home, "specs": specs}


def test_market_map_matches_the_real_auction(world, rng):
    pub, specs = world["P"], world["specs"]
    admin = pub.__class__(pub.base, ADMIN_KEY)
    # Two campaigns that cannot compete, for the reasons the exchange gives (its explain must agree).
    b = world["B"]
    for name, kw in (("beta-paused", {"status": "paused"}), ("beta-poor", {"budget": 10})):
        body = campaign_body(near(rng, world["home"], 0.1), sigma=0.15, bid=9_000_000, name=name, **kw)
        b.ok("POST", "/v1/campaigns", 201, json=body)
    for _ in range(5):
        x = near(rng, world["home"], 0.08)
        body = {"embedding": x, "tau": 0.5}
        m = admin.ok("POST", "/v1/dashboard/market", json=body)
        rows = {r["campaign_id"]: r for r in m["campaigns"] if r["campaign_id"]}
        # Every campaign's score is the kernel's exact score; reported value = exp(score).
        mk = Market([s["center"] for s in specs], [s["sigma"] for s in specs], [s["bid"] for s in specs])
        exact = mk.scores(x)
        for s, sc in zip(specs, exact, strict=True):
            r = rows[s["id"]]
            assert r["score"] == pytest.approx(sc, abs=1e-12) and r["eligible"]
            assert r["value_micros"] == pytest.approx(math.exp(sc), rel=1e-12)
            assert r["bid_micros"] == s["bid"] and r["sigma"] == s["sigma"] and r["name"] == s["name"]
        ref = clear([x], [s["center"] for s in specs], [s["sigma"] for s in specs], [s["bid"] for s in specs])
        w, ru = int(ref.winner[0]), int(ref.runner_up[0])
        o = m["outcome"]
        assert o["filled"] and o["winner_campaign_id"] == specs[w]["id"]
        assert o["winner"] == specs[w]["name"] and o["runner_up"] == specs[ru]["name"]
        assert o["price_micros"] == math.floor(float(ref.payment[0]))
        assert "Clarke pivot" in o["why"]
        assert m["auction"] is None  # a preview records nothing
        # The real auction, run from the market map, has the same winner and price.
        run = pub.ok("POST", "/v1/dashboard/market", json={**body, "run": True})
        a = run["auction"]
        assert a["filled"] and a["ad"]["campaign_id"] == specs[w]["id"] and a["price_micros"] == o["price_micros"]
        assert run["outcome"]["price_micros"] == a["price_micros"]
        # The map's reasons for leaving campaigns out are the exchange's own (same counts as its explain).
        theirs = {k: v for k, v in a["explain"]["excluded"].items() if v}
        assert run["outcome"]["excluded"] == theirs and theirs.get("paused", 0) >= 1 and theirs.get("budget", 0) >= 1
        assert run["outcome"]["considered"] == a["explain"]["considered"]
        reasons = {r["name"]: r["reason"] for r in m["campaigns"]}
        assert reasons["beta-paused"] == "paused" and reasons["beta-poor"] == "budget"
        got = pub.ok("GET", f"/v1/auctions/{a['auction_id']}")
        assert got["status"] == "held" and got["price_micros"] == a["price_micros"]


def test_visibility_of_rivals(world, rng):
    a, pub, specs = world["A"], world["P"], world["specs"]
    x = near(rng, world["home"], 0.05)
    m = a.ok("POST", "/v1/dashboard/market", json={"embedding": x, "tau": 0.5})
    mine = {s["id"] for s in specs if s["adv"] is a}
    named = [r for r in m["campaigns"] if r["campaign_id"]]
    assert {r["campaign_id"] for r in named} == mine and all(r["mine"] for r in named)
    others = [r for r in m["campaigns"] if not r["campaign_id"]]
    assert len(others) >= 2
    for r in others:  # rivals: eligibility only, nothing that identifies them, no score, value or bid
        assert r["label"].startswith("other #")
        assert r["score"] is None and r["value_micros"] is None
        for k in ("bid_micros", "sigma", "advertiser", "advertiser_id", "sqdist"):
            assert k not in r
    assert "beta-" not in str(m)
    assert all(r["score"] is not None for r in named if r["eligible"])  # its own scores
    # Publishers set reserves: names, kinds, eligibility, the winner and the price; no score or value.
    p = pub.ok("POST", "/v1/dashboard/market", json={"embedding": x, "tau": 0.5})
    assert all(r["campaign_id"] and r["kind"] for r in p["campaigns"])
    assert all(r["score"] is None and r["value_micros"] is None for r in p["campaigns"])
    assert not any(r["runner_up"] for r in p["campaigns"])
    o = p["outcome"]
    assert o["price_micros"] is not None and o["value_micros"] is None and o["runner_up_value_micros"] is None
    # Slices only through campaigns the caller may see.
    b1 = next(s["id"] for s in specs if s["name"] == "beta-1")
    r = a.post("/v1/dashboard/slice", json={"a": specs[0]["id"], "b": b1})
    assert r.status_code == 404
    r = pub.post("/v1/dashboard/slice", json={"a": specs[0]["id"], "b": "query", "embedding": x})
    assert r.status_code == 403


def test_auth_of_dashboard_endpoints(server, world):
    anon, bad = server.api(None), server.api("adsk_adv_" + "x" * 43)
    a, pub = world["A"], world["P"]
    x = world["home"]
    calls = [
        ("POST", "/v1/dashboard/market", {"json": {"embedding": x}}),
        ("POST", "/v1/dashboard/slice", {"json": {"a": world["specs"][0]["id"], "b": "query", "embedding": x}}),
        ("GET", "/v1/dashboard/projection", {}),
        ("GET", "/v1/dashboard/series", {}),
        ("GET", "/v1/dashboard/auctions", {}),
        ("GET", "/v1/dashboard/accounts", {}),
    ]
    for method, path, kw in calls:
        assert anon.request(method, path, **kw).status_code == 401, path
        assert bad.request(method, path, **kw).status_code == 401, path
    for path in ("/v1/dashboard/auctions", "/v1/dashboard/accounts"):
        assert a.get(path).status_code == 403 and pub.get(path).status_code == 403
    # Only publishers run auctions.
    r = a.post("/v1/dashboard/market", json={"embedding": x, "run": True})
    assert r.status_code == 403 and "run" in r.json()["detail"]
    r = a.post("/v1/dashboard/market", json={"embedding": x, "nonsense": 1})
    assert r.status_code == 422
    r = a.post("/v1/dashboard/market", json={"embedding": [0.0] * 3})
    assert r.status_code == 422 and "embedding" in str(r.json()["detail"])
    # The page and its assets are public (no key inside); unknown assets 404.
    r = anon.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"] and "/dashboard/app.js" in r.text
    for name in ("app.js", "app.css"):
        assert anon.get(f"/dashboard/{name}").status_code == 200
    assert anon.get("/dashboard/../app.py").status_code == 404
    assert anon.get("/dashboard/index.py").status_code == 404


def test_slice_is_the_upper_envelope(world, rng):
    a, specs = world["A"], world["specs"]
    admin = a.__class__(a.base, ADMIN_KEY)
    s0, s1 = specs[0], specs[2]
    sl = admin.ok("POST", "/v1/dashboard/slice", json={"a": s0["id"], "b": s1["id"], "n": 201})
    t = np.asarray(sl["t"])
    assert len(t) == 201 and sl["a"] == s0["name"] and sl["b"] == s1["name"]
    curves = {c["label"]: np.asarray([np.nan if v is None else v for v in c["score"]]) for c in sl["curves"]}
    assert s0["name"] in curves and s1["name"] in curves
    env = np.asarray([np.nan if v is None else v for v in sl["envelope"]])
    # The envelope is at least every drawn parabola, and equals the winner's parabola.
    for k, lab in enumerate(sl["winner"]):
        if lab in curves:
            assert env[k] == pytest.approx(curves[lab][k], abs=1e-9)
        for c in curves.values():
            assert env[k] >= c[k] - 1e-9
    # Exact parabola values along the line.
    c0, c1 = np.asarray(s0["center"]), np.asarray(s1["center"])
    x = c0 + t[50] * (c1 - c0)
    assert curves[s0["name"]][50] == pytest.approx(
        math.log(s0["bid"]) - np.sum((x - c0) ** 2) / s0["sigma"] ** 2, abs=1e-9
    )
    # Intervals tile [t_min, t_max] and name the winners.
    iv = sl["intervals"]
    assert iv[0]["lo"] == pytest.approx(t[0]) and iv[-1]["hi"] == pytest.approx(t[-1])
    for p, q in zip(iv, iv[1:], strict=False):
        assert p["hi"] == pytest.approx(q["lo"]) and p["winner"] != q["winner"]
    # Near its own center a campaign with the highest bid there wins.
    assert sl["winner"][int(np.argmin(np.abs(t)))] is not None


def test_projection_and_recent_queries(server, world, rng):
    a = world["A"]
    x = near(rng, world["home"], 0.05)
    m = a.ok("POST", "/v1/dashboard/market", json={"embedding": x, "tau": 0.5})
    assert m["query_xy"] is not None and len(m["query_xy"]) == 2
    p = a.ok("GET", "/v1/dashboard/projection")
    mine = {s["id"] for s in world["specs"] if s["adv"] is a}
    assert {c["campaign_id"] for c in p["campaigns"]} == mine
    assert p["queries"] and p["queries"][-1]["xy"] == pytest.approx(m["query_xy"], abs=1e-9)
    assert 0 < p["explained"][0] <= 1
    # Another advertiser does not see A's queries.
    other = new_advertiser(server, "C")
    assert not other.ok("GET", "/v1/dashboard/projection")["queries"]


def test_series_and_logs_after_billing(world, rng):
    a, pub, specs = world["A"], world["P"], world["specs"]
    admin = pub.__class__(pub.base, ADMIN_KEY)
    a1 = specs[0]
    before = a.ok("GET", "/v1/dashboard/series?window=1h")
    run = pub.ok(
        "POST", "/v1/dashboard/market", json={"embedding": a1["center"], "tau": 1e-9, "reserve_micros": 7, "run": True}
    )
    auc = run["auction"]
    assert (
        auc["filled"] and auc["ad"]["campaign_id"] == a1["id"] and auc["price_micros"] == 7
    )  # alone: pays the reserve
    pub.ok("POST", f"/v1/auctions/{auc['auction_id']}/billing")
    after = a.ok("GET", "/v1/dashboard/series?window=1h")
    assert after["totals"]["spend_micros"] - before["totals"]["spend_micros"] == 7
    assert after["totals"]["wins"] - before["totals"]["wins"] == 1
    assert after["totals"]["impressions"] - before["totals"]["impressions"] == 1
    assert len(after["starts"]) == 12 and after["bucket_seconds"] == 300
    ps = pub.ok("GET", "/v1/dashboard/series?window=24h")
    assert ps["totals"]["billed"] >= 1 and ps["totals"]["revenue_micros"] >= 7 * 8000 // 10_000
    log = admin.ok("GET", "/v1/dashboard/auctions?limit=1000")
    row = next(r for r in log["auctions"] if r["auction_id"] == auc["auction_id"])
    assert (
        row["status"] == "billed"
        and row["campaign"] == a1["name"]
        and row["advertiser"] == "A"
        and row["publisher"] == "P"
    )
    assert row["price_micros"] == 7
    billed = admin.ok("GET", "/v1/dashboard/auctions?status=billed&limit=1000")
    assert all(r["status"] == "billed" for r in billed["auctions"])
    accs = admin.ok("GET", "/v1/dashboard/accounts")
    me = next(r for r in accs["accounts"] if r["id"] == a.id)
    assert me["kind"] == "advertiser" and me["campaigns"] == 2 and me["wins"] >= 1 and me["balance_micros"] <= -7
