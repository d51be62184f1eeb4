"""Exactness and input validation of :func:`adspace.mechanisms.vcg.clear` (and :class:`Market`).

The contract: winner and payment equal a direct float64 evaluation of the formulas
``score = log b − Σ(x − c)²/σ²`` and ``value = b·exp(−Σ(x − c)²/σ²)`` (argmax with ties to the lowest
index; payment = the runner-up's reported value, raised to the reserve, capped at the winner's value),
for any scale of coordinates and reach. :func:`brute_force` below is that direct evaluation, written
independently of vcg.py.

"Equal" allows for one thing only: two direct float64 evaluations of the same score may sum the
squares in a different order, so they can differ by about ``(d + 4)·u·(|log b| + t)`` (``u = 2⁻⁵³``,
``t = ‖x − c‖²/σ²``). Winners are therefore compared exactly unless two scores lie within that
rounding band (then clear must pick one of the near-tied advertisers), and payments to a relative
1e-10 (a value ``b·exp(−t)`` turns the absolute error of ``t`` into a relative one; values are 0 for
``t > 745``, so the error is at most ~1e-11). Bit-identical ties (twins) are checked exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adspace.mechanisms import vcg
from adspace.mechanisms.vcg import Clearing, Market, clear, reported_value, score, true_value

U = 2.0**-53
RTOL = 1e-10
TINY = 1e-300

_SCALE = max(1, int(os.environ.get("ADSPACE_HYPOTHESIS_SCALE", "1")))


def examples(n: int) -> settings:
    # no deadline and no too-slow health check: CI machines are shared and timing is not what we test
    return settings(max_examples=n * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------
# The reference: direct float64 evaluation, one query at a time
# --------------------------------------------------------------------------------------------------


@dataclass
class Reference:
    scores: np.ndarray  # (Q, N), -inf where ineligible
    values: np.ndarray  # (Q, N)
    tol: np.ndarray  # (Q, N) rounding band of each score
    eligible: np.ndarray  # (Q, N)
    winner: np.ndarray  # (Q,) argmax, ties to the lowest index, -1 for none / below reserve
    runner_up: np.ndarray
    payment: np.ndarray


def brute_force(queries, centers, sigmas, bids, *, reserve: float = 0.0, eligible=None) -> Reference:
    x = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    c = np.asarray(centers, dtype=np.float64)
    s = np.asarray(sigmas, dtype=np.float64)
    b = np.asarray(bids, dtype=np.float64)
    nq, n, d = x.shape[0], c.shape[0], x.shape[1]
    elig = np.ones((nq, n), dtype=bool) if eligible is None else np.broadcast_to(eligible, (nq, n)).copy()
    scores = np.full((nq, n), -np.inf)
    values = np.zeros((nq, n))
    tol = np.zeros((nq, n))
    winner = np.full(nq, -1)
    runner = np.full(nq, -1)
    payment = np.zeros(nq)
    for q in range(nq):
        t = np.array([sum((x[q, k] - c[j, k]) ** 2 for k in range(d)) / (s[j] * s[j]) for j in range(n)])
        sc = np.log(b) - t
        values[q] = b * np.exp(-t)
        tol[q] = 8 * (d + 4) * U * (np.abs(np.log(b)) + t)
        scores[q] = np.where(elig[q], sc, -np.inf)
        if not elig[q].any():
            continue
        w = int(np.argmax(scores[q]))  # first maximum
        if values[q, w] < reserve:
            continue
        winner[q] = w
        rest = scores[q].copy()
        rest[w] = -np.inf
        if elig[q].sum() >= 2:
            runner[q] = int(np.argmax(rest))
        rv = values[q, runner[q]] if runner[q] >= 0 else 0.0
        payment[q] = min(max(rv, reserve), values[q, w])
    return Reference(scores, values, tol, elig, winner, runner, payment)


def assert_matches(out: Clearing, ref: Reference, reserve: float = 0.0) -> None:
    """clear's outcome equals the direct evaluation (up to the rounding band of near-ties)."""
    nq = ref.scores.shape[0]
    assert out.winner.shape == out.runner_up.shape == out.payment.shape == out.score.shape == (nq,)
    assert out.winner.dtype == np.int64 and out.runner_up.dtype == np.int64 and out.payment.dtype == np.float64
    for q in range(nq):
        sc, tol, val = ref.scores[q], ref.tol[q], ref.values[q]
        w, r = int(out.winner[q]), int(out.runner_up[q])
        if not ref.eligible[q].any():
            assert w == -1 and r == -1 and out.payment[q] == 0.0 and out.score[q] == -np.inf
            continue
        best = int(np.argmax(sc))
        near = np.flatnonzero(sc >= sc[best] - tol[best] - tol)  # advertisers tied with the best up to rounding
        if w == -1:  # no fill: only allowed when the best reported value is below the reserve
            assert ref.winner[q] == -1 or (len(near) > 1 or np.isclose(val[best], reserve, rtol=RTOL))
            assert r == -1 and out.payment[q] == 0.0 and out.score[q] == -np.inf and out.value[q] == 0.0
            continue
        assert w in near, f"query {q}: winner {w}, best {best} (score {sc[w]} vs {sc[best]})"
        if len(near) == 1:
            assert w == best
        assert ref.eligible[q, w]
        assert val[w] >= reserve * (1 - RTOL)
        # runner-up: the best other eligible advertiser (up to rounding)
        rest = sc.copy()
        rest[w] = -np.inf
        if ref.eligible[q].sum() < 2:
            assert r == -1
            rv = 0.0
        else:
            b2 = int(np.argmax(rest))
            near2 = np.flatnonzero(rest >= rest[b2] - tol[b2] - tol)
            assert r in near2 and r != w and ref.eligible[q, r]
            if len(near2) == 1:
                assert r == b2
            rv = val[r]
        np.testing.assert_allclose(out.payment[q], min(max(rv, reserve), val[w]), rtol=RTOL, atol=TINY)
        assert abs(out.score[q] - sc[w]) <= tol[w]
        np.testing.assert_allclose(out.value[q], val[w], rtol=RTOL, atol=TINY)
        assert out.payment[q] <= out.value[q]
        if r >= 0:
            assert abs(out.runner_up_score[q] - sc[r]) <= tol[r]


