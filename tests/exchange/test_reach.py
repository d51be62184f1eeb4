"""``POST /v1/campaigns/reach`` on the real server: the fit, and a preview that the real auctions confirm."""

from __future__ import annotations

import secrets

from .conftest import new_advertiser, new_publisher

CUSTOMERS = [
    "which trail running shoes grip best on wet rocks and mud?",
    "my trail shoes slip on muddy descents, what should I buy?",
    "best shoes for a mountain ultramarathon with rocky technical terrain",
    "trail runners with a rock plate for alpine races",
]
OTHERS = [
    "how do I file my taxes as a freelancer?",
    "a quick vegetarian dinner for four people",
    "what is the best managed postgres hosting for a startup?",
    "cheap flights to Lisbon in May",
]


def test_reach_fits_sigma_and_its_preview_is_what_the_auctions_then_do(model_server):
    adv, pub = new_advertiser(model_server, "reach"), new_publisher(model_server, "reach pub")
    tag = secrets.token_hex(3)
    customers = [f"{c} ({tag})" for c in CUSTOMERS]  # texts no other test's campaign was built from
    body = {"customers": customers, "non_customers": OTHERS, "bid_micros": 2_000_000, "reserve_micros": 1000}
    out = adv.ok("POST", "/v1/campaigns/reach", json=body)
    fit = out["fit"]
    assert fit["method"] == "likelihood" and fit["customers"] == 4 and fit["non_customers"] == 4
    assert len(out["center"]) == 384 and out["sigma"] > 0
    # The evidence separates: customers sit nearer the center, and keep more of the bid, than non-customers.
    assert fit["customer_sqdist"]["median"] < fit["non_customer_sqdist"]["median"]
    assert fit["customer_value_share"]["median"] > fit["non_customer_value_share"]["median"]
    pv = out["preview"]
    assert [q["text"] for q in pv["queries"]] == customers + OTHERS
    assert pv["wins"] == sum(q["won"] for q in pv["queries"])
    for q in pv["queries"]:
        assert 0 <= q["price_micros"] <= 2_000_000
        assert q["won"] == (q["winner"] == "this campaign")
        assert q["bid_to_win_micros"] is None or (q["bid_to_win_micros"] <= 2_000_000) == q["won"]

    # Create the campaign as proposed; the real auctions give the preview's winners and prices.
    camp = {
        "name": f"Trail {tag}",
        "embedding": out["center"],
        "sigma": out["sigma"],
        "bid_micros": 2_000_000,
        "budget_micros": 10**12,
        "creative": {"title": "Trail", "body": "", "url": "https://example.com/trail"},
    }
    cid = adv.ok("POST", "/v1/campaigns", 201, json=camp)["id"]
    for q in pv["queries"]:
        a = pub.ok(
            "POST",
            "/v1/auctions",
            json={"messages": [{"role": "user", "content": q["text"]}], "reserve_micros": 1000},
        )
        won = a["filled"] and a["ad"]["campaign_id"] == cid
        assert won == q["won"], (q, a["explain"])
        if won:
            assert a["price_micros"] == q["price_micros"], (q, a)

    # As a change of that campaign, the preview does not compete against the campaign itself.
    again = adv.ok("POST", "/v1/campaigns/reach", json={**body, "campaign_id": cid})
    assert [q["won"] for q in again["preview"]["queries"]] == [q["won"] for q in pv["queries"]]
    # The server is shared with other text tests: a live trail-shoe campaign here would win theirs.
    adv.ok("DELETE", f"/v1/campaigns/{cid}", 204)


def test_reach_without_non_customers_uses_the_median_rule_and_no_bid_means_no_preview(model_server):
    adv = new_advertiser(model_server)
    out = adv.ok("POST", "/v1/campaigns/reach", json={"customers": CUSTOMERS})
    assert out["fit"]["method"] == "median" and out["preview"] is None
    assert abs(out["fit"]["customer_value_share"]["median"] - 0.5) < 1e-9


def test_reach_refuses_bad_input_naming_the_field(model_server):
    adv, pub = new_advertiser(model_server), new_publisher(model_server)
    r = adv.post("/v1/campaigns/reach", json={"customers": ["only one"]})
    assert r.status_code == 422 and "customers" in r.text
    r = adv.post("/v1/campaigns/reach", json={"customers": ["same", "same"]})
    assert r.status_code == 422 and "customers" in r.json()["detail"]
    r = adv.post("/v1/campaigns/reach", json={"customers": CUSTOMERS, "bid_micros": 1, "campaign_id": "cmp_nope"})
    assert r.status_code == 404 and "campaign_id" in r.json()["detail"]
    r = pub.post("/v1/campaigns/reach", json={"customers": CUSTOMERS})
    assert r.status_code == 403


def test_adspace_reach_against_the_live_market_is_the_endpoint(model_server, tmp_path):
    import json

    from typer.testing import CliRunner

    from adspace.cli import app

    adv = new_advertiser(model_server, "cli reach")
    (tmp_path / "c.txt").write_text("\n".join(CUSTOMERS))
    (tmp_path / "n.txt").write_text("\n".join(OTHERS))
    args = ["reach", "--customers", str(tmp_path / "c.txt"), "--non-customers", str(tmp_path / "n.txt")]
    args += ["--bid", "2", "--url", model_server.base, "--key", adv.key, "--json"]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    direct = adv.ok(
        "POST",
        "/v1/campaigns/reach",
        json={"customers": CUSTOMERS, "non_customers": OTHERS, "bid_micros": 2_000_000, "reserve_micros": 0},
    )
    assert out["sigma"] == direct["sigma"] and out["preview"]["queries"] == direct["preview"]["queries"]
