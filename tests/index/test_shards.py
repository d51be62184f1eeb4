"""Sharded clearing equals unsharded :func:`adspace.mechanisms.vcg.clear`, bit for bit.

The single-slot auction decomposes: each shard's top 2 (global index, exact score, value), merged by
(score desc, global index asc), gives the same winner, runner-up, payment, score and value as
clearing the whole market, with the same tie-breaking and reserve. Ties are made across shards by
duplicating advertisers (twins score bit-identically), and eligibility masks are per market or per
query.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.index.shards import ShardedMarket, merge, shard_top2, split
from adspace.mechanisms.vcg import Market, clear


def assert_same(a, b) -> None:
    for f in ("winner", "runner_up", "payment", "score", "value", "runner_up_score"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@st.composite
def markets(draw):
    d = draw(st.integers(1, 6))
    base = draw(st.integers(1, 12))
    dup = draw(st.integers(0, 6))  # twins appended at the end: ties across shards
    nq = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((base, d)) * scale
    s = np.exp(rng.uniform(-3, 1, base)) * scale
    b = np.exp(rng.normal(0, 1, base))
    if draw(st.booleans()):  # equal bids and reaches: many exact ties when queries sit on centers
        s[:] = s[0]
        b[:] = b[0]
    pick = rng.integers(0, base, dup)
    c, s, b = np.vstack([c, c[pick]]), np.r_[s, s[pick]], np.r_[b, b[pick]]
    n = c.shape[0]
    perm = rng.permutation(n) if draw(st.booleans()) else np.arange(n)
    c, s, b = c[perm], s[perm], b[perm]
    # Queries near centers, exactly on some, and a few far away.
    q = c[rng.integers(0, n, nq)] + rng.standard_normal((nq, d)) * scale * rng.choice([0.0, 0.1, 3.0], (nq, 1))
    mask_kind = draw(st.sampled_from(["none", "market", "query"]))
    if mask_kind == "market":
        elig = rng.random(n) < 0.7
    elif mask_kind == "query":
        elig = rng.random((nq, n)) < 0.6
    else:
        elig = None
    reserve = draw(st.sampled_from([0.0, 0.0, 0.05, 0.5, 5.0]))
    shards = draw(st.integers(1, n + 2))
    return q, c, s, b, elig, reserve, shards


@given(markets())
@settings(max_examples=300, deadline=None)
def test_sharded_equals_unsharded(case):
    q, c, s, b, elig, reserve, shards = case
    want = clear(q, c, s, b, reserve=reserve, eligible=elig)
    got = ShardedMarket(c, s, b, shards=shards).clear(q, reserve=reserve, eligible=elig)
    assert_same(got, want)


@given(markets(), st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_any_partition_with_index_maps(case, seed):
    """Shards need not be contiguous: any partition, each shard's rows in increasing global order."""
    q, c, s, b, elig, reserve, shards = case
    n = c.shape[0]
    label = np.random.default_rng(seed).integers(0, shards, n)
    parts = []
    for k in range(shards):
        ids = np.flatnonzero(label == k)
        if ids.size == 0:
            continue
        e = None if elig is None else elig[..., ids]
        parts.append(shard_top2(Market(c[ids], s[ids], b[ids]), q, ids=ids, eligible=e))
    assert_same(merge(parts, reserve=reserve), clear(q, c, s, b, reserve=reserve, eligible=elig))


def test_tie_across_shards_goes_to_lowest_index():
    c = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0], [0.0, 0.0]])
    s = np.ones(4)
    b = np.array([1.0, 9.0, 1.0, 1.0])
    q = np.zeros((1, 2))
    sm = ShardedMarket(c, s, b, shards=4)
    out = sm.clear(q)
    assert (out.winner[0], out.runner_up[0]) == (0, 2)
    assert out.payment[0] == 1.0
    out = sm.clear(q, eligible=np.array([False, True, True, True]))
    assert (out.winner[0], out.runner_up[0]) == (2, 3)
    assert_same(out, clear(q, c, s, b, eligible=np.array([False, True, True, True])))


def test_reserve_applies_once_after_the_merge():
    c = np.array([[0.0], [1.0]])
    s = np.ones(2)
    b = np.array([2.0, 1.0])
    q = np.array([[0.0]])
    for reserve in (0.0, 0.5, 1.5, 2.0, 2.5):
        assert_same(ShardedMarket(c, s, b, shards=2).clear(q, reserve=reserve), clear(q, c, s, b, reserve=reserve))


def test_split_and_validation():
    assert split(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert split(2, 5) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError, match="shards"):
        split(3, 0)
    with pytest.raises(ValueError, match="reserve"):
        merge([], reserve=-1.0)
    with pytest.raises(ValueError, match="parts"):
        merge([])
    m = Market(np.zeros((2, 1)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="ids"):
        shard_top2(m, np.zeros((1, 1)), ids=np.array([3, 1]))
    with pytest.raises(ValueError, match="eligible"):
        ShardedMarket(np.zeros((2, 1)), np.ones(2), np.ones(2)).clear(np.zeros(1), eligible=np.ones(3, dtype=bool))
