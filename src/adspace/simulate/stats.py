"""Bootstrap confidence intervals for per-query measurements (one helper for every experiment).

>>> iv = bootstrap_ci([1.0, 2.0, 3.0, 4.0], n_resamples=500, seed=1)
>>> iv.estimate, iv.low <= iv.estimate <= iv.high
(2.5, True)
>>> bootstrap_ci([1.0, 0.0, 1.0], denominators=[2.0, 1.0, 1.0]).estimate  # ratio of sums: 2 / 4
0.5
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Interval", "bootstrap_ci"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap interval; ``low``/``high`` are ``nan`` when undefined
    (no observations, or a ratio whose denominator is 0 in the sample)."""

    estimate: float
    low: float
    high: float
    n: int
    level: float

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        if not np.isfinite(self.estimate):
            return "n/a"
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


def bootstrap_ci(
    values: ArrayLike,
    denominators: ArrayLike | None = None,
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Mean of ``values`` (or, with ``denominators``, the ratio of sums ``Σ values / Σ denominators``)
    with a percentile-bootstrap ``level`` interval over the observations (resampled with replacement,
    ``n_resamples`` times, from ``numpy.random.default_rng(seed)``: the same inputs give the same interval).

    Observations are the units resampled (queries, in the comparisons): a ratio keeps each query's
    numerator and denominator together, so "share of shown ads judged relevant" is resampled by query.
    Non-finite values raise ``ValueError`` naming ``values`` / ``denominators``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise ValueError("values: must be finite numbers")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: must be in (0, 1), got {level!r}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples: must be a positive integer, got {n_resamples!r}")
    d = None
    if denominators is not None:
        d = np.asarray(denominators, dtype=np.float64).ravel()
        if d.shape != x.shape:
            raise ValueError(f"denominators: must have one entry per value ({x.size}), got {d.size}")
        if not np.isfinite(d).all() or (d < 0).any():
            raise ValueError("denominators: must be finite and >= 0")
    n = x.size
    nan = float("nan")
    if n == 0:
        return Interval(nan, nan, nan, 0, level)

    def stat(idx: np.ndarray) -> np.ndarray:
        if d is None:
            return x[idx].mean(axis=-1)
        num, den = x[idx].sum(axis=-1), d[idx].sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), nan)

    est = float(stat(np.arange(n)))
    rng = np.random.default_rng(seed)
    boots = stat(rng.integers(0, n, size=(int(n_resamples), n)))
    if d is not None and np.isnan(boots).any():
        boots = boots[~np.isnan(boots)]
        if boots.size == 0:
            return Interval(est, nan, nan, n, level)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return Interval(est, float(lo), float(hi), n, level)
