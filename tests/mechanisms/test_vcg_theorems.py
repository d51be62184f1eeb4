"""The claims of J. Kim, "Formally Verified VCG Mechanisms for Advertising in Embedding Spaces" (2026),
as executable property tests on the real :func:`adspace.mechanisms.vcg.clear`, ``score``,
``reported_value``, ``true_value``, ``utility`` and :mod:`adspace.mechanisms.geometry`.

Every test is named after the Lean theorem of the artifact (kimjune01/auction-proof) it checks;
docs/theorems.md maps claim -> Lean theorem -> test.

Floating point
--------------
The theorems are identities and inequalities over the reals; the code evaluates them in float64.
Where two sides are computed along different float64 paths we compare with a tolerance derived from
the standard rounding analysis, never a blanket ``approx``:

* A score ``log b − t`` with ``t = ‖x − c‖²/σ²`` evaluated by a direct float64 formula errs by at most
  about ``(d + 4)·u·(|log b| + t)`` (``u = 2⁻⁵³``; Higham §3.1 for the sum of squares). ``score_tol``
  allows 8× that. Gradual underflow adds an absolute ``η <= 2⁻¹⁰⁷⁵`` to every product and quotient
  (Higham §2.1; sums have none): ``η·(d/σ² + 1)`` for a score; ``score_tol`` allows it for both
  evaluations, doubled for the later roundings it passes.
* A reported value ``b·exp(−t)`` inherits the absolute error of ``t`` as a relative error. Values are
  only non-zero for ``t < 745``, so two evaluations agree to ~1e-11 relative; :data:`REL` = 1e-9
  leaves room and is still far below anything economically meaningful.
* Identities that are exact in float64 (score at the center, reported value at the center, the
  second-price payment at a keyword point, ties between bit-identical twins) are asserted exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adspace.mechanisms.geometry import (
    equal_sigma_weight,
    lift_query_paraboloid,
    lifted_power_distance,
    lifted_site,
    lifted_weight,
    power_distance,
)
from adspace.mechanisms.vcg import (
    Market,
    Valuation,
    clear,
    reported_value,
    score,
    true_value,
    utility,
)

U = 2.0**-53  # unit roundoff of float64
REL = 1e-9  # relative tolerance between reported values computed along different float64 paths
TINY = 1e-300  # absolute floor for comparisons of values that may underflow
TWO_ETA = 2.0**-1074  # twice the bound η = 2⁻¹⁰⁷⁵ on the absolute error of an underflowing product or quotient

# Scale every example budget with ADSPACE_HYPOTHESIS_SCALE (e.g. 20 for a thorough local run).
_SCALE = max(1, int(os.environ.get("ADSPACE_HYPOTHESIS_SCALE", "1")))


def examples(n: int) -> settings:
    # no deadline and no too-slow health check: CI machines are shared and timing is not what we test
    return settings(max_examples=n * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------------

coord = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)
log_sigma = st.floats(float(np.log(0.25)), float(np.log(4.0)))
log_bid = st.floats(float(np.log(0.01)), float(np.log(100.0)))
wide_log_sigma = st.floats(float(np.log(1e-3)), float(np.log(1e3)))
wide_log_bid = st.floats(float(np.log(1e-6)), float(np.log(1e6)))


def matrices(n: int, d: int):
    return hnp.arrays(np.float64, (n, d), elements=coord)


@dataclass
class Profile:
    """Reports of N advertisers and Q queries in R^d (``np`` arrays)."""

    queries: np.ndarray  # (Q, d)
    centers: np.ndarray  # (N, d)
    sigmas: np.ndarray  # (N,)
    bids: np.ndarray  # (N,)

    @property
    def n(self) -> int:
        return self.centers.shape[0]

    @property
    def d(self) -> int:
        return self.centers.shape[1]

    def __repr__(self) -> str:  # full precision, so a failing example can be pasted back
        def arr(a):
            return np.array2string(a, precision=17, separator=", ", threshold=10_000, floatmode="unique")

        return (
            f"Profile(queries=np.array({arr(self.queries)}), centers=np.array({arr(self.centers)}), "
            f"sigmas=np.array({arr(self.sigmas)}), bids=np.array({arr(self.bids)}))"
        )

    def with_report(self, i: int, center, sigma: float, bid: float) -> Profile:
        c, s, b = self.centers.copy(), self.sigmas.copy(), self.bids.copy()
        c[i], s[i], b[i] = center, sigma, bid
        return Profile(self.queries, c, s, b)

    def clear(self, **kw):
        return clear(self.queries, self.centers, self.sigmas, self.bids, **kw)

    def valuation(self, i: int) -> Valuation:
        """The valuation for which advertiser ``i``'s report is truthful."""
        return Valuation(self.centers[i].copy(), float(self.sigmas[i]), float(self.bids[i]))

    def reported(self) -> np.ndarray:
        """``(Q, N)`` reported values ``b·exp(−‖x − c‖²/σ²)`` through the real ``reported_value``."""
        return np.asarray(reported_value(self.queries[:, None, :], self.centers[None], self.sigmas, self.bids))

    def scores(self) -> np.ndarray:
        """``(Q, N)`` scores through the real ``score``."""
        return np.asarray(score(self.queries[:, None, :], self.centers[None], self.sigmas, self.bids))

    def t(self) -> np.ndarray:
        diff = self.queries[:, None, :] - self.centers[None]
        return np.einsum("qnk,qnk->qn", diff, diff) / self.sigmas**2


@st.composite
def profiles(draw, min_n: int = 1, max_n: int = 12, max_q: int = 6, max_d: int = 8, wide: bool = False) -> Profile:
    """Random reports, with occasional exact twins (ties) and queries placed on centers (keyword points)."""
    d = draw(st.integers(1, max_d))
    n = draw(st.integers(min_n, max_n))
    q = draw(st.integers(1, max_q))
    centers = draw(matrices(n, d))
    queries = draw(matrices(q, d))
    sigmas = np.exp(draw(hnp.arrays(np.float64, n, elements=wide_log_sigma if wide else log_sigma)))
    bids = np.exp(draw(hnp.arrays(np.float64, n, elements=wide_log_bid if wide else log_bid)))
    for a, b in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=2)):
        centers[a], sigmas[a], bids[a] = centers[b], sigmas[b], bids[b]  # bit-identical twins
    for qi, j in draw(st.lists(st.tuples(st.integers(0, q - 1), st.integers(0, n - 1)), max_size=2)):
        queries[qi] = centers[j]  # a query exactly on a center
    return Profile(queries, centers, sigmas, bids)


