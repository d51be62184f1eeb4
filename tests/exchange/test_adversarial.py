"""The exchange attacked as an adversary would, over HTTP, on SQLite and PostgreSQL.

Each test plays one attack from issue 12 ("Trust boundaries of the exchange") and asserts that it no
longer works: respelling the API key to dodge the rate limit, flooding random keys to reset everyone's
limit, a publisher reading bids to set the reserve just below the winner's value, OpenRTB currencies
ignored, unbounded query vectors, and a publisher locking an advertiser's budget with auctions it
never bills.
"""

from __future__ import annotations

import secrets

import requests

from .conftest import ADMIN_KEY, new_advertiser, new_publisher

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
