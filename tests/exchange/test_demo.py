"""``adspace serve --demo``: an empty database is seeded, the keys are printed, and they work."""

from __future__ import annotations

import re

from .conftest import Server


def test_demo_seed_prints_working_keys(server_factory, backend):
    srv = server_factory(backend, {"ADSPACE_ADMIN_KEY": ""}, args=("--demo",))
    log = srv.log_path.read_text()
    keys = dict(re.findall(r"^\s+(advertiser [^:]+|publisher [^:]+): (adsk_\S+)$", log, flags=re.M))
    admin = re.search(r"Admin API key \(shown once, store it\): (adsk_adm_\S+)", log)
    assert admin, log[-2000:]
    assert "publisher Demo Chat App" in keys and sum(k.startswith("advertiser") for k in keys) == 3
    pub = srv.api(keys["publisher Demo Chat App"])
    talk = [{"role": "user", "content": "Which trail running shoes grip best on muddy mountain paths?"}]
    out = pub.ok("POST", "/v1/auctions", json={"messages": talk})
    assert out["filled"] and out["ad"]["title"] == "TrailCo Ridge 3"
    billed = pub.ok("POST", f"/v1/auctions/{out['auction_id']}/billing")
    assert billed["price_micros"] == out["price_micros"] <= 2_500_000
    kw = pub.ok("POST", "/v1/auctions", json={"keywords": ["Sourdough"], "messages": talk})
    assert kw["filled"] and kw["explain"]["point"] == "keyword"
    trail = srv.api(keys["advertiser TrailCo"])
    report = {r["name"]: r for r in trail.ok("GET", "/v1/reports/campaigns")["campaigns"]}
    assert report["Trail running shoes"]["impressions"] == 1
    assert srv.api(admin.group(1)).ok("GET", "/v1/me")["kind"] == "admin"

    # A restart with --demo on the seeded database seeds nothing and generates no new admin key.
    srv.stop()
    again = Server(srv.database_url, {"ADSPACE_ADMIN_KEY": ""}, srv.log_path.parent, ("--demo",)).start()
    try:
        log2 = again.log_path.read_text()
        assert "demo seeding skipped" in log2 and "Admin API key" not in log2
        assert again.api(admin.group(1)).ok("GET", "/v1/me")["kind"] == "admin"
    finally:
        again.stop()