# --------------------------------------------------------------------------------------------------
# Strategies: markets at every scale
# --------------------------------------------------------------------------------------------------


@dataclass
class Case:
    queries: np.ndarray
    centers: np.ndarray
    sigmas: np.ndarray
    bids: np.ndarray

    def __repr__(self) -> str:
        def arr(a):
            return np.array2string(a, precision=17, separator=", ", threshold=10_000, floatmode="unique")

        return (
            f"Case(queries=np.array({arr(self.queries)}), centers=np.array({arr(self.centers)}), "
            f"sigmas=np.array({arr(self.sigmas)}), bids=np.array({arr(self.bids)}))"
        )


unit = st.floats(-1.0, 1.0)


@st.composite
def scaled_markets(draw, max_n: int = 12, max_q: int = 6) -> Case:
    """Clusters up to 1e6 from the origin; reaches from 1e-6 to 1e4; points spread on the scale of the
    reach (so the auction is contested); 1 to 3 clusters, so that translating by the mean center does
    not remove the cancellation; bids from 1e-3 to 1e3; occasional twins and queries on centers."""
    d = draw(st.integers(1, 8))
    n = draw(st.integers(1, max_n))
    nq = draw(st.integers(1, max_q))
    k = draw(st.floats(0.0, 6.0))  # log10 distance of the clusters from the origin
    sl = draw(st.floats(-6.0, 4.0))  # log10 reach
    ncl = draw(st.integers(1, 3))
    dirs = draw(hnp.arrays(np.float64, (ncl, d), elements=unit))
    dirs[np.linalg.norm(dirs, axis=1) < 1e-3, 0] = 1.0
    origins = 10.0**k * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    spread = 10.0 ** draw(st.floats(-1.0, 1.0))
    ca = draw(hnp.arrays(np.int64, n, elements=st.integers(0, ncl - 1)))
    qa = draw(hnp.arrays(np.int64, nq, elements=st.integers(0, ncl - 1)))
    centers = origins[ca] + 10.0**sl * spread * draw(hnp.arrays(np.float64, (n, d), elements=unit))
    queries = origins[qa] + 10.0**sl * spread * draw(hnp.arrays(np.float64, (nq, d), elements=unit))
    sigmas = np.clip(10.0 ** (sl + draw(hnp.arrays(np.float64, n, elements=unit))), 1e-6, 1e4)
    bids = 10.0 ** draw(hnp.arrays(np.float64, n, elements=st.floats(-3.0, 3.0)))
    for a, b in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2)):
        centers[a], sigmas[a], bids[a] = centers[b], sigmas[b], bids[b]
    for qi, j in draw(st.lists(st.tuples(st.integers(0, nq - 1), st.integers(0, n - 1)), max_size=2)):
        queries[qi] = centers[j]
    return Case(queries, centers, sigmas, bids)


