"""Choosing σ from evidence (:mod:`adspace.mechanisms.reach`): the fit's claims as property tests.

* The likelihood ``ℓ(λ)`` is strictly concave in ``λ = 1/σ²`` and ``sigma_mle`` returns its
  maximiser: no other σ on a fine grid, or nearby, has a higher likelihood, and the score vanishes.
* The fit is equivariant: translating every conversation translates the center and keeps σ;
  scaling every embedding by ``k`` scales the center and σ by ``k``.
* The median rule gives the median customer exactly half the bid.
* The preview is the kernel's clearing with the candidate appended (checked against a direct
  float64 evaluation of the formulas), and ``bid_to_win`` is the critical bid: above it the candidate
  wins, below it loses, and where it wins its Clarke pivot equals that critical bid's value at x.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adspace.mechanisms.reach import _score, fit_reach, log_likelihood, preview, sigma_mle, sqdist

dists = hnp.arrays(np.float64, st.integers(1, 12), elements=st.floats(1e-3, 4.0, allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(d=dists, e=dists)
def test_sigma_mle_maximises_the_bernoulli_likelihood(d, e):
    sigma = sigma_mle(d, e)
    lam = 1.0 / sigma**2
    best = log_likelihood(lam, d, e)
    scale = abs(best) + 1.0
    for f in (0.5, 0.9, 0.99, 0.999, 1.001, 1.01, 1.1, 2.0):
        assert log_likelihood(lam * f, d, e) <= best + 1e-9 * scale
    for lam2 in np.geomspace(lam / 1e3, lam * 1e3, 61):
        assert log_likelihood(float(lam2), d, e) <= best + 1e-9 * scale
    # First-order condition: the score vanishes (relative to its two sides).
    assert abs(_score(lam, float(d.sum()), e)) <= 1e-8 * (float(d.sum()) + 1.0 / lam * len(e))


@settings(max_examples=100, deadline=None)
@given(d=dists, e=dists, a=st.floats(1e-3, 1e3), b=st.floats(1e-3, 1e3))
def test_log_likelihood_is_strictly_concave_in_inverse_sigma_squared(d, e, a, b):
    assume(abs(a - b) > 1e-6 * max(a, b))
    mid = 0.5 * (a + b)
    lhs = log_likelihood(mid, d, e)
    rhs = 0.5 * (log_likelihood(a, d, e) + log_likelihood(b, d, e))
    assume(math.isfinite(rhs))
    assert lhs >= rhs - 1e-9 * (abs(lhs) + 1)


points = st.integers(2, 10).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.float64, (n, 5), elements=st.floats(-1, 1)),
        hnp.arrays(np.float64, (n + 1, 5), elements=st.floats(-1, 1)),
    )
)


@settings(max_examples=100, deadline=None)
@given(p=points, shift=hnp.arrays(np.float64, 5, elements=st.floats(-10, 10)), k=st.floats(0.1, 10))
def test_fit_is_translation_and_scale_equivariant(p, shift, k):
    cust, other = p
    c0 = cust.mean(axis=0)
    assume(sqdist(cust, c0).max() > 1e-6 and sqdist(other, c0).max() > 1e-6)
    f = fit_reach(cust, other)
    ft = fit_reach(cust + shift, other + shift)
    fs = fit_reach(k * cust, k * other)
    np.testing.assert_allclose(ft.center, f.center + shift, rtol=1e-9, atol=1e-9)
    assert ft.sigma == pytest.approx(f.sigma, rel=1e-6)
    np.testing.assert_allclose(fs.center, k * f.center, rtol=1e-9, atol=1e-12)
    assert fs.sigma == pytest.approx(k * f.sigma, rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(p=points)
def test_median_rule_values_the_median_customer_at_half_the_bid(p):
    cust, _ = p
    d = sqdist(cust, cust.mean(axis=0))
    assume(np.median(d) > 1e-9)
    f = fit_reach(cust)
    assert f.method == "median"
    assert math.exp(-float(np.median(d)) / f.sigma**2) == pytest.approx(0.5, rel=1e-12)


def test_fit_refuses_evidence_without_spread():
    with pytest.raises(ValueError, match="customers: give at least 2"):
        fit_reach(np.ones((1, 3)))
    with pytest.raises(ValueError, match="customers: all examples are the same"):
        fit_reach(np.ones((3, 3)))
    with pytest.raises(ValueError, match="non_customers: all examples sit at the center"):
        fit_reach(np.eye(2), np.full((2, 2), 0.5))


def _direct(x, centers, sigmas, bids, reserve):
    """Winner, Clarke pivot by a direct float64 evaluation (ties to the lowest index)."""
    d = ((x[None, :] - centers) ** 2).sum(axis=1)
    score = np.log(bids) - d / sigmas**2
    w = int(np.argmax(score))
    value = bids * np.exp(-d / sigmas**2)
    if value[w] < reserve:
        return -1, 0.0
    others = np.delete(value, w)
    return w, max(float(others.max()) if others.size else 0.0, reserve)


market = st.integers(0, 6).flatmap(
    lambda n: st.tuples(
        hnp.arrays(np.float64, (n, 4), elements=st.floats(-1, 1)),
        hnp.arrays(np.float64, n, elements=st.floats(0.2, 2.0)),
        hnp.arrays(np.float64, n, elements=st.floats(0.1, 10.0)),
        hnp.arrays(np.float64, (5, 4), elements=st.floats(-1, 1)),
        hnp.arrays(np.float64, 4, elements=st.floats(-1, 1)),
        st.floats(0.2, 2.0),
        st.floats(0.1, 10.0),
        st.sampled_from([0.0, 0.05, 0.5]),
    )
)


@settings(max_examples=200, deadline=None)
@given(m=market)
def test_preview_is_the_clearing_with_the_candidate_appended(m):
    rc, rs, rb, q, c, s, b, reserve = m
    out = preview(q, c, s, b, rc, rs, rb, reserve=reserve)
    allc, alls, allb = np.vstack([rc, c[None]]), np.append(rs, s), np.append(rb, b)
    for i in range(q.shape[0]):
        w, pay = _direct(q[i], allc, alls, allb, reserve)
        d = ((q[i] - allc) ** 2).sum(axis=1)
        sc = np.log(allb) - d / alls**2
        top = np.sort(sc)[-2:] if sc.size > 1 else sc
        assume(sc.size < 2 or top[1] - top[0] > 1e-9)  # exact ties are the kernel's tests' business
        assert out.winner[i] == w
        assert bool(out.won[i]) == (w == len(rb))
        if out.won[i]:
            assert out.payment[i] == pytest.approx(pay, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(m=market, f=st.sampled_from([0.99, 1.01]))
def test_bid_to_win_is_the_critical_bid(m, f):
    rc, rs, rb, q, c, s, b, reserve = m
    out = preview(q, c, s, b, rc, rs, rb, reserve=reserve)
    for i in range(q.shape[0]):
        crit = float(out.bid_to_win[i])
        assume(1e-6 < crit < 1e6)
        again = preview(q[i : i + 1], c, s, crit * f, rc, rs, rb, reserve=reserve)
        assert bool(again.won[0]) == (f > 1)
        if out.won[i]:  # the Clarke pivot is the critical bid's reported value at x
            assert out.payment[i] == pytest.approx(crit * math.exp(-out.sqdist[i] / s**2), rel=1e-9, abs=1e-12)