reserves = st.one_of(st.just(0.0), st.floats(0.0, 20.0))


def score_tol(p: Profile) -> np.ndarray:
    """``(Q, N)`` bound on the float64 error of a direct score evaluation (see the module docstring)."""
    return 8 * (p.d + 4) * U * (np.abs(np.log(p.bids))[None, :] + p.t()) + 2 * TWO_ETA * (p.d / p.sigmas**2 + 1)


def others_best(p: Profile, i: int, reserve: float = 0.0, eligible=None) -> np.ndarray:
    """``(Q,)`` Clarke pivot of ``i`` computed independently of ``clear``: the best other eligible
    reported value (0 when none), raised to the reserve."""
    v = p.reported()
    mask = np.ones_like(v, dtype=bool) if eligible is None else np.broadcast_to(eligible, v.shape).copy()
    mask[:, i] = False
    best = np.where(mask, v, 0.0).max(axis=1, initial=0.0)
    return np.maximum(best, reserve)


def player_utility(p: Profile, i: int, valuation: Valuation, **kw) -> np.ndarray:
    """``(Q,)`` quasilinear utility of advertiser ``i`` under the real ``clear`` and ``utility``."""
    out = p.clear(**kw)
    won = out.winner == i
    return np.asarray(utility(valuation, p.queries, won, np.where(won, out.payment, 0.0)), dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Efficiency.lean: the bridge
# --------------------------------------------------------------------------------------------------


@examples(150)
@given(p=profiles(wide=True))
def test_score_eq_log_reportedVal(p: Profile) -> None:
    """score(x) = log(reportedVal(x)) for every report, truthful or not."""
    s, v, t = p.scores(), p.reported(), p.t()
    logb = np.log(p.bids)[None, :]
    assert np.all(np.abs(s - (logb - t)) <= score_tol(p))  # the definition (sums may differ in order)
    normal = v > 1e-300  # log of a subnormal/underflowed value is not the score any more
    tol = 8 * U * (1 + np.abs(logb) + t)  # b·exp(−t) and log() each add a few ulps
    assert np.all(np.abs(np.log(v[normal]) - s[normal]) <= tol[normal])
    assert np.all(s[~normal] <= np.log(1e-300) + 1e-6)  # underflowed values belong to very low scores
    # The same identity on what clear returns for its winner.
    out = p.clear()
    filled = out.value > 1e-300
    lb = np.log(p.bids[out.winner[filled]])
    tol_w = 8 * U * (1 + np.abs(lb) + np.abs(lb - out.score[filled]))
    assert np.all(np.abs(np.log(out.value[filled]) - out.score[filled]) <= tol_w)


@examples(100)
@given(p=profiles(wide=True))
def test_reportedVal_eq_trueVal_of_truthful(p: Profile) -> None:
    """A truthful report's reported value is the true value, bit for bit (same formula)."""
    for i in range(p.n):
        val = p.valuation(i)
        rv = reported_value(p.queries, p.centers[i], p.sigmas[i], p.bids[i])
        np.testing.assert_array_equal(rv, val.at(p.queries))
        np.testing.assert_array_equal(rv, true_value(p.queries, val.center, val.sigma, val.value))


@examples(100)
@given(p=profiles(wide=True))
def test_score_eq_log_trueVal(p: Profile) -> None:
    """Under truthful reports score = log(trueVal) (Efficiency.lean, ``score_eq_log_trueVal``)."""
    tv = np.stack([p.valuation(i).at(p.queries) for i in range(p.n)], axis=1)
    s, t = p.scores(), p.t()
    normal = tv > 1e-300
    tol = 8 * U * (1 + np.abs(np.log(p.bids))[None, :] + t)
    assert np.all(np.abs(np.log(tv[normal]) - s[normal]) <= tol[normal])


@examples(150)
@given(p=profiles(wide=True))
def test_winner_maximizes_reportedVal(p: Profile) -> None:
    """No truthfulness needed: clear's winner has the highest reported value at every query."""
    out, v = p.clear(), p.reported()
    assert np.all(out.winner >= 0)
    vw = v[np.arange(len(out)), out.winner]
    assert np.all(vw[:, None] >= v * (1 - REL) - TINY)
    np.testing.assert_allclose(out.value, vw, rtol=REL, atol=TINY)


@examples(150)
@given(p=profiles(wide=True))
def test_winner_maximizes_welfare(p: Profile) -> None:
    """All truthful: clear's winner has the highest *true* value at every query."""
    tv = np.stack([p.valuation(i).at(p.queries) for i in range(p.n)], axis=1)  # (Q, N)
    out = p.clear()
    tw = tv[np.arange(len(out)), out.winner]
    # exact in the reals; REL allows for score-vs-value rounding in near-ties
    assert np.all(tw[:, None] >= tv * (1 - REL) - TINY)
    # and clear's scores pick it: among clear's exact scores the winner's is the highest (ties aside)
    s = p.scores()
    sw = s[np.arange(len(out)), out.winner]
    assert np.all(sw[:, None] >= s - score_tol(p) - score_tol(p)[np.arange(len(out)), out.winner][:, None])


# --------------------------------------------------------------------------------------------------
# Strategyproof.lean: DSIC, losers pay zero, individual rationality, payment invariance
# --------------------------------------------------------------------------------------------------


def _dsic_deviations(p: Profile, i: int, val: Valuation, pivot: np.ndarray, draw) -> list[tuple[str, tuple]]:
    """Deviation reports (center, sigma, bid) of advertiser ``i``: each field alone, jointly, onto each
    query, and the bid search (a log grid and the exact threshold bids that just win / just lose)."""
    d = p.d
    c, s, b = val.center, val.sigma, val.value
    devs: list[tuple[str, tuple]] = []
    # center only: random, onto every query (the hotspot move of §4), onto a rival's center
    devs.append(("center", (draw(hnp.arrays(np.float64, d, elements=coord)), s, b)))
    devs.append(("center", (c + 1e-3, s, b)))
    for q in range(p.queries.shape[0]):
        devs.append(("center onto query", (p.queries[q].copy(), s, b)))
    devs.append(("center onto rival", (p.centers[(i + 1) % p.n].copy(), s, b)))
    # sigma only
    for s2 in (1e-3 * s, 0.5 * s, 2.0 * s, 1e3 * s, float(np.exp(draw(wide_log_sigma)))):
        devs.append(("sigma", (c, s2, b)))
    # bid only: a log grid from 1e-4 to 1e4 times the true value
    for b2 in b * np.geomspace(1e-4, 1e4, 17):
        devs.append(("bid", (c, s, float(b2))))
    # joint: random triples, and for every query (center onto it | own center) x (own | random sigma)
    # the cheapest bid that wins there (threshold * (1 + 1e-6)) and the one just below
    for _ in range(3):
        devs.append(
            (
                "joint",
                (
                    draw(hnp.arrays(np.float64, d, elements=coord)),
                    float(np.exp(draw(wide_log_sigma))),
                    float(np.exp(draw(wide_log_bid))),
                ),
            )
        )
    s_rand = float(np.exp(draw(wide_log_sigma)))
    for q in range(p.queries.shape[0]):
        x = p.queries[q]
        for c2 in (x.copy(), c):
            for s2 in (s, s_rand):
                t2 = float(np.sum((x - c2) ** 2)) / (s2 * s2)
                if t2 > 600:
                    continue  # the threshold bid would overflow; the grid above covers such reports
                thr = max(float(pivot[q]), 1e-200) * np.exp(t2)
                for f in (1 + 1e-6, 1 - 1e-6, 1.5):
                    devs.append(("threshold bid (joint)", (c2, s2, float(thr * f))))
    return devs


@examples(100)
@given(p=profiles(), reserve=reserves, data=st.data())
def test_vcg_dsic(p: Profile, reserve: float, data) -> None:
    """Truthful reporting is a dominant strategy: against arbitrary reports of the others, no deviation
    of advertiser i in center, sigma or bid, separately or jointly, including moving the center onto
    the query and the optimal (threshold) bids, gives more utility than the truth, at any query."""
    i = data.draw(st.integers(0, p.n - 1), label="i")
    val = p.valuation(i)  # i is truthful; everyone else reports arbitrarily
    u_truth = player_utility(p, i, val, reserve=reserve)
    true_v = np.asarray(val.at(p.queries))
    pivot = others_best(p, i, reserve)  # what i pays whenever it wins, whatever it reports
    tol = REL * np.maximum(true_v, pivot) + TINY

    # Truthful utility is the best-response value max(0, trueVal - pivot), computed independently.
    assert np.all(np.abs(u_truth - np.maximum(0.0, true_v - pivot)) <= tol)

    best_dev = np.full_like(u_truth, -np.inf)
    for kind, (c2, s2, b2) in _dsic_deviations(p, i, val, pivot, data.draw):
        u_dev = player_utility(p.with_report(i, c2, s2, b2), i, val, reserve=reserve)
        best_dev = np.maximum(best_dev, u_dev)
        bad = u_dev > u_truth + tol
        if bad.any():
            note(f"{kind}: report {(c2, s2, b2)} gains {u_dev[bad] - u_truth[bad]} at queries {np.flatnonzero(bad)}")
        assert not bad.any()
    # The search has teeth: it reaches the best-response value wherever winning is profitable.
    profitable = true_v - pivot > 1e-6 * true_v
    assert np.all(best_dev[profitable] >= (true_v - pivot)[profitable] * (1 - 1e-5) - tol[profitable])


@examples(60)
@given(p=profiles(min_n=2), data=st.data())
def test_vcg_dsic_grid_search(p: Profile, data) -> None:
    """DSIC against an optimizer: a grid over (log sigma, log bid) with the center at the truth or on
    the query, per query; the best grid point never beats the truthful utility."""
    i = data.draw(st.integers(0, p.n - 1), label="i")
    q = data.draw(st.integers(0, p.queries.shape[0] - 1), label="q")
    val = p.valuation(i)
    one = Profile(p.queries[q : q + 1], p.centers, p.sigmas, p.bids)
    u_truth = player_utility(one, i, val)[0]
    tv = float(val.at(one.queries[0]))
    tol = REL * max(tv, float(others_best(one, i)[0])) + TINY
    best = -np.inf
    for c2 in (val.center, one.queries[0].copy()):
        for s2 in val.sigma * np.geomspace(1e-1, 1e1, 3):
            for b2 in val.value * np.geomspace(1e-3, 1e3, 9):
                best = max(best, player_utility(one.with_report(i, c2, s2, b2), i, val)[0])
    assert best <= u_truth + tol


@examples(100)
@given(p=profiles(wide=True))
def test_losers_pay_zero(p: Profile) -> None:
    """The Clarke pivot of a loser is zero: recomputing the auction without it (``eligible``) leaves the
    winner and its reported value unchanged, so welfareOthersWithout − welfareOthersWith = 0; and
    clear charges only the winner (one payment per query, 0 where not filled)."""
    out = p.clear()
    for i in range(p.n):
        elig = np.ones(p.n, dtype=bool)
        elig[i] = False
        without = p.clear(eligible=elig)
        lost = out.winner != i
        with_ = np.where(lost, out.value, 0.0)  # welfare of the others when i is present
        clarke = without.value - with_
        # i's Clarke pivot, as clear charges it: the query payment if i won, else nothing
        charged = np.where(out.winner == i, out.payment, 0.0)
        assert np.all(charged[lost] == 0.0)
        assert np.all(np.abs(clarke[lost]) <= REL * out.value[lost] + TINY)
        assert np.all(without.winner[lost] == out.winner[lost])
        # and the winner's Clarke pivot is what clear charges it
        won = ~lost
        assert np.all(np.abs(clarke[won] - out.payment[won]) <= REL * out.value[won] + TINY)
    assert np.all(out.payment[out.winner < 0] == 0.0)
    assert np.all(out.payment >= 0.0)


@examples(100)
@given(p=profiles(wide=True), reserve=reserves, data=st.data())
def test_individual_rationality(p: Profile, reserve: float, data) -> None:
    """A truthful winner's utility is >= 0 (``welfareOthersWithout_le_trueVal_of_win``), with or without
    a reserve; a truthful loser's utility is exactly 0."""
    i = data.draw(st.integers(0, p.n - 1), label="i")
    val = p.valuation(i)
    out = p.clear(reserve=reserve)
    u = player_utility(p, i, val, reserve=reserve)
    won = out.winner == i
    true_v = np.asarray(val.at(p.queries))
    assert np.all(u[won] >= -REL * true_v[won] - TINY)
    assert np.all(out.payment[won] <= out.value[won])  # the cap makes it exact in terms of reported value
    assert np.all(u[~won] == 0.0)


@examples(100)
@given(p=profiles(min_n=1), data=st.data())
def test_welfareOthersWithout_invariant(p: Profile, data) -> None:
    """The winner's payment does not depend on its own report: across many reports of advertiser i,
    whenever i wins, it pays the same pivot (the best other reported value, computed directly), and
    the auction without i is unchanged by i's (excluded) report."""
    i = data.draw(st.integers(0, p.n - 1), label="i")
    pivot = others_best(p, i)
    elig = np.ones(p.n, dtype=bool)
    elig[i] = False
    reports = [(p.centers[i], p.sigmas[i], p.bids[i])]
    for q in range(p.queries.shape[0]):
        reports.append((p.queries[q].copy(), float(p.sigmas[i]), 1e6))  # wins almost surely
    for _ in range(6):
        reports.append(
            (
                data.draw(hnp.arrays(np.float64, p.d, elements=coord)),
                float(np.exp(data.draw(wide_log_sigma))),
                float(np.exp(data.draw(wide_log_bid))),
            )
        )
    ref_without = None
    wins = 0
    for c2, s2, b2 in reports:
        dev = p.with_report(i, c2, s2, b2)
        out = dev.clear()
        won = out.winner == i
        wins += int(won.sum())
        assert np.all(np.abs(out.payment[won] - pivot[won]) <= REL * pivot[won] + TINY)
        without = dev.clear(eligible=elig)
        if ref_without is None:
            ref_without = without
        np.testing.assert_array_equal(without.winner, ref_without.winner)
        np.testing.assert_allclose(without.value, ref_without.value, rtol=REL, atol=TINY)
        np.testing.assert_allclose(without.value, pivot, rtol=REL, atol=TINY)
    assert wins >= 1  # the high-bid reports on the queries win


# --------------------------------------------------------------------------------------------------
# IntegralEfficiency.lean / GaussianOptimality.lean
# --------------------------------------------------------------------------------------------------


def _true_values(p: Profile) -> np.ndarray:
    return np.stack([np.asarray(p.valuation(i).at(p.queries)) for i in range(p.n)], axis=1)  # (Q, N)


def _welfare(tv: np.ndarray, weights: np.ndarray, rule: np.ndarray) -> float:
    """Weighted welfare of an allocation rule on a finite query log; -1 allocates to nobody (value 0)."""
    q = np.arange(tv.shape[0])
    got = np.where(rule >= 0, tv[q, np.maximum(rule, 0)], 0.0)
    return float(np.sum(weights * got))


@examples(100)
@given(p=profiles(max_q=12), data=st.data())
def test_integral_efficiency(p: Profile, data) -> None:
    """For a weighted finite query log (mu = sum_q w_q delta_{x_q}), the score-argmax allocation's
    expected welfare is at least that of any allocation rule: random assignments drawn by hypothesis
    and adversarial ones (nearest center, highest bid, widest reach, the runner-up, nobody)."""
    nq = p.queries.shape[0]
    weights = data.draw(hnp.arrays(np.float64, nq, elements=st.floats(0.0, 10.0)), label="weights")
    tv = _true_values(p)
    out = p.clear()
    w_vcg = _welfare(tv, weights, out.winner)
    tol = REL * float(np.sum(weights * tv.max(axis=1))) + TINY
    rules = {
        f"random{k}": np.array(data.draw(st.lists(st.integers(-1, p.n - 1), min_size=nq, max_size=nq)))
        for k in range(3)
    }
    rules["nearest center"] = np.argmin(
        np.einsum("qnk,qnk->qn", p.queries[:, None] - p.centers[None], p.queries[:, None] - p.centers[None]), axis=1
    )
    rules["highest bid"] = np.full(nq, int(np.argmax(p.bids)))
    rules["widest reach"] = np.full(nq, int(np.argmax(p.sigmas)))
    rules["runner-up"] = out.runner_up
    rules["nobody"] = np.full(nq, -1)
    rules["pointwise oracle"] = np.argmax(tv, axis=1)
    for name, rule in rules.items():
        assert _welfare(tv, weights, rule) <= w_vcg + tol, name
    # and it attains the pointwise optimum
    assert abs(w_vcg - _welfare(tv, weights, rules["pointwise oracle"])) <= tol


@examples(60)
@given(p=profiles(max_n=8, max_q=8), data=st.data())
def test_gaussian_vcg_weakly_dominates(p: Profile, data) -> None:
    """The capstone conjunction, all advertisers truthful: (1) no allocation rule beats the auction on
    a weighted query log, (2) no advertiser gains from a deviation (``vcg_strategyproof``: the Nash
    corollary of DSIC), (3) the allocation is pointwise welfare-maximizing."""
    nq = p.queries.shape[0]
    tv = _true_values(p)
    out = p.clear()
    weights = data.draw(hnp.arrays(np.float64, nq, elements=st.floats(0.0, 10.0)), label="weights")
    rule = np.array(data.draw(st.lists(st.integers(-1, p.n - 1), min_size=nq, max_size=nq)))
    tol = REL * float(np.sum(weights * tv.max(axis=1))) + TINY
    # (1)
    assert _welfare(tv, weights, rule) <= _welfare(tv, weights, out.winner) + tol
    # (3)
    tw = tv[np.arange(nq), out.winner]
    assert np.all(tw[:, None] >= tv * (1 - REL) - TINY)
    # (2)
    for i in range(p.n):
        val = p.valuation(i)
        u_truth = player_utility(p, i, val)
        pivot = others_best(p, i)
        c2 = data.draw(st.sampled_from([*p.queries, val.center, *p.centers]))
        s2 = float(np.exp(data.draw(wide_log_sigma)))
        b2 = float(np.exp(data.draw(wide_log_bid)))
        u_dev = player_utility(p.with_report(i, c2, s2, b2), i, val)
        assert np.all(u_dev <= u_truth + REL * np.maximum(tv[:, i], pivot) + TINY)


# --------------------------------------------------------------------------------------------------
# PowerDiagram.lean: equal reach
# --------------------------------------------------------------------------------------------------


def _pd_tol(d: int, sq: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    """Bound on ``|powerDist + σ²·score|`` as computed: the relative rounding of the sums, plus underflow
    (η per product or quotient, scaled by what multiplies it later): ``‖x − c‖²`` (d) and ``σ²·log b`` (1)
    in the power distance; the score's ``Σ(x − c)²`` (d, times 1/σ², then times σ²), its quotient by σ²
    (1, times σ²) and the product ``σ²·score`` (1). That is ``η·(2d + 2 + σ²)``, doubled as in ``score_tol``."""
    return 8 * (d + 4) * U * (sq + np.abs(w)) + TWO_ETA * (2 * d + 2 + sigma**2)


@examples(150)
@given(p=profiles(min_n=2, wide=True), data=st.data())
def test_score_le_iff_powerDist_le(p: Profile, data) -> None:
    """Equal sigma: score_r <= score_s iff powerDist_s <= powerDist_r, with sites at the centers and
    weights sigma^2 log b (``powerDist_eq_neg_sigma_sq_mul_score`` is the identity behind it)."""
    sigma = float(np.exp(data.draw(wide_log_sigma)))
    x = p.queries
    diff = x[:, None] - p.centers[None]
    sq = np.einsum("qnk,qnk->qn", diff, diff)
    w = equal_sigma_weight(sigma, p.bids)
    pd = power_distance(x[:, None, :], p.centers[None], w)  # (Q, N)
    s = np.asarray(score(x[:, None, :], p.centers[None], sigma, p.bids))
    tol = _pd_tol(p.d, sq, w, sigma)
    # powerDist_eq_neg_sigma_sq_mul_score
    assert np.all(np.abs(pd + sigma**2 * s) <= tol)
    for r in range(p.n):
        for t in range(p.n):
            gap = s[:, r] - s[:, t]
            clear_cut = np.abs(gap) * sigma**2 > tol[:, r] + tol[:, t]
            lhs = s[:, r] <= s[:, t]
            rhs = pd[:, t] <= pd[:, r]
            assert np.all(lhs[clear_cut] == rhs[clear_cut])


def test_powerDist_eq_neg_sigma_sq_mul_score_when_the_distance_underflows() -> None:
    """A query 8e-162 from the centers: ‖x − c‖² = 6.4e-323 is subnormal, so score/σ² and σ²·score round
    to the subnormal grid and powerDist + σ²·score is 2⁻¹⁰⁷³, not 0; only the underflow term of
    ``_pd_tol`` covers it (the relative part is 0 here)."""
    x = np.array([[8.016271176041259e-162]])
    centers, bids, sigma = np.zeros((2, 1)), np.ones(2), float(np.e)
    diff = x[:, None] - centers[None]
    sq = np.einsum("qnk,qnk->qn", diff, diff)
    w = equal_sigma_weight(sigma, bids)
    pd = power_distance(x[:, None, :], centers[None], w)
    s = np.asarray(score(x[:, None, :], centers[None], sigma, bids))
    assert np.all(pd + sigma**2 * s != 0.0)  # the rounding this case exists for
    assert np.all(np.abs(pd + sigma**2 * s) <= _pd_tol(1, sq, w, sigma))


@examples(150)
@given(p=profiles(wide=True), data=st.data())
def test_winner_minimizes_powerDist(p: Profile, data) -> None:
    """Equal sigma: clear's winner is the power-diagram cell owner in E (min power distance)."""
    sigma = float(np.exp(data.draw(wide_log_sigma)))
    eq = Profile(p.queries, p.centers, np.full(p.n, sigma), p.bids)
    out = eq.clear()
    diff = p.queries[:, None] - p.centers[None]
    sq = np.einsum("qnk,qnk->qn", diff, diff)
    w = equal_sigma_weight(sigma, p.bids)
    pd = power_distance(p.queries[:, None, :], p.centers[None], w)
    tol = _pd_tol(p.d, sq, w, sigma)
    q = np.arange(len(out))
    pw = pd[q, out.winner]
    assert np.all(pw[:, None] <= pd + tol + tol[q, out.winner][:, None])


@examples(150)
@given(p=profiles(min_n=2, wide=True), data=st.data())
def test_score_sub_affine(p: Profile, data) -> None:
    """Equal sigma: score_r(x) − score_s(x) = (2/σ²)<x, c_r − c_s> + (‖c_s‖² − ‖c_r‖²)/σ² + log b_r − log b_s,
    an affine function of x, so the bisectors are hyperplanes."""
    sigma = float(np.exp(data.draw(wide_log_sigma)))
    r, s_ = data.draw(st.integers(0, p.n - 1)), data.draw(st.integers(0, p.n - 1))
    x = p.queries
    cr, cs, br, bs = p.centers[r], p.centers[s_], p.bids[r], p.bids[s_]

    def lhs(x):
        return np.asarray(score(x, cr, sigma, br)) - np.asarray(score(x, cs, sigma, bs))

    def rhs(x):
        return (2 / sigma**2) * (x @ (cr - cs)) + ((cs @ cs - cr @ cr) / sigma**2 + (np.log(br) - np.log(bs)))

    def mag(x):  # sum of the magnitudes of every term on both sides
        return (
            (np.sum((x - cr) ** 2, -1) + np.sum((x - cs) ** 2, -1)) / sigma**2
            + 2 * np.abs(x) @ np.abs(cr - cs) / sigma**2
            + (cs @ cs + cr @ cr) / sigma**2
            + abs(np.log(br))
            + abs(np.log(bs))
        )

    assert np.all(np.abs(lhs(x) - rhs(x)) <= 16 * (p.d + 4) * U * mag(x))
    # affine: f(λx + (1−λ)y) = λ f(x) + (1−λ) f(y)
    lam = data.draw(st.floats(-2.0, 3.0))
    y = x[::-1]
    z = lam * x + (1 - lam) * y
    mix = lam * lhs(x) + (1 - lam) * lhs(y)
    bound = 16 * (p.d + 4) * U * (mag(z) + abs(lam) * mag(x) + abs(1 - lam) * mag(y)) + 4 * U * (
        abs(lam) * np.abs(lhs(x)) + abs(1 - lam) * np.abs(lhs(y))
    )
    assert np.all(np.abs(lhs(z) - mix) <= bound)


# --------------------------------------------------------------------------------------------------
# PowerDiagram.lean: heterogeneous reach, the paraboloid lift
# --------------------------------------------------------------------------------------------------


def _lift_tol(p: Profile) -> np.ndarray:
    """Magnitude bound for the lifted-power-distance identity: every term it adds and cancels."""
    x, c = p.queries[:, None, :], p.centers[None]
    inv = 1.0 / p.sigmas**2
    x2 = np.sum(x * x, -1)
    c2 = np.sum(c * c, -1)
    dist_site = x2 + 2 * np.sqrt(x2 * c2) * inv + inv**2 * c2  # ‖x − σ⁻²c‖² and its expansion
    height = (x2 + inv / 2) ** 2  # (‖x‖² + σ⁻²/2)²
    weight = inv**2 * c2 + inv**2 / 4 + inv * c2 + np.abs(np.log(p.bids))
    rhs = x2 + x2**2 + np.abs(np.asarray(score(x, c, p.sigmas, p.bids)))
    terms = dist_site + height + weight + rhs
    return 32 * (p.d + 4) * U * terms


@examples(150)
@given(p=profiles())
def test_liftedPowerDist_paraboloid(p: Profile) -> None:
    """liftedPowerDist((x, ‖x‖²)) = ‖x‖² + ‖x‖⁴ − score(x), for arbitrary heterogeneous sigma."""
    x = p.queries[:, None, :]
    lpd = lifted_power_distance(x, p.centers[None], p.sigmas, p.bids)
    x2 = np.sum(p.queries**2, -1)[:, None]
    s = np.asarray(score(x, p.centers[None], p.sigmas, p.bids))
    assert np.all(np.abs(lpd - (x2 + x2**2 - s)) <= _lift_tol(p))
    # built from the paper's site and weight (§5.2), checked coordinatewise
    site = lifted_site(p.centers, p.sigmas)
    inv = 1.0 / p.sigmas**2
    np.testing.assert_array_equal(site[:, :-1], inv[:, None] * p.centers)
    np.testing.assert_array_equal(site[:, -1], -0.5 * inv)
    direct = (
        np.sum((p.queries[:, None, :] - site[None, :, :-1]) ** 2, -1)
        + (x2 - site[None, :, -1]) ** 2
        - lifted_weight(p.centers, p.sigmas, p.bids)[None]
    )
    assert np.all(np.abs(lpd - direct) <= _lift_tol(p))
    # ‖x‖² (summation order may differ from ours by an ulp per term)
    np.testing.assert_allclose(lift_query_paraboloid(p.queries)[:, -1], x2[:, 0], rtol=(p.d + 2) * U, atol=0)


@examples(150)
@given(p=profiles(min_n=2))
def test_score_le_iff_liftedPowerDist_ge(p: Profile) -> None:
    """score_r <= score_s iff liftedPowerDist_s <= liftedPowerDist_r (wherever the gap exceeds rounding)."""
    x = p.queries[:, None, :]
    lpd = lifted_power_distance(x, p.centers[None], p.sigmas, p.bids)
    s = np.asarray(score(x, p.centers[None], p.sigmas, p.bids))
    tol = _lift_tol(p)
    for r in range(p.n):
        for t in range(p.n):
            clear_cut = np.abs(s[:, r] - s[:, t]) > 2 * (tol[:, r] + tol[:, t])
            assert np.all(((s[:, r] <= s[:, t]) == (lpd[:, t] <= lpd[:, r]))[clear_cut])


@examples(150)
@given(p=profiles())
def test_winner_minimizes_liftedPowerDist(p: Profile) -> None:
    """clear's winner is the cell owner of the lifted power diagram in E x R."""
    out = p.clear()
    lpd = lifted_power_distance(p.queries[:, None, :], p.centers[None], p.sigmas, p.bids)
    tol = _lift_tol(p)
    q = np.arange(len(out))
    assert np.all(lpd[q, out.winner][:, None] <= lpd + tol + tol[q, out.winner][:, None])


# --------------------------------------------------------------------------------------------------
# VectorSpace.lean / SecondPrice.lean: keywords recovered
# --------------------------------------------------------------------------------------------------

nonzero_offsets = st.tuples(
    hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-1.0, 1.0)), st.floats(1e-3, 10.0)
)


