"""The geometry functions of :mod:`adspace.mechanisms.geometry`: formulas, shapes and broadcasting, and
the inner-product lift that ``clear`` filters with (its inner product *is* the score).

The paper's geometric theorems (``score_le_iff_powerDist_le``, ``liftedPowerDist_paraboloid``, ...)
are tested in test_vcg_theorems.py; this file checks the building blocks. Tolerances follow the same
rounding analysis (``u = 2⁻⁵³`` times the magnitude of the terms that are added and cancelled).
"""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adspace.mechanisms.geometry import (
    equal_sigma_weight,
    lift_advertisers_inner_product,
    lift_query_inner_product,
    lift_query_paraboloid,
    lifted_power_distance,
    lifted_site,
    lifted_weight,
    power_distance,
)
from adspace.mechanisms.vcg import score

U = 2.0**-53
# Gradual underflow: a float64 product or quotient is (a∘b)(1 + δ) + η with |δ| <= U and |η| <= ETA = λ·U
# (λ = 2⁻¹⁰²² the smallest normal; Higham, *Accuracy and Stability of Numerical Algorithms*, §2.1);
# additions and subtractions have no η (an underflowing sum is exact). ETA = 2⁻¹⁰⁷⁵ is half the smallest
# subnormal and rounds to 0 in float64, so tolerances use TWO_ETA = 2·ETA.
TWO_ETA = 2.0**-1074
_SCALE = max(1, int(os.environ.get("ADSPACE_HYPOTHESIS_SCALE", "1")))


