"""The limiter's and the hold cap's bookkeeping, in process (the attacks themselves: test_adversarial.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from adspace.exchange.core.identity import AuthHeaderError, parse_authorization
from adspace.exchange.core.vectors import MAX_COORD, VectorError, check_vector
from adspace.exchange.domain.live_market import CampaignState
from adspace.exchange.http.guard import TokenBuckets
from adspace.exchange.services.holds import PublisherHolds


def test_buckets_evict_least_recently_used_never_all():
    b = TokenBuckets(rate=1e-9, burst=1, size=4)
    for k in "abcd":
        assert b.take(k) == 0.0
    assert b.take("a") > 0  # a is now the most recently used, and empty
    for k in "efg":  # three newcomers push out b, c, d (least recently used), not a
        assert b.take(k) == 0.0
    assert len(b) == 4 and b.evicted == 3
    assert b.take("a") > 0  # still limited: never reset by the flood
    assert b.take("b") == 0.0  # evicted buckets come back full


def test_one_parse_of_authorization():
    assert parse_authorization([(b"authorization", b"  bEaReR \t KEY  ")]) == ("KEY", None)
    assert parse_authorization([])[0] is None
    assert parse_authorization([(b"authorization", b"Basic abc")])[0] is None
    assert parse_authorization([(b"authorization", b"Bearer a b")])[0] is None
    with pytest.raises(AuthHeaderError, match="Authorization"):
        parse_authorization([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer a")])


def test_hold_cap_counts_and_expires():
    h = PublisherHolds(cap_bps=1000)
    camp = CampaignState(id="c", advertiser_id="a", kind="embedding", center=None, sigma=1.0)
    camp.bid_micros, camp.budget_micros = 1_000_000, 20_000_000  # cap: 2,000,000
    now = datetime.now(UTC)
    h.add("a1", "p", camp, 600_000, now + timedelta(seconds=60))
    assert h.capped("p", now) == frozenset()  # 600,000 + a bid of 1,000,000 fits under 2,000,000
    h.add("a2", "p", camp, 600_000, now + timedelta(seconds=5))
    assert h.capped("p", now) == {"c"} and h.capped("q", now) == frozenset()  # per publisher
    h.release("a1")  # billed
    assert h.capped("p", now) == frozenset()
    h.add("a3", "p", camp, 600_000, now + timedelta(seconds=60))
    assert h.capped("p", now) == {"c"}
    assert h.capped("p", now + timedelta(seconds=10)) == frozenset()  # a2's hold ended on its own


def test_vector_check_names_the_element():
    x = np.zeros(384)
    assert check_vector(x, "v").dtype == np.float64
    for i, bad in ((5, np.nan), (7, np.inf), (9, MAX_COORD * 2)):
        y = x.copy()
        y[i] = bad
        with pytest.raises(VectorError, match=rf"^v\[{i}\]:"):
            check_vector(y, "v")