@examples(150)
@given(
    x0=hnp.arrays(np.float64, 8, elements=coord),
    offset=nonzero_offsets,
    b=st.floats(1e-6, 1e6),
    m=st.floats(-1e6, 1e3),
)
def test_keyword_is_degenerate_limit(x0, offset, b, m) -> None:
    """For x != c the score tends to −inf as sigma -> 0+: for every bound M there is delta > 0 with
    score < M for all sigma in (0, delta) (delta = ‖x − c‖/sqrt(max(log b − M, 0) + 1)); the score is
    decreasing as sigma shrinks; at the center it stays log b."""
    direction, length = offset
    assume(np.linalg.norm(direction) > 1e-3)
    d = direction.shape[0]
    x = x0[:d]
    c = x + length * direction / np.linalg.norm(direction)
    assume(np.any(c != x))
    dist2 = float(np.sum((x - c) ** 2))
    delta = np.sqrt(dist2 / (max(np.log(b) - m, 0.0) + 1.0))
    sig = delta * np.array([0.999, 0.5, 0.1, 1e-2, 1e-4, 1e-8])
    s = np.array([score(x, c, si, b) for si in sig])
    assert np.all(s < m)
    assert np.all(np.diff(s) < 0)  # shrinking sigma strictly lowers the score off-center
    assert all(score(c, c, si, b) == np.log(b) for si in sig)


