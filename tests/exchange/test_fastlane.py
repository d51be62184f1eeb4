"""The fast lane (http/fastlane.py) answers exactly as the FastAPI routes do.

The same requests go to two apps over one exchange, one with the lane and one without: every answer
(status, body and header names, the random auction ids and times aside) is the same, errors included.
And the lane really serves every request to its two paths: the routes' own calls are counted, and
only the app without the lane makes them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import numpy as np
import pytest

from adspace.exchange.http.guard import replaying
from adspace.exchange.http.routes import auctions as routes

from .conftest import campaign_body


class Asgi:
    """Calls an ASGI app in process: one request, the whole answer."""

    def __init__(self, app):
        self.app = app
        self.loop = asyncio.new_event_loop()

    def __call__(
        self, method: str, path: str, key: str | None, body: bytes = b"", ctype: bytes | None = b"application/json"
    ):
        headers = [(b"host", b"test"), (b"content-length", str(len(body)).encode())]
        if key is not None:
            headers.append((b"authorization", f"Bearer {key}".encode()))
        if ctype is not None:
            headers.append((b"content-type", ctype))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        sent: list[dict] = []

        async def connected():  # the client stays connected: no further message
            await asyncio.sleep(3600)

        async def send(msg):
            sent.append(msg)

        self.loop.run_until_complete(self.app(scope, replaying(body, connected), send))
        status = sent[0]["status"]
        payload = b"".join(m.get("body", b"") for m in sent[1:])
        return status, json.loads(payload) if payload else None, dict(sent[0]["headers"])


@pytest.fixture
def apps(tmp_path, monkeypatch):
    """Two apps (lane on, lane off) over one exchange, its keys, and the routes' call counts."""
    from adspace.exchange.app import create_app
    from adspace.exchange.container import Exchange
    from adspace.exchange.core import schemas
    from adspace.exchange.core.config import Settings
    from adspace.exchange.services import Principal

    settings = replace(
        Settings(),
        database_url=f"sqlite:///{tmp_path / 'ex.db'}",
        preload_model=False,
        rate_limit_per_second=0,
        publisher_hold_cap_bps=10_000,
    )
    ex = Exchange(settings)
    ex.migrate()
    adv = ex.accounts.create("advertiser", "adv")
    pub = ex.accounts.create("publisher", "pub")
    center = np.eye(384)[7]
    ex.campaigns.create(
        Principal(adv.id, "advertiser", "adv"),
        schemas.CampaignCreate(**campaign_body(center.tolist(), sigma=0.5, bid=2_000_000, budget=10**12)),
    )
    ex.campaigns.create(
        Principal(adv.id, "advertiser", "adv"),
        schemas.CampaignCreate(
            **campaign_body((0.8 * center + 0.6 * np.eye(384)[8]).tolist(), sigma=0.5, bid=1_000_000)
        ),
    )
    ex.load_market()
    calls = {"auction": 0, "billing": 0}
    real_auction, real_billing = routes.auction_json, routes.billing_json

    async def counted_auction(*a, **kw):
        calls["auction"] += 1
        return await real_auction(*a, **kw)

    async def counted_billing(*a, **kw):
        calls["billing"] += 1
        return await real_billing(*a, **kw)

    monkeypatch.setattr(routes, "auction_json", counted_auction)
    monkeypatch.setattr(routes, "billing_json", counted_billing)
    with_lane = create_app(settings, exchange=ex)
    without = create_app(replace(settings, fast_lane=False), exchange=ex)
    for app in (with_lane, without):
        app.state.exchange = ex  # what the lifespan sets (the exchange is started here, once)
    ex.start_background()
    yield Asgi(with_lane), Asgi(without), {"pub": pub.api_key, "adv": adv.api_key}, calls, center
    ex.close()


def _same(a, b):
    """Equal answers, apart from what differs between any two auctions (their ids and times)."""

    def norm(x):
        if isinstance(x, dict):
            return {
                k: ("*" if k in ("auction_id", "expires_at", "billed_at", "transaction_id") else norm(v))
                for k, v in x.items()
            }
        if isinstance(x, list):
            return [norm(v) for v in x]
        return x

    assert a[0] == b[0], (a, b)
    assert norm(a[1]) == norm(b[1]), (a, b)
    assert a[2].keys() == b[2].keys() and a[2].get(b"www-authenticate") == b[2].get(b"www-authenticate"), (a, b)


def test_the_lane_answers_well_formed_publisher_requests_as_the_routes_do(apps):
    lane, routes_only, keys, calls, center = apps
    good = json.dumps({"embedding": center.tolist(), "reserve_micros": 10}).encode()
    a, b = lane("POST", "/v1/auctions", keys["pub"], good), routes_only("POST", "/v1/auctions", keys["pub"], good)
    _same(a, b)
    assert a[0] == 200 and a[1]["filled"]
    assert calls == {"auction": 1, "billing": 0}  # the lane served the first; the routes the second
    kw = json.dumps({"keywords": ["no such keyword"]}).encode()  # no point, no campaign: no fill
    _same(lane("POST", "/v1/auctions", keys["pub"], kw), routes_only("POST", "/v1/auctions", keys["pub"], kw))
    assert calls["auction"] == 2

    # Billing: the first notice charges, a repeat answers the same and charges nothing.
    first = lane("POST", f"/v1/auctions/{a[1]['auction_id']}/billing", keys["pub"])
    again = lane("POST", f"/v1/auctions/{a[1]['auction_id']}/billing", keys["pub"])
    other = routes_only("POST", f"/v1/auctions/{b[1]['auction_id']}/billing", keys["pub"])
    assert first[0] == 200 and first[1] == again[1]
    _same(first, other)
    assert calls == {"auction": 2, "billing": 1}
    # An unknown auction: the service's refusal, rendered as the app renders it.
    _same(
        lane("POST", "/v1/auctions/auc_nope/billing", keys["pub"]),
        routes_only("POST", "/v1/auctions/auc_nope/billing", keys["pub"]),
    )
    assert calls["billing"] == 2


