"""The FAISS index over the lift: certified clearing equals exact clearing bit for bit; the
uncertified answer is exact among its candidates, and the certificate does certify clustered markets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.index.approx import ApproxMarket
from adspace.mechanisms.vcg import Market, clear

FIELDS = ("winner", "runner_up", "payment", "score", "value", "runner_up_score")


def assert_same(a, b) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def clustered(n: int, d: int, q: int, seed: int, spread: float = 0.05, clusters: int = 20):
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((clusters, d)) * 3.0
    c = topics[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, d))
    s = rng.uniform(0.05, 0.2, n)
    b = np.exp(rng.normal(0.0, 0.5, n))
    x = topics[rng.integers(0, clusters, q)] + spread * rng.standard_normal((q, d))
    return x, c, s, b


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_certified_clearing_is_exact_and_certifies_clustered_markets(kind):
    x, c, s, b = clustered(3000, 8, 200, seed=1)
    am = ApproxMarket(c, s, b, kind=kind, k=16, cells=60)
    assert_same(am.clear(x), clear(x, c, s, b))
    assert am.stats.certified.mean() > 0.5  # proved exact by the cell bound, no full scan
    assert (am.stats.certified | am.stats.fallback).all()
    assert (am.stats.scanned[am.stats.certified] < 3000 // 4).all()


def test_fallback_when_nothing_can_be_certified():
    x, c, s, b = clustered(500, 8, 20, seed=2)
    am = ApproxMarket(c, s, b, kind="ivf", k=4, max_scan=0)
    assert_same(am.clear(x), clear(x, c, s, b))
    assert am.stats.fallback.all()


@given(
    seed=st.integers(0, 2**32 - 1),
    reserve=st.sampled_from([0.0, 0.3, 1.0, 3.0]),
    mask=st.sampled_from(["none", "market", "query"]),
    twins=st.booleans(),
)
@settings(max_examples=25, deadline=None)
def test_certified_equals_exact_with_reserve_masks_and_ties(seed, reserve, mask, twins):
    x, c, s, b = clustered(400, 6, 30, seed=seed, spread=0.1, clusters=8)
    if twins:  # exact ties: copies of advertisers, and queries on their centers
        c, s, b = np.vstack([c, c[:50]]), np.r_[s, s[:50]], np.r_[b, b[:50]]
        x[:10] = c[:10]
    rng = np.random.default_rng(seed)
    n, q = c.shape[0], x.shape[0]
    elig = {"none": None, "market": rng.random(n) < 0.7, "query": rng.random((q, n)) < 0.7}[mask]
    market = Market(c, s, b)
    am = ApproxMarket(c, s, b, kind="ivf", k=8, cells=20, market=market, nlist=16, nprobe=4)
    assert_same(am.clear(x, reserve=reserve, eligible=elig), clear(x, c, s, b, reserve=reserve, eligible=elig))


def test_uncertified_is_exact_among_candidates():
    x, c, s, b = clustered(300, 5, 40, seed=3)
    # With every advertiser a candidate the approximate answer is the exact one.
    am = ApproxMarket(c, s, b, kind="ivf", k=300, nlist=4, nprobe=4)
    assert_same(am.clear(x, certify=False, reserve=0.2), clear(x, c, s, b, reserve=0.2))
    # With few candidates it is the exact clearing of the candidates' sub-market.
    am = ApproxMarket(c, s, b, kind="hnsw", k=3)
    got = am.clear(x, certify=False)
    ids = am.candidates(x)
    for i in range(x.shape[0]):
        rows = np.sort(ids[i][ids[i] >= 0])
        sub = clear(x[i], c[rows], s[rows], b[rows])
        assert got.winner[i] == rows[sub.winner[0]]
        assert got.payment[i] == sub.payment[0]


def test_validation():
    x, c, s, b = clustered(50, 3, 2, seed=4)
    with pytest.raises(ValueError, match="kind"):
        ApproxMarket(c, s, b, kind="lsh")
    with pytest.raises(ValueError, match="k:"):
        ApproxMarket(c, s, b, k=1)
    am = ApproxMarket(c, s, b, kind="ivf", nlist=2)
    with pytest.raises(ValueError, match="queries"):
        am.clear(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="reserve"):
        am.clear(x, reserve=-1)
    with pytest.raises(ValueError, match="eligible"):
        am.clear(x, eligible=np.ones(3, dtype=bool))


def test_docs_example_a_missed_winner_makes_misreporting_profitable():
    """docs/scale.md: approximate clearing = exact clearing among the index's candidates; when the
    candidates miss the true winner B, B gains by declaring a false center that the index finds."""
    from adspace.mechanisms.vcg import true_value

    x = np.array([[0.0]])
    c, s, b = np.array([[0.1], [3.0], [0.2]]), np.array([1.0, 3.0, 1.0]), np.array([2.0, 6.0, 1.0])
    exact = clear(x, c, s, b)
    assert (exact.winner[0], exact.runner_up[0]) == (1, 0)
    v_b = true_value(x[0], c[1], 3.0, 6.0)
    assert round(v_b - exact.payment[0], 3) == 0.227  # B's utility under exact VCG
    approx = clear(x, c, s, b, eligible=np.array([True, False, True]))  # the index misses B
    assert approx.winner[0] == 0  # truthful B loses: utility 0
    lie = c.copy()
    lie[1] = 0.5  # B declares its center inside the probed cell
    out = clear(x, lie, s, b)
    assert out.winner[0] == 1 and v_b - out.payment[0] > 0.2  # the lie pays
    # Certified approximate clearing gives the exact outcome to the truthful report.
    am = ApproxMarket(c, s, b, kind="ivf", k=2, nlist=1, nprobe=1, cells=2)
    assert_same(am.clear(x), exact)


def test_audit_against_exact_on_a_sample():
    x, c, s, b = clustered(2000, 8, 100, seed=6)
    full = ApproxMarket(c, s, b, kind="ivf", k=2000, nlist=4, nprobe=4)
    assert full.audit(x, sample=40) == {
        "queries": 40,
        "share_exact_winner": 1.0,
        "share_exact_price": 1.0,
        "welfare_loss": 0.0,
    }
    poor = ApproxMarket(c, s, b, kind="hnsw", k=2, hnsw_m=4, ef_search=2, ef_construction=8)
    rep = poor.audit(x, sample=100)
    got = poor.clear(x, certify=False)
    exact = clear(x, c, s, b)
    assert rep["share_exact_winner"] == (got.winner == exact.winner).mean()