@examples(60)
@given(p=profiles(min_n=2, max_n=6, max_q=12), b=st.floats(0.1, 10.0))
def test_keyword_is_degenerate_limit_on_clear(p: Profile, b: float) -> None:
    """On the mechanism: as advertiser 0's sigma shrinks, its winning region shrinks (nested) and in the
    limit it wins only at its center, where it competes on bid alone."""
    c0 = p.centers[0]
    queries = np.vstack([p.queries, c0[None]])
    prev = None
    for sigma in (1.0, 0.3, 0.1, 1e-2, 1e-4, 1e-6):
        sig = p.sigmas.copy()
        sig[0] = sigma
        bids = p.bids.copy()
        bids[0] = b
        m = Market(p.centers, sig, bids)
        wins = m.clear(queries).winner == 0
        if prev is not None:
            assert not np.any(wins & ~prev)  # nested
        prev = wins
        # at its own center the score is log b whatever sigma is
        assert m.scores(c0)[0] == np.log(b)
    off = np.any(queries != c0, axis=1)
    far = np.sqrt(np.sum((queries - c0) ** 2, axis=1))
    # with sigma = 1e-6, an off-center point at distance > 1e-2 has t > 1e8: it cannot win there
    assert not np.any(prev[off & (far > 1e-2)])
    # at the center it wins iff its bid beats every other reported value there (ties to lower index)
    others = Market(p.centers[1:], p.sigmas[1:], p.bids[1:]).reported_values(c0)
    if b > others.max() * (1 + REL):
        assert prev[-1]
    elif b < others.max() * (1 - REL):
        assert not prev[-1]


