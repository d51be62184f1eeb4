"""LLM-Auction quantities (adspace.mechanisms.llm_auction): ITCTR, objective, first-price payments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adspace.mechanisms import llm_auction as g


def _bool_matrix(rows, cols):
    return hnp.arrays(bool, st.tuples(st.integers(rows[0], rows[1]), st.integers(cols[0], cols[1])))


# --------------------------------------------------------------------------------------------------
# ITCTR (Definition 3.1)
# --------------------------------------------------------------------------------------------------


def test_itctr_is_the_mean_of_shown_and_clicked():
    shown = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    clicks = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=bool)
    est = g.estimate_itctr(clicks, shown)
    assert est.itctr.tolist() == [0.5, 0.5, 0.25]
    assert est.exposure.tolist() == [0.75, 0.75, 0.5]
    assert est.samples == 4
    assert np.allclose(est.stderr, np.sqrt(est.itctr * (1 - est.itctr) / 4))


def test_itctr_converges_to_ctr_times_exposure():
    # Monte Carlo estimate of E[ctr·1(shown)] with known exposure 0.6 and ctr 0.3 -> 0.18
    rng = np.random.default_rng(0)
    s = 200_000
    shown = rng.random((s, 1)) < 0.6
    clicks = shown & (rng.random((s, 1)) < 0.3)
    est = g.estimate_itctr(clicks, shown)
    assert abs(est.itctr[0] - 0.18) < 4 * est.stderr[0]
    assert abs(g.expected_itctr(np.full((s, 1), 0.3), shown)[0] - 0.18) < 0.005


def test_click_without_exposure_is_rejected():
    with pytest.raises(ValueError, match="clicks: ad 1 is clicked in reply 0 but not shown"):
        g.estimate_itctr([[0, 1]], [[1, 0]])
    with pytest.raises(ValueError, match="clicks: entries must be 0 or 1"):
        g.estimate_itctr([[2]])
    with pytest.raises(ValueError, match="shown: must have the shape"):
        g.estimate_itctr([[1, 0]], [[1]])
    with pytest.raises(ValueError, match="clicks: need at least one"):
        g.estimate_itctr(np.zeros((0, 2), dtype=bool))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_property_itctr_bounded_by_exposure(data):
    shown = data.draw(_bool_matrix((1, 12), (1, 5)))
    clicks = shown & data.draw(hnp.arrays(bool, shown.shape))
    est = g.estimate_itctr(clicks, shown)
    assert np.all(est.itctr >= 0) and np.all(est.itctr <= est.exposure)


# --------------------------------------------------------------------------------------------------
# Objective (eq. 2), penalty, KL, reward
# --------------------------------------------------------------------------------------------------


def test_objective_formula():
    v, q = np.array([40.0, 10.0, 0.0]), np.array([0.25, 0.5, 1.0])
    assert g.objective(v, q, s_resp=3.0, kl=2.0, lam=2.0, beta=0.5) == pytest.approx(15.0 - 6.0 - 1.0)
    # λ = β = 0: pure expected value
    assert g.objective(v, q, s_resp=100.0, kl=5.0, lam=0.0, beta=0.0) == pytest.approx(15.0)


@settings(max_examples=100, deadline=None)
@given(
    v=hnp.arrays(np.float64, 3, elements=st.floats(0, 100)),
    q=hnp.arrays(np.float64, 3, elements=st.floats(0, 1)),
    dq=st.floats(0, 0.5),
    s=st.floats(0, 50),
    ds=st.floats(0, 50),
    kl=st.floats(0, 10),
)
def test_property_objective_monotone_in_value_and_penalties(v, q, dq, s, ds, kl):
    base = g.objective(v, q, s, kl, lam=1.0, beta=0.1)
    up = np.minimum(q + dq, 1.0)
    assert g.objective(v, up, s, kl, lam=1.0, beta=0.1) >= base - 1e-9  # more clicks never hurt
    assert g.objective(v, q, s + ds, kl, lam=1.0, beta=0.1) <= base + 1e-9  # more penalty never helps
    assert g.objective(v, q, s, kl + 1.0, lam=1.0, beta=0.1) < base  # drifting from π_θ0 costs β


def test_response_penalty_counts_ads_and_errors():
    assert g.response_penalty(0, 0) == 0.0
    assert g.response_penalty(3, 2, ad_cost=1.5, error_cost=7.0) == pytest.approx(18.5)
    assert g.response_penalty([1, 2], [0, 1]).tolist() == [
        g.DEFAULT_AD_COST,
        2 * g.DEFAULT_AD_COST + g.DEFAULT_ERROR_COST,
    ]
    with pytest.raises(ValueError, match="n_ads: must be >= 0"):
        g.response_penalty(-1, 0)
    with pytest.raises(ValueError, match="ad_cost"):
        g.response_penalty(1, 0, ad_cost=float("nan"))


def test_kl_estimate():
    assert g.kl_estimate([-1.0, -3.0], [-1.0, -3.0]) == 0.0
    assert g.kl_estimate([-1.0, -2.0], [-2.0, -4.0]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="logp: log-probabilities must be <= 0"):
        g.kl_estimate([0.5], [-1.0])
    with pytest.raises(ValueError, match="logp_ref: must have the shape"):
        g.kl_estimate([-1.0], [-1.0, -2.0])


def test_kl_estimate_is_unbiased_on_a_known_pair_of_distributions():
    p = np.array([0.5, 0.3, 0.2])
    r = np.array([0.2, 0.3, 0.5])
    exact = float(np.sum(p * np.log(p / r)))
    ys = np.random.default_rng(1).choice(3, size=100_000, p=p)
    assert g.kl_estimate(np.log(p[ys]), np.log(r[ys])) == pytest.approx(exact, abs=0.01)


def test_reply_reward():
    # pCTR-weighted bids of shown ads, minus λ·(ad_cost·ads + error_cost·errors)
    r = g.reply_reward(
        [50.0, 30.0, 90.0], [0.4, 0.5, 0.9], [True, True, False], n_errors=1, lam=0.5, ad_cost=2, error_cost=10
    )
    assert r == pytest.approx(20.0 + 15.0 - 0.5 * (4 + 10))
    # an unshown ad contributes nothing however likely its click
    assert g.reply_reward([100.0], [1.0], [False], lam=1.0) == 0.0
    with pytest.raises(ValueError, match="ctr: probabilities must be in"):
        g.reply_reward([1.0], [1.5], [True])


# --------------------------------------------------------------------------------------------------
# First-price payments, in integer micros
# --------------------------------------------------------------------------------------------------


def test_first_price_payments_are_the_bids_of_clicked_ads():
    bids = np.array([12_000_000, 3_500_000, 99_000_000], dtype=np.int64)
    pay = g.first_price_payments(bids, [True, False, True])
    assert pay.dtype == np.int64
    assert pay.tolist() == [12_000_000, 0, 99_000_000]
    assert g.revenue_micros(bids, [True, False, True]) == 111_000_000
    assert g.revenue_micros(bids, [False, False, False]) == 0


def test_payments_refuse_float_money():
    with pytest.raises(ValueError, match="bid_micros: money must be integer micros"):
        g.first_price_payments([1.5, 2.0], [True, False])
    with pytest.raises(ValueError, match="bid_micros: must be >= 0"):
        g.first_price_payments([-1, 2], [True, False])
    with pytest.raises(ValueError, match="clicked: must have the shape"):
        g.first_price_payments([1, 2], [True])


def test_to_micros():
    assert g.to_micros([1, 100, 0.25]).tolist() == [1_000_000, 100_000_000, 250_000]
    assert g.to_micros(2.0000005).item() == 2_000_001


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_property_mean_realised_payment_is_bid_times_itctr(data):
    """E[first-price payment] = b·ITCTR: the sample mean of realised payments equals b·(empirical ITCTR)."""
    clicks = data.draw(_bool_matrix((1, 30), (1, 4)))
    n = clicks.shape[1]
    bids = np.asarray(data.draw(st.lists(st.integers(1, 100), min_size=n, max_size=n)))
    micros = g.to_micros(bids)
    paid = np.stack([g.first_price_payments(micros, c) for c in clicks])
    est = g.estimate_itctr(clicks)
    assert np.allclose(paid.mean(axis=0), g.expected_payments(micros.astype(float), est.itctr))
    assert sum(g.revenue_micros(micros, c) for c in clicks) == int(paid.sum())


def test_utilities_first_price():
    # truthful bid: zero utility; shading the bid: positive utility when the ad still gets clicks
    assert g.utilities([10.0], [10.0], [0.4]).tolist() == [0.0]
    assert g.utilities([10.0], [6.0], [0.4])[0] == pytest.approx(1.6)
    # a value maximiser with target ROI τ >= 1 bidding v/τ pays at most its value (IR)
    v, tau, q = 30.0, 1.5, 0.2
    assert g.expected_payments([v / tau], [q])[0] <= v * q


# --------------------------------------------------------------------------------------------------
# The monotonicity measurement (Definition 3.2)
# --------------------------------------------------------------------------------------------------


def test_monotonicity_of_an_increasing_sweep():
    bids = np.arange(1, 11)
    m = g.monotonicity(bids, bids / 20)
    assert m.monotone and m.spearman == pytest.approx(1.0) and m.violations == 0 and m.pairs == 45
    assert m.slope == pytest.approx(0.05)


def test_monotonicity_detects_a_significant_drop_only():
    bids = [1, 2, 3, 4]
    q = [0.1, 0.3, 0.25, 0.5]
    loose = g.monotonicity(bids, q, stderr=[0.05] * 4, z=2.0)  # 0.05 drop < 2·sqrt(2)·0.05: noise
    assert loose.monotone and loose.max_drop == pytest.approx(0.05)
    tight = g.monotonicity(bids, q, stderr=[0.001] * 4, z=2.0)
    assert not tight.monotone and tight.violations == 1
    assert g.monotonicity(bids, q).violations == 1  # without standard errors any drop counts


def test_monotonicity_detects_sampled_non_monotone_allocation():
    # a rule that stops showing the ad at high bids: the sweep's statistics must say so
    rng = np.random.default_rng(3)
    bids = np.arange(10, 101, 10)
    true_q = np.where(bids <= 50, bids / 200, 0.05)
    n = 400
    clicks = rng.random((n, bids.size)) < true_q
    est = g.estimate_itctr(clicks)
    m = g.monotonicity(bids, est.itctr, est.stderr)
    assert not m.monotone and m.spearman < 0.5
    # and a genuinely increasing rule passes at the same sample size
    clicks = rng.random((n, bids.size)) < bids / 200
    est = g.estimate_itctr(clicks)
    assert g.monotonicity(bids, est.itctr, est.stderr).monotone


def test_monotonicity_input_errors():
    with pytest.raises(ValueError, match="bids: a sweep needs at least 2 points"):
        g.monotonicity([1], [0.5])
    with pytest.raises(ValueError, match="itctr: must have the shape"):
        g.monotonicity([1, 2], [0.5])
    with pytest.raises(ValueError, match="stderr: must be >= 0"):
        g.monotonicity([1, 2], [0.1, 0.2], stderr=[-1.0, 0.0])