# --------------------------------------------------------------------------------------------------
# Exactness
# --------------------------------------------------------------------------------------------------


@examples(300)
@given(case=scaled_markets(), reserve=st.one_of(st.just(0.0), st.floats(0.0, 10.0)), data=st.data())
def test_clear_matches_brute_force_across_scales(case: Case, reserve: float, data) -> None:
    elig_kind = data.draw(st.sampled_from(["none", "(N,)", "(Q, N)"]))
    nq, n = case.queries.shape[0], case.centers.shape[0]
    eligible = {
        "none": None,
        "(N,)": data.draw(hnp.arrays(np.bool_, n)),
        "(Q, N)": data.draw(hnp.arrays(np.bool_, (nq, n))),
    }[elig_kind]
    out = clear(case.queries, case.centers, case.sigmas, case.bids, reserve=reserve, eligible=eligible)
    ref = brute_force(case.queries, case.centers, case.sigmas, case.bids, reserve=reserve, eligible=eligible)
    assert_matches(out, ref, reserve)
    # the public per-advertiser explanation agrees with the reference too
    m = Market(case.centers, case.sigmas, case.bids)
    for q in range(nq):
        e = ref.eligible[q]
        assert np.all(np.abs(m.scores(case.queries[q])[e] - ref.scores[q][e]) <= ref.tol[q][e])


def _far_tiny_market(rng: np.random.Generator):
    """Two clusters at ±(1e6, …) with reach 1e-3: each point is 1e6 from the origin while the
    differences that decide the auction are ~1e-3."""
    d, n, nq, sigma = 8, 12, 300, 1e-3
    p = np.full(d, 1e6 / np.sqrt(d)) * np.linspace(0.5, 1.5, d)
    centers = np.vstack([p + sigma * rng.standard_normal((n, d)), -p + sigma * rng.standard_normal((n, d))])
    queries = np.vstack([p + sigma * rng.standard_normal((nq, d)), -p + sigma * rng.standard_normal((nq, d))])
    sigmas = np.full(2 * n, sigma) * rng.uniform(0.5, 2.0, 2 * n)
    bids = rng.uniform(1.0, 3.0, 2 * n)
    return queries, centers, sigmas, bids


def test_clear_exact_where_naive_float32_expansion_fails() -> None:
    """Tiny sigma far from the origin: expanding ‖x‖² − 2<x, c> + ‖c‖² in float32 (the textbook MIPS fast
    path) picks wrong winners for most queries; clear picks the direct float64 argmax for all of them."""
    queries, centers, sigmas, bids = _far_tiny_market(np.random.default_rng(20260706))
    ref = brute_force(queries, centers, sigmas, bids)

    x32, c32 = queries.astype(np.float32), centers.astype(np.float32)
    sq32 = (x32 * x32).sum(1)[:, None] - 2 * (x32 @ c32.T) + (c32 * c32).sum(1)[None, :]
    naive32 = np.argmax(np.log(bids).astype(np.float32) - sq32 / (sigmas * sigmas).astype(np.float32), axis=1)
    wrong32 = np.mean(naive32 != ref.winner)
    assert wrong32 > 0.5, wrong32
    # even float64 does not survive the expansion at this scale (‖x‖² ~ 1e12, ulp ~ 1e-4 >> σ² = 1e-6)
    sq64 = (queries**2).sum(1)[:, None] - 2 * (queries @ centers.T) + (centers**2).sum(1)[None, :]
    naive64 = np.argmax(np.log(bids) - sq64 / (sigmas * sigmas), axis=1)
    assert np.mean(naive64 != ref.winner) > 0.1

    out = clear(queries, centers, sigmas, bids)
    np.testing.assert_array_equal(out.winner, ref.winner)
    np.testing.assert_array_equal(out.runner_up, ref.runner_up)
    np.testing.assert_allclose(out.payment, ref.payment, rtol=RTOL, atol=TINY)
    assert_matches(out, ref)