@examples(150)
@given(
    c=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e6, 1e6)),
    sigma=st.floats(1e-150, 1e150),
    b=st.floats(1e-300, 1e300),
)
def test_score_at_center(c, sigma, b) -> None:
    """score(c) = log b for every sigma > 0, exactly (and the reported value there is the bid:
    ``reportedVal_center``), also as returned by clear for a lone advertiser."""
    assert score(c, c, sigma, b) == np.log(b)
    assert reported_value(c, c, sigma, b) == b
    out = clear(c, c[None], [sigma], [b])
    assert out.winner[0] == 0 and out.score[0] == np.log(b) and out.value[0] == b and out.payment[0] == 0.0


def test_score_at_center_tiny_sigma() -> None:
    """score_at_center for σ so small that σ·σ underflows to 0 in float64 (σ < ~1.5e-162)."""
    c = np.zeros(2)
    assert score(c, c, 1e-170, 2.0) == np.log(2.0)
    out = clear(c, [c, c + 5.0], [1e-170, 1.0], [100.0, 1.0])
    assert out.winner[0] == 0


bid_grid = st.integers(1, 20).map(float)


@examples(150)
@given(
    x=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e6, 1e6)),
    bids=st.lists(bid_grid, min_size=1, max_size=12),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    data=st.data(),
)
def test_winner_maximizes_bid_of_common_center(x, bids, scale, data) -> None:
    """All centers on the query (a keyword point): the winner is a highest bidder, the first one."""
    n = len(bids)
    b = np.array(bids) * scale
    sig = np.exp(data.draw(hnp.arrays(np.float64, n, elements=st.floats(np.log(1e-6), np.log(1e4)))))
    out = clear(x, np.repeat(x[None], n, axis=0), sig, b)
    assert b[out.winner[0]] == b.max()
    assert out.winner[0] == int(np.argmax(b))  # first maximum, as List.argmax
    assert out.value[0] == b.max() and out.score[0] == np.log(b.max())


