"""Keyword campaigns (σ → 0) and text embedding, on a server that loads the real model once."""

from __future__ import annotations

import secrets

import pytest

from .conftest import new_advertiser, new_publisher

CREATIVE = {"title": "T", "body": "B", "url": "https://example.com"}


def kw_campaign(adv, keyword, bid, **kw):
    body = {
        "name": f"kw {bid}",
        "keywords": [keyword],
        "bid_micros": bid,
        "budget_micros": 10**12,
        "creative": CREATIVE,
    }
    body.update(kw)
    return adv.ok("POST", "/v1/campaigns", 201, json=body)["id"]


@pytest.fixture
def keyword():
    return f"sourdough starter {secrets.token_hex(3)}"


def test_only_keyword_bidders_is_a_second_price_auction(model_server, keyword):
    adv, pub = new_advertiser(model_server), new_publisher(model_server)
    c5 = kw_campaign(adv, keyword, 5_000_000)
    kw_campaign(adv, keyword, 3_000_000)
    kw_campaign(adv, keyword, 2_000_000)
    kw_campaign(adv, f"other {keyword}", 9_000_000)  # another keyword: out (its value is 0 as σ → 0)
    # tau ~ 0 leaves out every embedding campaign of other tests: only keyword bidders remain
    ask = {"keywords": ["Unrelated", keyword.upper()], "messages": [{"role": "user", "content": "hi"}], "tau": 1e-12}
    out = pub.ok("POST", "/v1/auctions", json=ask)
    assert out["filled"] and out["ad"]["campaign_id"] == c5
    assert out["price_micros"] == 3_000_000  # exactly the second-highest bid
    ex = out["explain"]
    assert ex["point"] == "keyword" and ex["keyword"] == keyword and ex["considered"] == 3
    assert ex["excluded"]["keyword"] >= 1
    out = pub.ok("POST", "/v1/auctions", json={**ask, "reserve_micros": 4_000_000})
    assert out["price_micros"] == 4_000_000
    out = pub.ok("POST", "/v1/auctions", json={**ask, "reserve_micros": 5_000_001})
    assert not out["filled"]


def test_keyword_ties_go_to_the_earlier_campaign(model_server, keyword):
    adv, pub = new_advertiser(model_server), new_publisher(model_server)
    first = kw_campaign(adv, keyword, 3_000_000)
    kw_campaign(adv, keyword, 3_000_000)
    out = pub.ok("POST", "/v1/auctions", json={"keywords": [keyword], "tau": 1e-12})
    assert out["ad"]["campaign_id"] == first and out["price_micros"] == 3_000_000


def test_embedding_campaigns_compete_at_the_keyword_point(model_server, keyword):
    adv, pub = new_advertiser(model_server), new_publisher(model_server)
    top = kw_campaign(adv, keyword, 5_000_000)
    kw_campaign(adv, keyword, 3_000_000)
    # centered exactly at the keyword's point (its embedding): reported value = bid there, for any σ
    body = {
        "name": "desc",
        "description": keyword,
        "sigma": 0.5,
        "bid_micros": 4_000_000,
        "budget_micros": 10**12,
        "creative": CREATIVE,
    }
    adv.ok("POST", "/v1/campaigns", 201, json=body)
    out = pub.ok("POST", "/v1/auctions", json={"keywords": [keyword], "tau": 1e-12})
    assert out["ad"]["campaign_id"] == top and out["price_micros"] == 4_000_000
    assert out["explain"]["considered"] == 3


def test_no_matching_keyword_runs_at_the_conversation(model_server, keyword):
    adv, pub = new_advertiser(model_server), new_publisher(model_server)
    kw_campaign(adv, keyword, 5_000_000)
    out = pub.ok("POST", "/v1/auctions", json={"keywords": ["nothing bids on this " + keyword], "tau": 1e-12})
    assert not out["filled"]  # keywords only, none matched: there is no query point


def test_text_auction_picks_the_relevant_campaign(model_server):
    adv, pub = new_advertiser(model_server), new_publisher(model_server)
    tag = secrets.token_hex(3)
    mk = lambda name, desc: adv.ok(  # noqa: E731
        "POST",
        "/v1/campaigns",
        201,
        json={
            "name": name,
            "description": desc,
            "sigma": 0.6,
            "bid_micros": 1_500_000,
            "budget_micros": 10**12,
            "creative": {**CREATIVE, "title": name + tag},
        },
    )["id"]
    shoes = mk("shoes", "trail running shoes with grippy soles for muddy mountain paths")
    db = mk("db", "managed postgres database hosting with backups and replication")
    talk = [
        {"role": "user", "content": "I want to start running on mountain trails this spring."},
        {"role": "assistant", "content": "Great idea! Build up slowly."},
        {"role": "user", "content": "What shoes should I get for muddy trails?"},
    ]
    out = pub.ok("POST", "/v1/auctions", json={"messages": talk})
    assert out["filled"] and out["ad"]["campaign_id"] == shoes, out
    talk2 = [{"role": "user", "content": "How do I set up streaming replication and backups for my Postgres database?"}]
    out = pub.ok("POST", "/v1/auctions", json={"messages": talk2})
    assert out["filled"] and out["ad"]["campaign_id"] == db, out
    # a description change re-embeds and is visible to the next auction
    adv.ok(
        "PATCH",
        f"/v1/campaigns/{db}",
        json={"description": "trail running shoes for muddy mountain trails", "bid_micros": 1_600_000},
    )
    out = pub.ok("POST", "/v1/auctions", json={"messages": talk})
    assert out["ad"]["campaign_id"] == db