def test_clear_exact_in_a_contested_far_market_with_chunks() -> None:
    """The same adversarial market through a chunked Market gives identical results."""
    queries, centers, sigmas, bids = _far_tiny_market(np.random.default_rng(7))
    a = Market(centers, sigmas, bids).clear(queries)
    b = Market(centers, sigmas, bids, max_chunk_bytes=1000).clear(queries)
    for f in ("winner", "runner_up", "payment", "score", "value", "runner_up_score"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


# --------------------------------------------------------------------------------------------------
# Ties, reserve, eligibility, shapes
# --------------------------------------------------------------------------------------------------


@examples(200)
@given(case=scaled_markets(max_n=8), copies=st.integers(2, 3), data=st.data())
def test_ties_go_to_lowest_index_and_twin_is_runner_up(case: Case, copies: int, data) -> None:
    """Bit-identical twins: the lowest index wins, the next twin is the runner-up and the payment is
    the twin's reported value, i.e. the winner's own value (exactly)."""
    n = case.centers.shape[0]
    j = data.draw(st.integers(0, n - 1))
    slots = sorted(data.draw(st.lists(st.integers(0, n + copies - 2), min_size=copies, max_size=copies, unique=True)))
    # build a market of n + copies - 1 advertisers in which `slots` hold copies of advertiser j
    others = [k for k in range(n) if k != j]
    order, it = [], iter(others)
    for pos in range(n + copies - 1):
        order.append(j if pos in slots else next(it))
    c, s, b = case.centers[order], case.sigmas[order], case.bids[order]
    q = case.queries.copy()
    q[0] = c[slots[-1]]  # at the twins' center they are certain to be at the top unless outbid
    out = clear(q, c, s, b)
    ref = brute_force(q, c, s, b)
    assert_matches(out, ref)
    # every advertiser bit-identical to j (the copies, and any twin the case already had)
    group = np.flatnonzero(np.all(c == c[slots[0]], axis=1) & (s == s[slots[0]]) & (b == b[slots[0]]))
    assert set(slots) <= set(group.tolist())
    m = Market(c, s, b)
    for qi in range(q.shape[0]):
        if out.winner[qi] in group:
            # every advertiser whose score equals the winner's exactly (the copies, plus any other
            # report that ties bit for bit, e.g. another reach at a common center): first wins, next pays
            tied = np.flatnonzero(m.scores(q[qi]) == out.score[qi])
            assert set(group.tolist()) <= set(tied.tolist())
            assert out.winner[qi] == tied[0]
            assert out.runner_up[qi] == tied[1]
            assert out.payment[qi] == out.value[qi]
            assert out.score[qi] == out.runner_up_score[qi]


def test_ties_at_a_keyword_point_are_exact() -> None:
    """Equal bids at a common center tie exactly whatever the reaches: first index wins, next pays."""
    x = np.array([3.0, -1.0])
    out = clear(x, np.tile(x, (4, 1)), [1e-6, 1.0, 1e4, 5.0], [2.0, 7.0, 7.0, 7.0])
    assert (out.winner[0], out.runner_up[0], out.payment[0]) == (1, 2, 7.0)


def test_reserve_semantics() -> None:
    """reserve is a phantom bidder in value units: no fill below it, the payment is raised to it, the
    boundary (value == reserve) fills and pays the reserve."""
    x = np.zeros(2)
    c = np.zeros((2, 2))
    s, b = [1.0, 1.0], [5.0, 3.0]

    def run(reserve):
        out = clear(x, c, s, b, reserve=reserve)
        return int(out.winner[0]), int(out.runner_up[0]), float(out.payment[0])

    assert run(0.0) == (0, 1, 3.0)
    assert run(2.0) == (0, 1, 3.0)  # reserve below the runner-up: no effect
    assert run(4.0) == (0, 1, 4.0)  # raised to the reserve
    assert run(5.0) == (0, 1, 5.0)  # boundary: filled, pays exactly its value
    assert run(5.000001) == (-1, -1, 0.0)  # below the reserve: no fill
    lone = clear(x, c[:1], [1.0], [5.0], reserve=1.5)
    assert (lone.winner[0], lone.runner_up[0], lone.payment[0]) == (0, -1, 1.5)  # unopposed pays the reserve
    # off-center: the reserve compares with the reported value b·exp(−t), not the bid
    off = clear([1.0, 0.0], [[0.0, 0.0]], [1.0], [5.0], reserve=2.0)  # value 5/e ≈ 1.84 < 2
    assert off.winner[0] == -1 and off.payment[0] == 0.0 and off.score[0] == -np.inf and off.value[0] == 0.0


@examples(150)
@given(case=scaled_markets(), reserve=st.floats(0.0, 1e3))
def test_reserve_matches_brute_force(case: Case, reserve: float) -> None:
    out = clear(case.queries, case.centers, case.sigmas, case.bids, reserve=reserve)
    ref = brute_force(case.queries, case.centers, case.sigmas, case.bids, reserve=reserve)
    assert_matches(out, ref, reserve)
    assert np.all(out.payment[out.winner >= 0] >= reserve)
    assert np.all(out.value[out.winner >= 0] >= reserve)


@examples(150)
@given(case=scaled_markets(), data=st.data())
def test_eligible_mask_equals_clearing_the_sub_market(case: Case, data) -> None:
    """An (N,) mask clears exactly like the market restricted to the eligible advertisers; an all-False
    row of a (Q, N) mask is not filled."""
    n, nq = case.centers.shape[0], case.queries.shape[0]
    mask = data.draw(hnp.arrays(np.bool_, n))
    out = clear(case.queries, case.centers, case.sigmas, case.bids, eligible=mask)
    idx = np.flatnonzero(mask)
    sub = clear(case.queries, case.centers[idx], case.sigmas[idx], case.bids[idx])
    if idx.size:
        np.testing.assert_array_equal(out.winner, np.where(sub.winner >= 0, idx[np.maximum(sub.winner, 0)], -1))
        np.testing.assert_array_equal(
            out.runner_up, np.where(sub.runner_up >= 0, idx[np.maximum(sub.runner_up, 0)], -1)
        )
        np.testing.assert_allclose(out.payment, sub.payment, rtol=RTOL, atol=TINY)
    else:
        assert np.all(out.winner == -1) and np.all(out.payment == 0.0)
    rows = data.draw(hnp.arrays(np.bool_, (nq, n)))
    rows[0] = False
    out2 = clear(case.queries, case.centers, case.sigmas, case.bids, eligible=rows)
    assert out2.winner[0] == -1 and out2.runner_up[0] == -1 and out2.payment[0] == 0.0
    assert_matches(out2, brute_force(case.queries, case.centers, case.sigmas, case.bids, eligible=rows))


@examples(100)
@given(case=scaled_markets())
def test_single_query_vector_input(case: Case) -> None:
    """A (d,) query is a batch of one: same results as (1, d)."""
    x = case.queries[0]
    a = clear(x, case.centers, case.sigmas, case.bids)
    b = clear(x[None], case.centers, case.sigmas, case.bids)
    assert len(a) == 1 and a.winner.shape == (1,)
    for f in ("winner", "runner_up", "payment", "score", "value", "runner_up_score"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    # a (d,) query with a (1, N) eligible mask
    e = clear(x, case.centers, case.sigmas, case.bids, eligible=np.ones((1, case.centers.shape[0]), dtype=bool))
    np.testing.assert_array_equal(e.winner, a.winner)


def test_empty_market_and_single_advertiser() -> None:
    q = np.array([[0.0, 1.0], [2.0, 3.0]])
    empty = clear(q, np.zeros((0, 2)), np.zeros(0), np.zeros(0))
    assert len(empty) == 2
    np.testing.assert_array_equal(empty.winner, [-1, -1])
    np.testing.assert_array_equal(empty.runner_up, [-1, -1])
    np.testing.assert_array_equal(empty.payment, [0.0, 0.0])
    np.testing.assert_array_equal(empty.score, [-np.inf, -np.inf])
    assert not empty.filled.any()
    one = clear(q, [[0.0, 0.0]], [2.0], [3.0])
    np.testing.assert_array_equal(one.winner, [0, 0])
    np.testing.assert_array_equal(one.runner_up, [-1, -1])
    np.testing.assert_array_equal(one.payment, [0.0, 0.0])  # unopposed: Clarke pivot 0
    np.testing.assert_allclose(one.score, np.log(3.0) - np.array([1.0, 13.0]) / 4.0, rtol=0, atol=4 * U * 4)
    assert one.filled.all()
    no_queries = clear(np.zeros((0, 2)), [[0.0, 0.0]], [2.0], [3.0])
    assert len(no_queries) == 0 and no_queries.winner.shape == (0,)


@examples(100)
@given(
    case=scaled_markets(max_q=12),
    split=st.one_of(
        st.tuples(st.just("max_chunk_bytes"), st.sampled_from([1, 7, 60, 500, 5000])),
        st.tuples(st.just("threads"), st.integers(2, 4)),
    ),
    data=st.data(),
)
def test_chunking_and_threads_give_identical_results(case: Case, split, data) -> None:
    """``Market(..., max_chunk_bytes=small)`` processes a few queries at a time, ``Market(...,
    threads=k)`` fills the screening product in k blocks of advertisers on k threads: either way the
    clearing is identical to the plain one, per-query ``(Q, N)`` eligibility masks (sliced with the
    chunks and the blocks) included."""
    nq, n = case.queries.shape[0], case.centers.shape[0]
    mask = data.draw(st.one_of(st.none(), hnp.arrays(np.bool_, n), hnp.arrays(np.bool_, (nq, n))))
    reserve = data.draw(st.one_of(st.just(0.0), st.floats(0.0, 5.0)))
    a = Market(case.centers, case.sigmas, case.bids).clear(case.queries, reserve=reserve, eligible=mask)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vcg, "_MIN_BLOCK", 1)  # split even the small markets hypothesis draws
        b = Market(case.centers, case.sigmas, case.bids, **dict([split])).clear(
            case.queries, reserve=reserve, eligible=mask
        )
    for f in ("winner", "runner_up", "payment", "score", "value", "runner_up_score"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert_matches(
        b, brute_force(case.queries, case.centers, case.sigmas, case.bids, reserve=reserve, eligible=mask), reserve
    )


def test_clear_function_equals_market_clear() -> None:
    rng = np.random.default_rng(3)
    q, c = rng.normal(size=(50, 5)), rng.normal(size=(30, 5))
    s, b = rng.uniform(0.2, 2.0, 30), rng.uniform(0.1, 10.0, 30)
    a = clear(q, c, s, b, reserve=0.1)
    m = Market(c, s, b).clear(q, reserve=0.1)
    for f in ("winner", "runner_up", "payment", "score", "value", "runner_up_score"):
        np.testing.assert_array_equal(getattr(a, f), getattr(m, f))
    assert_matches(a, brute_force(q, c, s, b, reserve=0.1), 0.1)


def test_clear_accepts_lists_and_does_not_modify_inputs() -> None:
    q = np.array([[0.5, 0.5]])
    c = np.array([[0.0, 0.0], [1.0, 1.0]])
    s, b = np.array([1.0, 1.0]), np.array([2.0, 2.0])
    copies = [a.copy() for a in (q, c, s, b)]
    out = clear(q, c, s, b)
    for a, a0 in zip((q, c, s, b), copies, strict=True):
        np.testing.assert_array_equal(a, a0)
    lists = clear(q.tolist(), c.tolist(), s.tolist(), b.tolist())
    np.testing.assert_array_equal(lists.winner, out.winner)
    assert out.winner[0] == 0 and out.runner_up[0] == 1 and out.payment[0] == out.value[0]  # symmetric tie


# --------------------------------------------------------------------------------------------------
# Validation: ValueError naming the argument
# --------------------------------------------------------------------------------------------------

Q2 = [[0.0, 0.0]]
C2 = [[0.0, 0.0], [1.0, 1.0]]
S2 = [1.0, 1.0]
B2 = [1.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sigmas": [1.0, 0.0]}, "sigmas"),
        ({"sigmas": [-1.0, 1.0]}, "sigmas"),
        ({"bids": [1.0, 0.0]}, "bids"),
        ({"bids": [-2.0, 1.0]}, "bids"),
        ({"queries": [[np.nan, 0.0]]}, "queries"),
        ({"queries": [[0.0, np.inf]]}, "queries"),
        ({"centers": [[0.0, 0.0], [np.nan, 1.0]]}, "centers"),
        ({"centers": [[0.0, -np.inf], [1.0, 1.0]]}, "centers"),
        ({"sigmas": [1.0, np.nan]}, "sigmas"),
        ({"sigmas": [np.inf, 1.0]}, "sigmas"),
        ({"bids": [np.nan, 1.0]}, "bids"),
        ({"bids": [1.0, np.inf]}, "bids"),
        ({"queries": [[0.0, 0.0, 0.0]]}, "queries"),  # dimension mismatch
        ({"queries": [0.0, 0.0, 0.0]}, "queries"),
        ({"queries": [[[0.0, 0.0]]]}, "queries"),  # 3-D
        ({"queries": "abc"}, "queries"),
        ({"centers": [0.0, 0.0]}, "centers"),  # 1-D
        ({"centers": np.zeros((2, 0)), "queries": np.zeros((1, 0))}, "centers"),  # d = 0
        ({"sigmas": [1.0, 1.0, 1.0]}, "sigmas"),  # length mismatch
        ({"sigmas": [[1.0, 1.0]]}, "sigmas"),
        ({"bids": [1.0]}, "bids"),
        ({"eligible": np.array([1, 0])}, "eligible"),  # not boolean
        ({"eligible": np.array([1.0, 0.0])}, "eligible"),
        ({"eligible": np.ones(3, dtype=bool)}, "eligible"),  # wrong shape
        ({"eligible": np.ones((2, 2), dtype=bool)}, "eligible"),  # Q = 1
        ({"eligible": np.ones((1, 2, 1), dtype=bool)}, "eligible"),
        ({"reserve": -0.5}, "reserve"),
        ({"reserve": np.nan}, "reserve"),
        ({"reserve": np.inf}, "reserve"),
        ({"reserve": "high"}, "reserve"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, name) -> None:
    args = {"queries": Q2, "centers": C2, "sigmas": S2, "bids": B2} | kwargs
    pos = [args.pop(k) for k in ("queries", "centers", "sigmas", "bids")]
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        clear(*pos, **args)


@pytest.mark.parametrize(
    ("fn", "args", "name"),
    [
        (score, ([0.0], [0.0], 0.0, 1.0), "sigma"),
        (score, ([0.0], [0.0], 1.0, -1.0), "bid"),
        (score, ([0.0], [np.nan], 1.0, 1.0), "center"),
        (score, ([0.0, 1.0], [0.0], 1.0, 1.0), "center"),
        (score, ([np.inf], [0.0], 1.0, 1.0), "x"),
        (reported_value, ([0.0], [0.0], [1.0, -1.0], 1.0), "sigma"),
        (reported_value, ([0.0], [0.0], 1.0, 0.0), "bid"),
        (true_value, ([0.0], [0.0], 0.0, 1.0), "true_sigma"),
        (true_value, ([0.0], [0.0], 1.0, 0.0), "value"),
    ],
)
def test_formulas_validate_their_arguments(fn, args, name) -> None:
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        fn(*args)


def test_market_methods_validate_queries() -> None:
    m = Market(C2, S2, B2)
    with pytest.raises(ValueError, match=r"^x\b"):
        m.scores([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"^x\b"):
        m.reported_values([[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^queries\b"):
        m.clear([[0.0]])