@examples(150)
@given(
    x=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-1e6, 1e6)),
    bids=st.lists(bid_grid, min_size=1, max_size=12),
    reserve=st.one_of(st.just(0.0), bid_grid, st.floats(0.0, 25.0)),
    data=st.data(),
)
def test_vcgPayment_common_center_second_price(x, bids, reserve, data) -> None:
    """At a keyword point the Clarke pivot is the highest competing bid: Vickrey's second price,
    exactly (0 when unopposed); with a reserve, max(second price, reserve) and no fill below it."""
    n = len(bids)
    b = np.array(bids)
    sig = np.exp(data.draw(hnp.arrays(np.float64, n, elements=st.floats(np.log(1e-6), np.log(1e4)))))
    centers = np.repeat(x[None], n, axis=0)
    out = clear(x, centers, sig, b)
    w = int(out.winner[0])
    second = np.delete(b, w).max(initial=0.0)
    assert out.payment[0] == second
    if n >= 2:
        others = np.delete(np.arange(n), w)
        assert out.runner_up[0] == others[np.argmax(b[others])]
    else:
        assert out.runner_up[0] == -1
    res = clear(x, centers, sig, b, reserve=reserve)
    if b.max() >= reserve:
        assert res.winner[0] == w and res.payment[0] == max(second, reserve)
    else:
        assert res.winner[0] == -1 and res.payment[0] == 0.0


