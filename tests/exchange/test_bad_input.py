"""Bad input answers 4xx and names the field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import campaign_body, new_advertiser, new_publisher, rand_unit


def names_field(resp, field: str) -> bool:
    """The error names ``field``: in a validation error's location or in its message."""
    detail = resp.json()["detail"]
    if isinstance(detail, str):
        return field in detail
    return any(field in [str(p) for p in d.get("loc", [])] or field in d.get("msg", "") for d in detail)


# σ = 0.15: far from every other test's point, its reported value rounds to 0 micros
GOOD = campaign_body(rand_unit(np.random.default_rng(0)), sigma=0.15, bid=1_000_000)

CAMPAIGN_CASES = [
    ("sigma", {"sigma": 0}),
    ("sigma", {"sigma": -1.0}),
    ("sigma", {"sigma": 1e-9}),
    ("sigma", {"sigma": "wide"}),
    ("bid_micros", {"bid_micros": -5}),
    ("bid_micros", {"bid_micros": 0}),
    ("bid_micros", {"bid_micros": 1.5}),
    ("budget_micros", {"budget_micros": -1}),
    ("daily_budget_micros", {"daily_budget_micros": -1}),
    ("embedding", {"embedding": [0.1, 0.2, 0.3]}),
    ("embedding", {"embedding": [0.0] * 385}),
    ("embedding", {"embedding": [0.0] * 383 + ["x"]}),
    ("colour", {"colour": "red"}),
    ("status", {"status": "running"}),
    ("url", {"creative": {"title": "t", "body": "b", "url": "javascript:alert(1)"}}),
    ("title", {"creative": {"body": "b", "url": "https://x.y"}}),
    ("extra", {"creative": {"title": "t", "body": "b", "url": "https://x.y", "extra": 1}}),
    ("name", {"name": ""}),
    ("ends_at", {"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}),
    ("starts_at", {"starts_at": "2030-01-02T00:00:00"}),
    ("description", {"description": "shoes"}),  # and an embedding: exactly one is allowed
    ("sigma", {"keywords": ["shoes"], "embedding": None}),  # keyword campaigns have no sigma
]


@pytest.mark.parametrize(
    ("field", "patch"), CAMPAIGN_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CAMPAIGN_CASES)]
)
def test_bad_campaign(server, field, patch):
    adv = new_advertiser(server)
    body = {**GOOD, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    r = adv.post("/v1/campaigns", json=body)
    assert r.status_code == 422, r.text
    assert names_field(r, field), r.text


def test_missing_sigma_and_missing_target(server):
    adv = new_advertiser(server)
    body = {k: v for k, v in GOOD.items() if k != "sigma"}
    r = adv.post("/v1/campaigns", json=body)
    assert r.status_code == 422 and names_field(r, "sigma")
    body = {k: v for k, v in GOOD.items() if k != "embedding"}
    r = adv.post("/v1/campaigns", json=body)
    assert r.status_code == 422 and names_field(r, "embedding")


def test_bad_patch(server):
    adv = new_advertiser(server)
    cid = adv.ok("POST", "/v1/campaigns", 201, json=GOOD)["id"]
    for field, patch in [
        ("name", {"name": None}),
        ("sigma", {"sigma": -2}),
        ("budget_micros", {"budget_micros": -1}),
        ("keywords", {"keywords": ["x"]}),
        ("id", {"id": "cmp_other"}),
        ("ends_at", {"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}),
    ]:
        r = adv.patch(f"/v1/campaigns/{cid}", json=patch)
        assert 400 <= r.status_code < 500 and names_field(r, field), (field, r.status_code, r.text)
    # nothing changed
    c = adv.ok("GET", f"/v1/campaigns/{cid}")
    assert c["name"] == GOOD["name"] and c["sigma"] == GOOD["sigma"] and c["ends_at"] is None


AUCTION_CASES = [
    ("embedding", {"embedding": [1.0, 0.0]}),
    ("messages", {"messages": [{"role": "user", "content": "hi"}], "embedding": [0.0] * 384}),
    ("reserve_micros", {"embedding": [0.0] * 384, "reserve_micros": -1}),
    ("tau", {"embedding": [0.0] * 384, "tau": 0}),
    ("tau", {"embedding": [0.0] * 384, "tau": -3}),
    ("query", {"embedding": [0.0] * 384, "query": "x"}),
    ("role", {"messages": [{"content": "hi"}]}),
    ("messages", {}),
]


@pytest.mark.parametrize(("field", "body"), AUCTION_CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(AUCTION_CASES)])
def test_bad_auction(server, field, body):
    pub = new_publisher(server)
    r = pub.post("/v1/auctions", json=body)
    assert r.status_code == 422, r.text
    assert names_field(r, field), r.text


def test_malformed_json_and_query_params(server):
    pub = new_publisher(server)
    r = pub.post("/v1/auctions", data=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = pub.post(
        "/v1/auctions",
        data=json.dumps({"embedding": [float("nan")] * 384}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and names_field(r, "embedding")
    r = pub.get("/v1/auctions?limit=0")
    assert r.status_code == 422 and names_field(r, "limit")
    r = pub.post("/v1/auctions/auc_doesnotexist/billing")
    assert r.status_code == 404 and names_field(r, "auction_id")
