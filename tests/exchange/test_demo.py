"""``adspace serve --demo``: an empty database is seeded with a market and a day of simulated traffic,
the keys are printed and work; ``--new-keys`` gets new ones on an existing database."""

from __future__ import annotations

import re

from .conftest import Server


def _keys(log: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+(admin|advertiser [^:]+|publisher [^:]+): (adsk_\S+)$", log, flags=re.M))


def test_demo_seed_prints_working_keys_and_a_day_of_traffic(server_factory, backend):
    srv = server_factory(backend, {"ADSPACE_ADMIN_KEY": ""}, args=("--demo",))
    log = srv.log_path.read_text()
    keys = _keys(log)
    admin = re.search(r"Admin API key \(shown once, store it\): (adsk_adm_\S+)", log)
    assert admin, log[-2000:]
    assert "publisher Demo Chat App" in keys and sum(k.startswith("advertiser") for k in keys) == 3
    pub = srv.api(keys["publisher Demo Chat App"])
    adm = srv.api(admin.group(1))
    trail = srv.api(keys["advertiser TrailCo"])

    # A day of traffic, through the real services: every chart has data, and it is labelled demo.
    day = adm.ok("GET", "/v1/dashboard/series?window=24h")
    assert day["totals"]["auctions"] >= 200 and day["totals"]["billed"] >= 50 and day["totals"]["gross_micros"] > 0
    assert sum(1 for n in day["auctions"] if n) >= 16  # spread over the day, not one burst
    assert day["demo_auctions"] == day["totals"]["auctions"]
    assert 0 < day["totals"]["filled"] < day["totals"]["auctions"]  # unrelated questions go unfilled
    assert pub.ok("GET", "/v1/dashboard/series?window=24h")["totals"]["revenue_micros"] > 0
    assert trail.ok("GET", "/v1/dashboard/series?window=24h")["totals"]["spend_micros"] > 0
    log_rows = adm.ok("GET", "/v1/dashboard/auctions?limit=1000")["auctions"]
    assert {a["source"] for a in log_rows} == {"demo"} and any(a["clicked_at"] for a in log_rows)
    assert {a["status"] for a in log_rows} >= {"billed", "no_fill", "expired"}
    assert adm.ok("GET", "/v1/ledger/check")["balanced"] is True
    before = {r["name"]: r for r in trail.ok("GET", "/v1/reports/campaigns")["campaigns"]}

    talk = [{"role": "user", "content": "Which trail running shoes grip best on muddy mountain paths?"}]
    out = pub.ok("POST", "/v1/auctions", json={"messages": talk})
    assert out["filled"] and out["ad"]["title"] == "TrailCo Ridge 3"
    billed = pub.ok("POST", f"/v1/auctions/{out['auction_id']}/billing")
    assert billed["price_micros"] == out["price_micros"] <= 2_500_000
    kw = pub.ok("POST", "/v1/auctions", json={"keywords": ["Sourdough"], "messages": talk})
    assert kw["filled"] and kw["explain"]["point"] == "keyword"
    report = {r["name"]: r for r in trail.ok("GET", "/v1/reports/campaigns")["campaigns"]}
    shoes = "Trail running shoes"
    assert report[shoes]["impressions"] == before[shoes]["impressions"] + 1
    assert adm.ok("GET", "/v1/me")["kind"] == "admin"

    # A restart with --demo on the seeded database seeds nothing and generates no new admin key...
    srv.stop()
    again = Server(srv.database_url, {"ADSPACE_ADMIN_KEY": ""}, srv.log_path.parent, ("--demo",)).start()
    try:
        log2 = again.log_path.read_text()
        assert "demo seeding skipped" in log2 and "--new-keys" in log2 and "Admin API key" not in log2
        assert again.api(admin.group(1)).ok("GET", "/v1/me")["kind"] == "admin"
    finally:
        again.stop()
    # ... and --new-keys prints new keys for every account; the old ones stop working.
    third = Server(srv.database_url, {"ADSPACE_ADMIN_KEY": ""}, srv.log_path.parent, ("--new-keys",)).start()
    try:
        new = _keys(third.log_path.read_text().split("New API keys")[-1])
        assert set(new) == {"admin", *keys}, new
        assert third.api(new["admin"]).ok("GET", "/v1/me")["kind"] == "admin"
        assert third.api(new["advertiser TrailCo"]).ok("GET", "/v1/me")["name"] == "TrailCo"
        assert third.api(admin.group(1)).get("/v1/me").status_code == 401
        assert third.api(keys["advertiser TrailCo"]).get("/v1/me").status_code == 401
    finally:
        third.stop()