# --------------------------------------------------------------------------------------------------
# VectorSpace.lean: eligibility filters (tau)
# --------------------------------------------------------------------------------------------------


def tau_gate(queries: np.ndarray, centers: np.ndarray, sigmas: np.ndarray | None, tau: float) -> np.ndarray:
    """``(Q, N)`` relevance gate on the *declared* reports: ‖x − c‖²/σ² <= τ (the hypothesis of the Lean
    statement) or, with ``sigmas=None``, ‖x − c‖² <= τ."""
    diff = queries[:, None, :] - centers[None]
    dist2 = np.einsum("qnk,qnk->qn", diff, diff)
    return dist2 / sigmas**2 <= tau if sigmas is not None else dist2 <= tau


@examples(150)
@given(p=profiles(wide=True), kind=st.sampled_from(["tau", "tau/sigma", "arbitrary", "arbitrary (N,)"]), data=st.data())
def test_tau_preserves_efficiency_among_eligible(p: Profile, kind: str, data) -> None:
    """Any pre-auction filter: the winner is eligible and maximizes true value among the eligible; the
    runner-up and the payment are taken among the eligible only; no eligible advertiser, no fill."""
    nq = p.queries.shape[0]
    if kind == "tau":
        elig = tau_gate(p.queries, p.centers, None, data.draw(st.floats(0.0, 40.0)))
    elif kind == "tau/sigma":
        elig = tau_gate(p.queries, p.centers, p.sigmas, data.draw(st.floats(0.0, 40.0)))
    elif kind == "arbitrary":
        elig = data.draw(hnp.arrays(np.bool_, (nq, p.n)))
    else:
        elig = data.draw(hnp.arrays(np.bool_, p.n))
    full = np.broadcast_to(elig, (nq, p.n))
    out = p.clear(eligible=elig)
    tv = _true_values(p)
    any_e = full.any(axis=1)
    assert np.all(out.winner[~any_e] == -1) and np.all(out.payment[~any_e] == 0.0)
    q = np.flatnonzero(any_e)
    w = out.winner[q]
    assert np.all(w >= 0) and np.all(full[q, w])
    tv_e = np.where(full, tv, -np.inf)
    assert np.all(tv[q, w][:, None] >= tv_e[q] * (1 - REL) - TINY)
    r = out.runner_up[q]
    two = full[q].sum(axis=1) >= 2
    assert np.all(r[~two] == -1)
    assert np.all((r[two] != w[two]) & full[q[two], r[two]])
    rv = np.where(full, p.reported(), 0.0)
    rv[q, w] = 0.0
    np.testing.assert_allclose(out.payment[q], rv[q].max(axis=1), rtol=REL, atol=TINY)


# --------------------------------------------------------------------------------------------------
# Beyond the artifact: which filters keep truthfulness
# --------------------------------------------------------------------------------------------------


