"""``bootstrap_ci``: deterministic percentile intervals of a mean or a ratio of sums over observations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adspace.simulate.stats import bootstrap_ci

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