def examples(n: int) -> settings:
    # no deadline and no too-slow health check: CI machines are shared and timing is not what we test
    return settings(max_examples=n * _SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def points(draw, max_n: int = 10, max_q: int = 6, lo: float = -50.0, hi: float = 50.0):
    d = draw(st.integers(1, 8))
    n = draw(st.integers(1, max_n))
    nq = draw(st.integers(1, max_q))
    el = st.floats(lo, hi)
    x = draw(hnp.arrays(np.float64, (nq, d), elements=el))
    c = draw(hnp.arrays(np.float64, (n, d), elements=el))
    s = 10.0 ** draw(hnp.arrays(np.float64, n, elements=st.floats(-2.0, 2.0)))
    b = 10.0 ** draw(hnp.arrays(np.float64, n, elements=st.floats(-4.0, 4.0)))
    return x, c, s, b


@examples(150)
@given(pts=points())
# x = c in the subnormal range of x²: the lift rounds 2x·x and x² separately to the subnormal grid and
# returns 2⁻¹⁰⁷⁴ where the direct score is 0, an error no relative bound covers (only the ETA term does).
@example(pts=(np.array([[8.34525094e-160]]), np.array([[8.34525094e-160]]), np.ones(1), np.ones(1)))
def test_inner_product_lift_equals_score(pts) -> None:
    """<[x, ‖x‖², 1], [2c/σ², −1/σ², log b − ‖c‖²/σ²]> = log b − ‖x − c‖²/σ² (exactly in the reals; in
    float64 up to the cancellation the expansion causes, which is why clear only filters with it)."""
    x, c, s, b = pts
    d = x.shape[1]
    lq = lift_query_inner_product(x)
    la = lift_advertisers_inner_product(c, s, b)
    assert lq.shape == (x.shape[0], d + 2) and la.shape == (c.shape[0], d + 2)
    got = lq @ la.T
    want = np.asarray(score(x[:, None, :], c[None], s, b))
    x2 = np.sum(x * x, 1)[:, None]
    c2 = np.sum(c * c, 1)[None, :]
    mag = (x2 + 2 * np.sqrt(x2 * c2) + c2) / s**2 + np.abs(np.log(b))  # Σ|q_k a_k| by Cauchy–Schwarz
    # Rounding (docs/clearing.md): γ-bounds of the lift's entries, of the (d + 2)-term dot product and of the
    # direct score, each at most about (d + 3)·U·mag. Underflow (σ² and 1/σ² stay normal here), one ETA per
    # product or quotient times what multiplies it afterwards: ‖x‖² in the query lift (d products, times
    # 1/σ²), ‖c‖² in the constant (d, times 1/σ²) and its product with 1/σ² (1), each 2c_k/σ² (1, times
    # x_k), the dot product (d + 1), the direct Σ(x − c)² (d, times 1/σ²) and its quotient by σ² (1):
    # ETA·(‖x‖₁ + 3d/σ² + d + 3), doubled, like the relative part, for the later roundings it passes.
    l1 = np.sum(np.abs(x), 1)[:, None]
    tiny = TWO_ETA * (l1 + 3 * d / s**2 + d + 3)
    assert np.all(np.abs(got - want) <= 4 * (d + 4) * U * mag + tiny)
    # the components, as documented
    np.testing.assert_array_equal(lq[:, :-2], x)
    np.testing.assert_array_equal(lq[:, -1], 1.0)
    np.testing.assert_allclose(lq[:, -2], np.sum(x * x, 1), rtol=(x.shape[1] + 2) * U)
    np.testing.assert_array_equal(la[:, :-2], 2.0 * (1.0 / np.square(s))[:, None] * c)
    np.testing.assert_array_equal(la[:, -2], -(1.0 / np.square(s)))


def test_inner_product_lift_cancels_far_from_the_origin() -> None:
    """Why clear does not trust the lift: at ‖x‖ ~ 1e6 with σ = 1e-4, two advertisers whose direct scores
    are −1 and −9 get lifted float64 scores whose difference is off by far more than that gap."""
    sigma = 1e-4
    x = np.full((1, 4), 1e6)
    c = x + np.array([[sigma, 0.0, 0.0, 0.0], [0.0, 3 * sigma, 0.0, 0.0]])
    s, b = np.full(2, sigma), np.ones(2)
    lifted = (lift_query_inner_product(x) @ lift_advertisers_inner_product(c, s, b).T)[0]
    direct = np.asarray(score(x[0], c, s, b))
    # c − x is σ and 3σ up to the 1.2e-10 spacing of floats near 1e6, so the direct scores are −1 and −9
    np.testing.assert_allclose(direct, [-1.0, -9.0], rtol=1e-5)
    assert abs((lifted[0] - lifted[1]) - (direct[0] - direct[1])) > 4.0


@examples(150)
@given(pts=points())
def test_power_distance_and_equal_sigma_weight(pts) -> None:
    x, c, s, b = pts
    w = equal_sigma_weight(s, b)
    np.testing.assert_array_equal(w, s * s * np.log(b))
    pd = power_distance(x[:, None, :], c[None], w)
    assert pd.shape == (x.shape[0], c.shape[0])
    direct = np.sum((x[:, None, :] - c[None]) ** 2, -1) - w
    assert np.all(np.abs(pd - direct) <= 4 * (x.shape[1] + 2) * U * (np.abs(direct) + np.abs(w) + 1e-300))
    # the power distance of a site to itself is minus its weight
    np.testing.assert_array_equal(power_distance(c, c, w), -w)


def test_power_distance_scalar_and_broadcasting() -> None:
    assert float(power_distance([1.0, 0.0], [0.0, 0.0], 0.5)) == 0.5
    assert power_distance(np.zeros((3, 1, 2)), np.ones((4, 2)), np.zeros(4)).shape == (3, 4)
    assert equal_sigma_weight(2.0, np.e) == 4.0


@examples(150)
@given(pts=points(lo=-5.0, hi=5.0))
def test_paraboloid_lift_pieces(pts) -> None:
    """Query lift (x, ‖x‖²); site (σ⁻²c, −σ⁻²/2); weight ‖σ⁻²c‖² + σ⁻⁴/4 − σ⁻²‖c‖² + log b (§5.2)."""
    x, c, s, b = pts
    lq = lift_query_paraboloid(x)
    assert lq.shape == (x.shape[0], x.shape[1] + 1)
    np.testing.assert_array_equal(lq[:, :-1], x)
    np.testing.assert_allclose(lq[:, -1], np.sum(x * x, 1), rtol=(x.shape[1] + 2) * U)
    site = lifted_site(c, s)
    inv = 1.0 / s**2
    np.testing.assert_array_equal(site, np.concatenate([inv[:, None] * c, -0.5 * inv[:, None]], axis=1))
    w = lifted_weight(c, s, b)
    c2 = np.sum(c * c, 1)
    want = inv**2 * c2 + inv**2 / 4 - inv * c2 + np.log(b)
    assert np.all(
        np.abs(w - want) <= 8 * (c.shape[1] + 4) * U * (inv**2 * c2 + inv**2 / 4 + inv * c2 + np.abs(np.log(b)))
    )
    # lifted power distance is the power distance of the lifted query to the lifted site
    lpd = lifted_power_distance(x[:, None, :], c[None], s, b)
    np.testing.assert_array_equal(lpd, power_distance(lq[:, None, :], site[None], w))


def test_lift_broadcasts_a_scalar_sigma() -> None:
    c = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(lifted_site(c, 2.0), lifted_site(c, np.array([2.0, 2.0])))
    np.testing.assert_array_equal(
        lift_advertisers_inner_product(c, 2.0, 3.0), lift_advertisers_inner_product(c, [2.0, 2.0], [3.0, 3.0])
    )
    single = lift_advertisers_inner_product([1.0, 2.0], 0.5, 1.0)
    np.testing.assert_array_equal(single, [8.0, 16.0, -4.0, -20.0])
    np.testing.assert_array_equal(lift_query_inner_product([1.0, 2.0]), [1.0, 2.0, 5.0, 1.0])


@examples(150)
@given(pts=points(), shift=hnp.arrays(np.float64, 8, elements=st.floats(-1e3, 1e3)))
# ‖x − c‖² = 1.44e-312 is subnormal: translating by 1e-153 changes x − c by ~1e-169, the square by less than
# the subnormal spacing, yet the two rounded squares differ by 2⁻¹⁰⁷⁴ (only the ETA term covers it).
@example(
    pts=(np.array([[1e-157]]), np.array([[-1.1e-156]]), np.ones(1), np.ones(1)),
    shift=np.array([1e-153, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
)
def test_score_is_translation_invariant(pts, shift) -> None:
    """score depends on x − c only, which is what lets clear translate by the mean center."""
    x, c, s, b = pts
    d = x.shape[1]
    t = shift[:d]
    a = np.asarray(score(x[:, None, :], c[None], s, b))
    moved = np.asarray(score((x + t)[:, None, :], (c + t)[None], s, b))
    # translating rounds each coordinate difference by up to u·(|x| + |t|) relative to nothing cancelling
    # (U is applied last so that err's own underflow stays below ETA·(1/σ² + 1) after the division)
    diff = np.abs(x[:, None, :] - c[None])
    err = U * np.sum(8 * diff * (np.abs(x[:, None, :]) + np.abs(c[None]) + 2 * np.abs(t)) + 8 * diff**2, -1)
    # underflow: ETA·(d/σ² + 1) in each of the two scores (d squares, then the quotient by σ²), ETA·(1/σ² + 1)
    # in err / σ² and ETA in the relative term: ETA·((2d + 1)/σ² + 4), doubled for the later roundings
    tiny = TWO_ETA * ((2 * d + 1) / s**2 + 4)
    assert np.all(np.abs(a - moved) <= err / s**2 + 8 * (d + 4) * U * (np.abs(a) + 2 * np.abs(np.log(b))) + tiny)
