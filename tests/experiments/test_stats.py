"""``bootstrap_ci``: deterministic percentile intervals of a mean or a ratio of sums over observations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.experiments.stats import bootstrap_ci

floats = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(floats, min_size=1, max_size=40), st.integers(0, 2**31))
def test_interval_brackets_the_sample_mean_and_lies_within_the_data(xs, seed):
    iv = bootstrap_ci(xs, n_resamples=300, seed=seed)
    assert iv.estimate == pytest.approx(float(np.mean(xs)))
    tol = 1e-9 * (1 + max(abs(v) for v in xs))
    assert min(xs) - tol <= iv.low <= iv.high <= max(xs) + tol
    assert iv == bootstrap_ci(xs, n_resamples=300, seed=seed)  # same seed, same interval


def test_constant_data_has_a_zero_width_interval_and_ratio_keeps_pairs():
    iv = bootstrap_ci([3.0] * 10)
    assert (iv.estimate, iv.low, iv.high, iv.n) == (3.0, 3.0, 3.0, 10)
    # every query has num == den / 2: every resample's ratio is 0.5
    r = bootstrap_ci([1.0, 2.0, 0.0, 5.0], denominators=[2.0, 4.0, 0.0, 10.0])
    assert r.estimate == r.low == r.high == 0.5
    assert bootstrap_ci([0.0, 0.0], denominators=[0.0, 0.0]).to_json()["estimate"] is None
    assert bootstrap_ci([]).n == 0


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="values: must be finite"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="denominators: must have one entry per value"):
        bootstrap_ci([1.0, 2.0], denominators=[1.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0], level=1.5)


# ------------------------------------------------------------------- the bid sweep's permutation test
from adspace.experiments.stats import slope_permutation_test  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5), st.integers(0, 1)), min_size=2, max_size=60),
    st.integers(0, 2**31),
)
def test_permutation_p_values_are_valid_and_cover_both_directions(rows, seed):
    g, x, y = (np.array(c) for c in zip(*rows, strict=True))
    t = slope_permutation_test(x, y, g, permutations=200, seed=seed)
    floor = 1 / 201
    assert floor <= t.p_increasing <= 1 and floor <= t.p_decreasing <= 1
    assert t.p_increasing + t.p_decreasing >= 1  # every permutation is >= or <= the observed slope
    # the slope is within groups: shifting one group's x (or y) leaves it unchanged
    assert t.slope == pytest.approx(slope_permutation_test(x + 7 * (g == g[0]), y, g, permutations=1).slope, abs=1e-12)
    assert t == slope_permutation_test(x, y, g, permutations=200, seed=seed)  # same seed, same test


def test_permutation_test_detects_a_rising_exposure_and_not_an_independent_one():
    rng = np.random.default_rng(3)
    bids = np.repeat([1, 25, 50, 75, 100], 32)
    q = np.tile(np.repeat(np.arange(4), 8), 5)
    rising = (rng.random(bids.size) < bids / 110).astype(float)
    flat = (rng.random(bids.size) < 0.3).astype(float)
    assert slope_permutation_test(bids, rising, q).p_increasing < 0.01
    t = slope_permutation_test(bids, flat, q)
    assert t.p_increasing > 0.05 and t.p_decreasing > 0.05
    # without variation in x inside any group there is nothing to test: slope 0, both p-values 1
    t = slope_permutation_test([1, 1, 2, 2], [0, 1, 0, 1], [0, 0, 1, 1], permutations=50)
    assert (t.slope, t.p_increasing, t.p_decreasing) == (0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="y: must have the shape"):
        slope_permutation_test([1, 2], [1])
    with pytest.raises(ValueError, match="permutations"):
        slope_permutation_test([1, 2], [1, 0], permutations=0)
