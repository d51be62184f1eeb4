"""Bootstrap confidence intervals for per-query measurements (one helper for every experiment), and a
permutation test of whether an outcome rises with a treatment within groups (the bid sweep's).

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

__all__ = ["Interval", "SlopeTest", "bootstrap_ci", "slope_permutation_test"]


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


@dataclass(frozen=True)
class SlopeTest:
    """Within-group least-squares slope of ``y`` on ``x`` and its one-sided permutation p-values.

    ``p_increasing``: the share of permutations (``x`` shuffled within each group, the observed order
    counted as one) whose slope is at least the observed one: small when ``y`` rises with ``x``.
    ``p_decreasing`` likewise for a falling ``y``. Under the null hypothesis that ``y`` does not depend on
    ``x`` within groups, each is a valid p-value (never below ``1 / (permutations + 1)``).
    """

    slope: float
    p_increasing: float
    p_decreasing: float
    n: int
    permutations: int


def _within_slope(x: np.ndarray, y: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Slopes of ``y`` on each row of ``x`` (``(k, n)``, sorted by group; groups begin at ``starts``),
    both centered within their groups."""
    sizes = np.diff(np.append(starts, y.size))
    xc = x - np.repeat(np.add.reduceat(x, starts, axis=-1) / sizes, sizes, axis=-1)
    yc = y - np.repeat(np.add.reduceat(y, starts) / sizes, sizes)
    den = (xc * xc).sum(axis=-1)
    return np.where(den > 0, (xc * yc).sum(axis=-1) / np.where(den > 0, den, 1.0), 0.0)


def slope_permutation_test(
    x: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None, *, permutations: int = 2000, seed: int = 0
) -> SlopeTest:
    """Does ``y`` rise with ``x`` within groups? Slope and one-sided permutation p-values (:class:`SlopeTest`).

    Used for the bid sweep: ``x`` the swept ad's bid of each reply, ``y`` 1 when the reply showed the ad
    (or when it was clicked), ``groups`` the query, so that the bids are shuffled among the replies of the
    same query only.

    >>> t = slope_permutation_test([1, 1, 2, 2, 3, 3], [0, 0, 0, 1, 1, 1], permutations=500)
    >>> t.slope > 0, t.p_increasing < 0.1, t.p_decreasing > 0.9
    (True, True, True)
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or ya.shape != xa.shape:
        raise ValueError(f"y: must have the shape of x {xa.shape}, got {ya.shape}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError("x, y: must be finite")
    if int(permutations) != permutations or permutations < 1:
        raise ValueError(f"permutations: must be a positive integer, got {permutations!r}")
    g = np.zeros(xa.size, dtype=np.int64) if groups is None else np.asarray(groups)
    if g.shape != xa.shape:
        raise ValueError(f"groups: must have the shape of x {xa.shape}, got {g.shape}")
    if xa.size == 0:
        return SlopeTest(0.0, 1.0, 1.0, 0, int(permutations))
    order = np.argsort(g, kind="stable")
    xa, ya, g = xa[order], ya[order], g[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    observed = float(_within_slope(xa[None, :], ya, starts)[0])
    rng = np.random.default_rng(seed)
    ends = np.append(starts[1:], xa.size)
    perm = np.repeat(xa[None, :], int(permutations), axis=0)
    for a, b in zip(starts, ends, strict=True):
        perm[:, a:b] = rng.permuted(perm[:, a:b], axis=1)
    slopes = _within_slope(perm, ya, starts)
    tol = 1e-12 * max(1.0, abs(observed))
    p_inc = (1 + int(np.count_nonzero(slopes >= observed - tol))) / (permutations + 1)
    p_dec = (1 + int(np.count_nonzero(slopes <= observed + tol))) / (permutations + 1)
    return SlopeTest(observed, p_inc, p_dec, int(xa.size), int(permutations))