def test_report_dependent_filter_breaks_truthfulness() -> None:
    """A gate on the distance to the advertiser's DECLARED center keeps efficiency among the eligible
    but is not truthful: advertiser A is filtered out when truthful (utility 0), and by declaring its
    center on the query (or, under the σ-normalized gate, a wider reach) it passes the gate, wins and
    earns a strictly positive utility."""
    x = np.array([[0.0, 0.0]])
    tau = 1.0
    # A (index 0): true center 2 away, true reach 1.5, value 100 -> trueVal(x) = 100·exp(−16/9) ≈ 16.91
    a = Valuation(center=np.array([2.0, 0.0]), sigma=1.5, value=100.0)
    # B (index 1): near the query, reports (0.5, 0), σ = 1, b = 10 -> reported value 10·exp(−1/4) ≈ 7.79
    truthful = Profile(x, np.array([[2.0, 0.0], [0.5, 0.0]]), np.array([1.5, 1.0]), np.array([100.0, 10.0]))
    b_value = 10.0 * np.exp(-0.25)

    def gated_utility(prof: Profile, normalized: bool) -> tuple[float, int]:
        gate = tau_gate(prof.queries, prof.centers, prof.sigmas if normalized else None, tau)
        out = prof.clear(eligible=gate)
        # efficiency among the eligible holds in every case
        tv = np.array([[a.at(x[0]), reported_value(x[0], [0.5, 0.0], 1.0, 10.0)]])
        assert gate[0, out.winner[0]] and tv[0, out.winner[0]] >= np.where(gate, tv, -np.inf).max()
        won = out.winner == 0
        return float(utility(a, x, won, np.where(won, out.payment, 0.0))[0]), int(out.winner[0])

    for normalized in (False, True):
        u_truth, w_truth = gated_utility(truthful, normalized)
        assert w_truth == 1 and u_truth == 0.0  # A is filtered out although it values x most
        assert a.at(x[0]) > b_value  # ... so the filter also costs welfare (it is efficient only among the eligible)

    # Misreport 1: move the declared center onto the query (σ and bid truthful). Passes both gates.
    moved = truthful.with_report(0, np.array([0.0, 0.0]), 1.5, 100.0)
    for normalized in (False, True):
        u_dev, w_dev = gated_utility(moved, normalized)
        assert w_dev == 0
        assert u_dev == pytest.approx(100.0 * np.exp(-16 / 9) - b_value, rel=1e-12)  # ≈ 9.12
        assert u_dev > 9.0 > u_truth
    # Misreport 2 (σ-normalized gate ‖x − c‖²/σ² <= τ, the Lean hypothesis): inflate the reach to 3.
    wide = truthful.with_report(0, np.array([2.0, 0.0]), 3.0, 100.0)
    u_dev, w_dev = gated_utility(wide, normalized=True)
    assert w_dev == 0 and u_dev == pytest.approx(100.0 * np.exp(-16 / 9) - b_value, rel=1e-12)
    # Without the gate the same misreports gain nothing (DSIC): truthful A wins and keeps the surplus.
    assert player_utility(truthful, 0, a)[0] == pytest.approx(100.0 * np.exp(-16 / 9) - b_value, rel=1e-12)
    assert player_utility(moved, 0, a)[0] <= player_utility(truthful, 0, a)[0] + 1e-12


@examples(100)
@given(p=profiles(max_q=1), tau=st.floats(0.1, 10.0), data=st.data())
def test_report_dependent_filter_break_is_systematic(p: Profile, tau: float, data) -> None:
    """Whenever a truthful advertiser is gated out by ‖x − c_declared‖² <= τ but values the query more
    than every eligible rival's report, declaring its center on the query earns trueVal − pivot > 0."""
    x = p.queries[0]
    direction = data.draw(hnp.arrays(np.float64, p.d, elements=st.floats(-1.0, 1.0)))
    assume(np.linalg.norm(direction) > 1e-3)
    extra = data.draw(st.floats(0.01, 3.0))
    c_true = x + np.sqrt(tau * (1 + extra)) * direction / np.linalg.norm(direction)  # outside the gate
    sigma_true = data.draw(st.floats(0.5, 3.0))
    rivals = Profile(p.queries, p.centers, p.sigmas, p.bids)
    gate_r = tau_gate(p.queries, p.centers, None, tau)[0]
    pivot = float(np.where(gate_r, rivals.reported()[0], 0.0).max(initial=0.0))
    margin = data.draw(st.floats(0.01, 10.0))
    t_true = float(np.sum((x - c_true) ** 2)) / sigma_true**2
    value = (pivot + margin) * np.exp(t_true)  # trueVal(x) = pivot + margin
    a = Valuation(c_true, sigma_true, float(value))
    n = p.n
    truthful = Profile(
        p.queries,
        np.vstack([p.centers, c_true[None]]),
        np.append(p.sigmas, sigma_true),
        np.append(p.bids, value),
    )
    gate = tau_gate(truthful.queries, truthful.centers, None, tau)
    assert not gate[0, n]
    out = truthful.clear(eligible=gate)
    assert out.winner[0] != n  # filtered out: utility 0
    moved = truthful.with_report(n, x.copy(), sigma_true, value)
    gate2 = tau_gate(moved.queries, moved.centers, None, tau)
    out2 = moved.clear(eligible=gate2)
    assert out2.winner[0] == n
    u = float(utility(a, moved.queries, out2.winner == n, out2.payment)[0])
    assert u == pytest.approx(float(a.at(x)) - pivot, rel=1e-9, abs=1e-12)
    assert u > 0.5 * margin


@examples(75)
@given(p=profiles(), reserve=reserves, data=st.data())
def test_report_independent_filter_keeps_dsic_and_efficiency(p: Profile, reserve: float, data) -> None:
    """A filter that does not depend on the reports (here an arbitrary (Q, N) mask fixed in advance,
    e.g. a publisher's category exclusions) keeps both: efficiency among the eligible and DSIC for
    every deviation of center, sigma and bid, including moving onto the query and threshold bids."""
    nq = p.queries.shape[0]
    elig = data.draw(hnp.arrays(np.bool_, (nq, p.n)), label="eligible")
    i = data.draw(st.integers(0, p.n - 1), label="i")
    val = p.valuation(i)
    out = p.clear(reserve=reserve, eligible=elig)
    tv = _true_values(p)
    filled = out.winner >= 0
    q = np.flatnonzero(filled)
    assert np.all(elig[q, out.winner[q]])
    assert np.all(tv[q, out.winner[q]][:, None] >= np.where(elig[q], tv[q], -np.inf) * (1 - REL) - TINY)

    u_truth = player_utility(p, i, val, reserve=reserve, eligible=elig)
    true_v = np.asarray(val.at(p.queries))
    pivot = others_best(p, i, reserve, elig)
    tol = REL * np.maximum(true_v, pivot) + TINY
    # truthful = best response: max(0, trueVal − pivot) where i is eligible, 0 where it is not
    expect = np.where(elig[:, i], np.maximum(0.0, true_v - pivot), 0.0)
    assert np.all(np.abs(u_truth - expect) <= tol)
    for _kind, (c2, s2, b2) in _dsic_deviations(p, i, val, pivot, data.draw):
        u_dev = player_utility(p.with_report(i, c2, s2, b2), i, val, reserve=reserve, eligible=elig)
        assert np.all(u_dev <= u_truth + tol)