@pytest.mark.parametrize(
    "method,path,who,body,ctype",
    [
        ("POST", "/v1/auctions", "adv", {"embedding": "center"}, b"application/json"),  # 403
        ("POST", "/v1/auctions", None, {"embedding": "center"}, b"application/json"),  # 401
        ("POST", "/v1/auctions", "pub", {"embedding": [0.5, 1.0]}, b"application/json"),  # 422, wrong dimension
        ("POST", "/v1/auctions", "pub", {"embedding": "center", "tau": -1}, b"application/json"),  # 422
        ("POST", "/v1/auctions", "pub", {"messages": [], "embedding": "center"}, b"application/json"),  # 422
        ("POST", "/v1/auctions", "pub", {"embedding": "center", "extra": 1}, b"application/json"),  # 422
        ("POST", "/v1/auctions", "pub", b"{not json", b"application/json"),  # 422
        # Well formed, refused by the service (no user turn to auction): the lane renders its error.
        ("POST", "/v1/auctions", "pub", {"messages": [{"role": "assistant", "content": "hi"}]}, b"application/json"),
        ("POST", "/v1/auctions", "pub", {"embedding": "center"}, b"text/plain"),  # not JSON: the route decides
        ("POST", "/v1/auctions", "pub", {"embedding": "center"}, None),  # no content type: the route decides
        ("POST", "/v1/auctions/a.b/billing", "pub", b"", None),  # not a path id: 422
        ("POST", "/v1/auctions/auc_x/billing", "adv", b"", None),  # 403
        ("POST", "/v1/auctions", "pub", b"", b"application/json"),  # no body: 422
        ("POST", "/v1/auctions", "pub", b"[1]", b"application/json"),  # not an object: 422
        ("POST", "/v1/auctions", "pub", b"null", b"application/json"),  # 422
        ("POST", "/v1/auctions", "pub", {"embedding": "center"}, b"application/x-www-form-urlencoded"),  # 422
        ("POST", "/v1/auctions", "pub", {"embedding": [1.0, "x"]}, b"application/problem+json"),  # 422
        ("POST", "/v1/auctions", None, b"{not json", b"application/json"),  # 422 (the body is read first)
        ("POST", "/v1/auctions", "adv", b"{not json", b"application/json"),  # 422
        ("POST", "/v1/auctions", "adv", {"embedding": [0.5]}, b"application/json"),  # 403 (before validation)
        ("POST", "/v1/auctions", None, {"embedding": [0.5]}, None),  # 401
        ("POST", "/v1/auctions/" + "a" * 65 + "/billing", "pub", b"", None),  # too long: 422
        ("POST", "/v1/auctions/a.b/billing", None, b"", None),  # 401 (before the path id)
    ],
)
def test_the_lane_refuses_bad_requests_as_the_routes_do(apps, method, path, who, body, ctype):
    lane, routes_only, keys, calls, center = apps
    if isinstance(body, dict):
        body = json.dumps({k: (center.tolist() if v == "center" else v) for k, v in body.items()}).encode()
    key = keys[who] if who else None
    a = lane(method, path, key, body, ctype)
    assert calls == {"auction": 0, "billing": 0}  # the lane answered: no request reached the routes
    b = routes_only(method, path, key, body, ctype)
    _same(a, b)
    assert a[0] in (401, 403, 422) and a[1]["detail"]


@pytest.mark.parametrize(
    "body,ctype,status",
    [
        ("utf-16", b"application/json", 200),  # JSON in another encoding: decoded as the route decodes it
        ("utf-8-sig", b"application/json", 200),  # with a byte order mark
        ("utf-8", b"application/json; charset=utf-8", 200),
        ("utf-8", b"application/vnd.adspace+json", 200),
        (b'{"embedding": [1, 2], "x": "\xff"}', b"application/json", 400),  # not UTF-8
    ],
)
def test_the_lane_reads_bodies_as_the_routes_do(apps, body, ctype, status):
    lane, routes_only, keys, calls, center = apps
    if isinstance(body, str):
        body = json.dumps({"embedding": center.tolist(), "reserve_micros": 10}).encode(body)
    a = lane("POST", "/v1/auctions", keys["pub"], body, ctype)
    b = routes_only("POST", "/v1/auctions", keys["pub"], body, ctype)
    _same(a, b)
    assert a[0] == status
    assert calls["auction"] == (1 if status == 200 else 0)  # the routes' only call: the lane served its own
