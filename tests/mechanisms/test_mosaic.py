"""MOSAIC kernel: validation, log-domain stability at magnitude 1e3, agreement with 60-digit arithmetic."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from adspace.mechanisms import mosaic

mpmath.mp.dps = 60


def _reference(rewards, log_ref, log_gen, tau, offset):
    """allocation, payments, utilities of eq. EC.2/EC.4 in 60-digit arithmetic, straight from the formulas."""
    n, m = rewards.shape
    R = [[mpmath.mpf(float(v)) for v in row] for row in rewards]
    ref = [mpmath.mpf(float(v)) for v in log_ref]
    gen = [mpmath.mpf(float(v)) for v in log_gen]
    t = mpmath.mpf(float(tau))
    logits = [sum(R[i][j] for i in range(n)) / t + ref[j] - gen[j] for j in range(m)]
    z = sum(mpmath.e**v for v in logits)
    pi = [mpmath.e**v / z for v in logits]
    pays, utils = [], []
    for i in range(n):
        beta = [sum(R[k][j] for k in range(n) if k != i) / t + ref[j] - gen[j] for j in range(m)]
        u = t * mpmath.log(sum(mpmath.e ** (R[i][j] / t + beta[j]) for j in range(m)))
        if offset:
            u -= t * mpmath.log(sum(mpmath.e**b for b in beta))
        pay = sum(pi[j] * R[i][j] for j in range(m)) - u
        pays.append(float(pay))
        utils.append(float(u))
    return np.array([float(p) for p in pi]), np.array(pays), np.array(utils)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 4),
    m=st.integers(1, 12),
    scale=st.sampled_from([1.0, 50.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
    offset=st.booleans(),
    tau=st.sampled_from([0.1, 1.0, 7.0]),
)
def test_matches_high_precision_at_magnitude_1e3(n, m, scale, seed, offset, tau):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(0.0, scale, (n, m))
    log_ref = -np.abs(rng.normal(scale, scale / 4, m))  # long replies: log-probs around −1e3
    log_gen = -np.abs(rng.normal(scale, scale / 4, m))
    pi, pay, util = _reference(rewards, log_ref, log_gen, tau, offset)
    assert np.allclose(mosaic.allocate(rewards, log_ref, log_gen, tau), pi, rtol=1e-9, atol=1e-12)
    # payments and utilities are differences of quantities of size ~scale/τ·τ: absolute error ~1e-13·scale
    atol = 1e-11 * (1.0 + scale + np.abs(rewards).max())
    assert np.allclose(mosaic.payments(rewards, log_ref, log_gen, tau, offset), pay, rtol=0, atol=atol)
    assert np.allclose(mosaic.utilities(rewards, log_ref, log_gen, tau, offset), util, rtol=0, atol=atol)


def test_huge_magnitudes_do_not_overflow():
    rewards = np.array([[1500.0, -1200.0, 900.0], [-800.0, 1400.0, 1000.0]])
    log_ref = np.array([-2000.0, -1500.0, -1800.0])
    log_gen = np.array([-1000.0, -900.0, -1100.0])
    pi = mosaic.allocate(rewards, log_ref, log_gen, 1.0)
    assert np.isfinite(pi).all() and abs(pi.sum() - 1.0) < 1e-15
    for offset in (True, False):
        assert np.isfinite(mosaic.payments(rewards, log_ref, log_gen, 1.0, offset)).all()
        assert np.isfinite(mosaic.utilities(rewards, log_ref, log_gen, 1.0, offset)).all()


def test_others_sum_is_not_total_minus_own():
    """An agent's huge reward must not wipe out the others' small differences (no total − r_i)."""
    rewards = np.array([[1e17, 1e17], [1.0, 0.0]])
    lp = np.zeros(2)
    beta = mosaic.others_logits(rewards, lp, lp, 1.0)
    assert beta[0].tolist() == [1.0, 0.0]


def test_payment_without_offset_is_eq_EC4_with_C_zero():
    r = np.array([[2.0, -1.0, 0.5]])
    ref = np.log([0.2, 0.3, 0.5])
    gen = np.log([0.4, 0.4, 0.2])
    logits = r[0] + ref - gen
    pi = np.exp(logits - np.logaddexp.reduce(logits))
    want = pi @ r[0] - np.logaddexp.reduce(logits)
    assert np.isclose(mosaic.payments(r, ref, gen, 1.0, offset=False)[0], want)
    # the offset adds τ·log Σ exp(β_{−i}) to the payment
    assert np.isclose(mosaic.payments(r, ref, gen, 1.0, offset=True)[0] - want, np.logaddexp.reduce(ref - gen))


def test_run_samples_from_the_allocation():
    r = np.array([[0.0, 1.0, 2.0]])
    lp = np.log(np.full(3, 1 / 3))
    rng = np.random.default_rng(0)
    idx = [mosaic.run(r, lp, lp, 1.0, rng=rng).index for _ in range(4000)]
    freq = np.bincount(idx, minlength=3) / 4000
    assert np.allclose(freq, mosaic.allocate(r, lp, lp, 1.0), atol=0.03)
    out = mosaic.run(r, lp, lp, 1.0, rng=1)
    assert np.isclose(out.realized_utilities[0], r[0, out.index] - out.payments[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rewards": [1.0, 2.0]}, "rewards: must be 2-D"),
        ({"rewards": np.zeros((0, 2))}, "rewards: must have at least one agent"),
        ({"rewards": np.zeros((2, 0)), "log_ref": [], "log_gen": []}, "rewards: must have at least one candidate"),
        ({"rewards": [[np.nan, 0.0]]}, "rewards: must be finite"),
        ({"log_ref": [-1.0]}, r"log_ref: must have shape \(2,\)"),
        ({"log_gen": [-1.0, -2.0, -3.0]}, r"log_gen: must have shape \(2,\)"),
        ({"log_ref": [-1.0, 0.5]}, "log_ref: log-probabilities must be <= 0"),
        ({"log_gen": [-1.0, np.inf]}, "log_gen: must be finite"),
        ({"log_gen": [-1.0, -np.inf]}, "log_gen: must be finite"),
        ({"tau": 0.0}, "tau: must be a positive finite number"),
        ({"tau": -1.0}, "tau: must be a positive finite number"),
        ({"tau": float("nan")}, "tau: must be a positive finite number"),
        ({"tau": "hot"}, "tau: must be a positive finite number"),
        ({"rewards": "abc"}, "rewards: must be numeric"),
    ],
)
@pytest.mark.parametrize("fn", [mosaic.allocate, mosaic.payments, mosaic.utilities])
def test_validation_names_the_argument(fn, kwargs, match):
    args = {"rewards": [[1.0, 2.0]], "log_ref": [-1.0, -2.0], "log_gen": [-1.0, -2.0], "tau": 1.0} | kwargs
    with pytest.raises(ValueError, match=match):
        fn(**args)


def test_true_rewards_shape_is_checked():
    with pytest.raises(ValueError, match="true_rewards: must have the shape"):
        mosaic.utilities([[1.0, 2.0]], [-1.0, -1.0], [-1.0, -1.0], 1.0, true_rewards=[[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="i: must index an agent"):
        mosaic.utility_of_report(3, [0.0, 0.0], [[1.0, 2.0]], [-1.0, -1.0], [-1.0, -1.0], 1.0)


@settings(max_examples=50, deadline=None)
@given(r=arrays(np.float64, (3, 5), elements=st.floats(-20, 20)), tau=st.floats(0.1, 5.0))
def test_allocation_is_a_distribution(r, tau):
    lp = np.full(5, -np.log(5))
    pi = mosaic.allocate(r, lp, lp, tau)
    assert (pi >= 0).all() and abs(pi.sum() - 1.0) < 1e-12
