"""LLM-Auction: the quantities of the generative auction (Zhao et al., arXiv 2512.10551), in float64.

The LLM is the allocation rule: for a query ``x``, a user profile ``h``, candidate ads ``a`` and bids
``b`` it writes a reply ``y ~ π_θ(·|x, h, a, b)`` with ads inline as ``@Ad Title@[Ad-ID]``. This module
holds the arithmetic that turns sampled replies and simulated clicks into the mechanism's numbers;
parsing the replies lives in :mod:`adspace.experiments.llm_auction.format` (text processing), models and
simulators in :mod:`adspace.experiments.llm_auction`.

Definitions (one function per quantity of the paper)
----------------------------------------------------
* **ITCTR** (Definition 3.1): ``itctr_i = E_y[ctr_i(x, h, a_i, y)·1(a_i ∈ y)]``, the probability that ad
  ``i`` is shown *and* clicked. :func:`estimate_itctr` is the Monte Carlo estimate from ``S`` sampled
  replies with simulated clicks (mean of ``click·shown``, with its standard error);
  :func:`expected_itctr` the same mean when the click model gives probabilities instead of draws.
* **Response penalty** ``s_resp(y)`` (:func:`response_penalty`): ``ad_cost·(#ads inserted) +
  error_cost·(#format errors)``. The paper penalises the number of ads and format errors but does not
  publish the weights; the defaults ``ad_cost = 10`` and ``error_cost = 100`` are ours (a format error
  is "severely penalised"; on bids in 1..100 one error outweighs the revenue of a typical click).
* **KL** (:func:`kl_estimate`): ``KL(π_θ‖π_θ0) ≈ mean_s[log π_θ(y_s) − log π_θ0(y_s)]`` over replies
  ``y_s ~ π_θ``, the unbiased sample estimate.
* **Objective** (eq. 2, :func:`objective`): ``Σ_i v_i·itctr_i − λ·E[s_resp] − β·KL``.
* **Reward of one reply** used for preference alignment (:func:`reply_reward`):
  ``Σ_{i ∈ y} b_i·ctr_i − λ·s_resp(y)`` with ``ctr_i`` a pCTR prediction or, for the Oracle variant,
  the simulator's click.
* **Payment** (first price per click): a clicked ad pays its bid. Money is integer micros:
  :func:`first_price_payments` returns ``bid_micros·clicked`` as ``int64``; the expected payment is
  ``b_i·itctr_i`` (:func:`expected_payments`). Revenue of a query is the sum of the bids of the clicked
  ads (:func:`revenue_micros`).
* **Monotonicity** (Definition 3.2) is measured, not assumed: :func:`monotonicity` takes a bid sweep
  with ITCTR estimates and their standard errors and reports rank correlation and statistically
  significant decreases.

Everything validates its inputs once at the boundary (``ValueError`` naming the field).

>>> import numpy as np
>>> shown = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], dtype=bool)     # 4 sampled replies, 2 ads
>>> clicks = np.array([[1, 0], [0, 1], [0, 0], [1, 0]], dtype=bool)
>>> estimate_itctr(clicks, shown).itctr.tolist()
[0.5, 0.25]
>>> first_price_payments([3_000_000, 7_000_000], clicks[1]).tolist()     # reply 2: ad 2 clicked
[0, 7000000]
>>> objective(values=[4.0, 8.0], itctr=[0.5, 0.25], s_resp=12.5, kl=0.3, lam=0.1, beta=1.0)
2.45
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.mechanisms._validate import as_float_array

__all__ = [
    "DEFAULT_AD_COST",
    "DEFAULT_ERROR_COST",
    "MICROS",
    "ItctrEstimate",
    "Monotonicity",
    "estimate_itctr",
    "expected_itctr",
    "expected_payments",
    "first_price_payments",
    "kl_estimate",
    "monotonicity",
    "objective",
    "reply_reward",
    "response_penalty",
    "revenue_micros",
    "to_micros",
    "utilities",
]

MICROS = 1_000_000
DEFAULT_AD_COST = 10.0
DEFAULT_ERROR_COST = 100.0


# --------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------


def _as_bool_array(value: Any, name: str, ndim: int) -> NDArray[np.bool_]:
    arr = np.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name}: must be boolean or 0/1, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: entries must be 0 or 1, got {arr[where]!r} at index {where}")
    return arr.astype(bool)


def _nonneg_float(value: Any, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}") from None
    if not np.isfinite(x) or x < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    return x


def _where(j: tuple[int, ...]) -> str:
    return "" if not j else f" at index {j[0] if len(j) == 1 else j}"


def _nonneg_array(value: Any, name: str, ndim: int | tuple[int, ...] = 1) -> NDArray[np.float64]:
    arr = as_float_array(value, name, ndim=ndim)
    if arr.size and (arr < 0).any():
        j = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name}: must be >= 0, got {float(arr[j])!r}{_where(j)}")
    return arr


def _prob_array(value: Any, name: str, ndim: int) -> NDArray[np.float64]:
    arr = _nonneg_array(value, name, ndim)
    if arr.size and (arr > 1).any():
        j = tuple(int(i) for i in np.argwhere(arr > 1)[0])
        raise ValueError(f"{name}: probabilities must be in [0, 1], got {float(arr[j])!r}{_where(j)}")
    return arr


def _micros_array(value: Any, name: str) -> NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name}: must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: money must be integer micros, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        j = int(np.argmax(arr < 0))
        raise ValueError(f"{name}: must be >= 0, got {int(arr[j])} at index {j}")
    return arr


def to_micros(amount: ArrayLike) -> NDArray[np.int64]:
    """Currency units -> integer micros, rounded half away from zero.

    >>> to_micros([1, 2.5, 0.0000014]).tolist()
    [1000000, 2500000, 1]
    """
    a = as_float_array(amount, "amount", ndim=(0, 1))
    scaled = a * MICROS
    return (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# ITCTR
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItctrEstimate:
    """Monte Carlo ITCTR of ``n`` ads from ``S`` sampled replies.

    Attributes
    ----------
    itctr : (n,) mean of ``click·shown`` over the samples.
    stderr : (n,) its standard error ``sqrt(p(1−p)/S)``.
    exposure : (n,) fraction of replies that show the ad, ``E[1(a_i ∈ y)]``.
    samples : ``S``.
    """

    itctr: NDArray[np.float64]
    stderr: NDArray[np.float64]
    exposure: NDArray[np.float64]
    samples: int


def estimate_itctr(clicks: ArrayLike, shown: ArrayLike | None = None) -> ItctrEstimate:
    """ITCTR (Definition 3.1) from simulated clicks on ``S`` replies sampled from the allocation.

    Parameters
    ----------
    clicks : (S, n) bool or 0/1
        ``clicks[s, i]``: the simulated user clicked ad ``i`` in reply ``s``.
    shown : (S, n) bool or 0/1, optional
        ``shown[s, i]``: reply ``s`` inserts ad ``i`` (validly). A click on an ad that is not shown is
        an error. Defaults to ``clicks`` (then ``exposure`` is only a lower bound).

    >>> estimate_itctr([[1], [0]]).itctr.tolist()
    [0.5]
    """
    c = _as_bool_array(clicks, "clicks", 2)
    s = c if shown is None else _as_bool_array(shown, "shown", 2)
    if s.shape != c.shape:
        raise ValueError(f"shown: must have the shape of clicks {c.shape}, got {s.shape}")
    if c.shape[0] < 1:
        raise ValueError(f"clicks: need at least one sampled reply (row), got shape {c.shape}")
    bad = c & ~s
    if bad.any():
        r, i = (int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"clicks: ad {i} is clicked in reply {r} but not shown there")
    n_samples = c.shape[0]
    p = c.mean(axis=0, dtype=np.float64)
    return ItctrEstimate(
        itctr=p,
        stderr=np.sqrt(p * (1.0 - p) / n_samples),
        exposure=s.mean(axis=0, dtype=np.float64),
        samples=n_samples,
    )


def expected_itctr(ctr: ArrayLike, shown: ArrayLike) -> NDArray[np.float64]:
    """ITCTR with click *probabilities*: ``mean_s ctr[s, i]·shown[s, i]`` (a lower-variance estimate).

    >>> expected_itctr([[0.2, 0.9], [0.4, 0.9]], [[1, 0], [1, 1]]).round(3).tolist()
    [0.3, 0.45]
    """
    p = _prob_array(ctr, "ctr", 2)
    s = _as_bool_array(shown, "shown", 2)
    if s.shape != p.shape:
        raise ValueError(f"shown: must have the shape of ctr {p.shape}, got {s.shape}")
    if p.shape[0] < 1:
        raise ValueError(f"ctr: need at least one sampled reply (row), got shape {p.shape}")
    return (p * s).mean(axis=0)


# --------------------------------------------------------------------------------------------------
# Penalty, KL, objective, reward
# --------------------------------------------------------------------------------------------------


def response_penalty(
    n_ads: ArrayLike, n_errors: ArrayLike, *, ad_cost: float = DEFAULT_AD_COST, error_cost: float = DEFAULT_ERROR_COST
) -> NDArray[np.float64] | float:
    """``s_resp = ad_cost·n_ads + error_cost·n_errors`` (scalar or element-wise).

    >>> response_penalty(2, 1)
    120.0
    """
    a = _nonneg_array(n_ads, "n_ads", ndim=(0, 1))
    e = _nonneg_array(n_errors, "n_errors", ndim=(0, 1))
    if a.shape != e.shape and a.ndim and e.ndim:
        raise ValueError(f"n_errors: must have the shape of n_ads {a.shape}, got {e.shape}")
    out = _nonneg_float(ad_cost, "ad_cost") * a + _nonneg_float(error_cost, "error_cost") * e
    return float(out) if out.ndim == 0 else out


def kl_estimate(logp: ArrayLike, logp_ref: ArrayLike) -> float:
    """``KL(π_θ‖π_θ0)`` estimated as ``mean(log π_θ(y_s) − log π_θ0(y_s))`` over ``y_s ~ π_θ``.

    Both arguments are sequence log-probabilities (<= 0) of the same sampled replies.

    >>> kl_estimate([-10.0, -12.0], [-11.0, -12.5])
    0.75
    """
    lp = as_float_array(logp, "logp", ndim=1)
    lr = as_float_array(logp_ref, "logp_ref", ndim=1)
    if lp.shape != lr.shape:
        raise ValueError(f"logp_ref: must have the shape of logp {lp.shape}, got {lr.shape}")
    if lp.size == 0:
        raise ValueError("logp: need at least one sampled reply")
    for name, arr in (("logp", lp), ("logp_ref", lr)):
        if (arr > 0).any():
            j = int(np.argmax(arr > 0))
            raise ValueError(f"{name}: log-probabilities must be <= 0, got {arr[j]!r} at index {j}")
    return float(np.mean(lp - lr))


def objective(
    values: ArrayLike, itctr: ArrayLike, s_resp: float, kl: float = 0.0, *, lam: float = 1.0, beta: float = 0.0
) -> float:
    """The mechanism objective of eq. (2): ``Σ_i v_i·itctr_i − λ·s_resp − β·KL``.

    ``s_resp`` is the expected response penalty under the allocation (e.g. its sample mean) and ``kl``
    the divergence from the pre-trained model (:func:`kl_estimate`).

    >>> objective([10.0, 0.0], [0.5, 0.9], s_resp=2.0, lam=1.0)
    3.0
    """
    v = _nonneg_array(values, "values")
    q = _prob_array(itctr, "itctr", 1)
    if q.shape != v.shape:
        raise ValueError(f"itctr: must have the shape of values {v.shape}, got {q.shape}")
    s = _nonneg_float(s_resp, "s_resp")
    try:
        k = float(kl)
    except (TypeError, ValueError):
        raise ValueError(f"kl: must be a finite number, got {kl!r}") from None
    if not np.isfinite(k):
        raise ValueError(f"kl: must be a finite number, got {kl!r}")
    return float(v @ q - _nonneg_float(lam, "lam") * s - _nonneg_float(beta, "beta") * k)


def reply_reward(
    bids: ArrayLike,
    ctr: ArrayLike,
    shown: ArrayLike,
    n_errors: int = 0,
    *,
    lam: float = 1.0,
    ad_cost: float = DEFAULT_AD_COST,
    error_cost: float = DEFAULT_ERROR_COST,
) -> float:
    """Reward of one reply for preference alignment: ``Σ_{i shown} b_i·ctr_i − λ·s_resp(y)``.

    ``ctr`` holds pCTR predictions (LLM-Auction) or the simulator's 0/1 clicks (the Oracle variant);
    ``s_resp`` counts the shown ads and ``n_errors`` format errors.

    >>> reply_reward([50.0, 20.0], [0.3, 0.9], [True, False], n_errors=0, lam=1.0)
    5.0
    """
    b = _nonneg_array(bids, "bids")
    p = _prob_array(ctr, "ctr", 1)
    s = _as_bool_array(shown, "shown", 1)
    if p.shape != b.shape:
        raise ValueError(f"ctr: must have the shape of bids {b.shape}, got {p.shape}")
    if s.shape != b.shape:
        raise ValueError(f"shown: must have the shape of bids {b.shape}, got {s.shape}")
    pen = response_penalty(int(s.sum()), n_errors, ad_cost=ad_cost, error_cost=error_cost)
    return float((b * p * s).sum() - _nonneg_float(lam, "lam") * pen)


# --------------------------------------------------------------------------------------------------
# Payments and revenue (integer micros)
# --------------------------------------------------------------------------------------------------


def first_price_payments(bid_micros: ArrayLike, clicked: ArrayLike) -> NDArray[np.int64]:
    """First price per click: ``(n,)`` int64 payments, ``bid_micros[i]`` if ad ``i`` was clicked, else 0.

    >>> first_price_payments([1_500_000, 2_000_000], [False, True]).tolist()
    [0, 2000000]
    """
    b = _micros_array(bid_micros, "bid_micros")
    c = _as_bool_array(clicked, "clicked", 1)
    if c.shape != b.shape:
        raise ValueError(f"clicked: must have the shape of bid_micros {b.shape}, got {c.shape}")
    return np.where(c, b, np.int64(0))


def revenue_micros(bid_micros: ArrayLike, clicked: ArrayLike) -> int:
    """Revenue of one reply: the sum of the bids of the clicked ads, integer micros.

    >>> revenue_micros([1_500_000, 2_000_000], [True, True])
    3500000
    """
    return int(first_price_payments(bid_micros, clicked).sum())


def expected_payments(bids: ArrayLike, itctr: ArrayLike) -> NDArray[np.float64]:
    """Expected first-price payments ``b_i·itctr_i`` (currency units, float64; for analysis, not billing).

    >>> expected_payments([10.0, 4.0], [0.2, 0.0]).tolist()
    [2.0, 0.0]
    """
    b = _nonneg_array(bids, "bids")
    q = _prob_array(itctr, "itctr", 1)
    if q.shape != b.shape:
        raise ValueError(f"itctr: must have the shape of bids {b.shape}, got {q.shape}")
    return b * q


def utilities(values: ArrayLike, bids: ArrayLike, itctr: ArrayLike) -> NDArray[np.float64]:
    """Quasi-linear utilities of utility maximisers (Definition 3.3): ``(v_i − b_i)·itctr_i``.

    Under first price a truthful bid gives utility 0; a value maximiser with target ROI ``τ_i >= 1``
    who bids ``v_i/τ_i`` pays at most its value (individual rationality).

    >>> utilities([10.0, 4.0], [6.0, 4.0], [0.5, 0.3]).tolist()
    [2.0, 0.0]
    """
    v = _nonneg_array(values, "values")
    pay = expected_payments(bids, itctr)
    q = np.asarray(itctr, dtype=np.float64)
    if v.shape != q.shape:
        raise ValueError(f"values: must have the shape of itctr {q.shape}, got {v.shape}")
    return v * q - pay


# --------------------------------------------------------------------------------------------------
# Monotonicity measurement
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Monotonicity:
    """What a bid sweep says about Definition 3.2.

    Attributes
    ----------
    spearman : rank correlation of bid and ITCTR (1.0 = perfectly increasing order).
    slope : least-squares slope of ITCTR on the bid.
    violations : number of pairs ``b < b'`` whose ITCTR *decreases* by more than ``z`` standard errors
        of the difference (statistically significant violations).
    pairs : number of pairs compared.
    max_drop : largest decrease ``itctr(b) − itctr(b')`` over ``b < b'`` (0 when none).
    monotone : ``violations == 0``.
    """

    spearman: float
    slope: float
    violations: int
    pairs: int
    max_drop: float
    monotone: bool


def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty_like(x)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    # average ranks over ties
    vals, inv = np.unique(x, return_inverse=True)
    sums = np.zeros(vals.size)
    counts = np.zeros(vals.size)
    np.add.at(sums, inv, ranks)
    np.add.at(counts, inv, 1.0)
    return (sums / counts)[inv]


def monotonicity(bids: ArrayLike, itctr: ArrayLike, stderr: ArrayLike | None = None, *, z: float = 3.0) -> Monotonicity:
    """Measure monotonicity of ITCTR in the bid from a sweep (others' bids fixed).

    Every pair of sweep points ``b_k < b_l`` is a test of Definition 3.2; a pair is a *violation* when
    ``itctr_k − itctr_l > z·sqrt(se_k² + se_l²)`` (with ``stderr=None`` any decrease counts).

    >>> m = monotonicity([1, 2, 3], [0.1, 0.2, 0.4])
    >>> (m.monotone, m.spearman, m.violations)
    (True, 1.0, 0)
    >>> monotonicity([1, 2, 3], [0.4, 0.2, 0.1]).violations
    3
    """
    b = as_float_array(bids, "bids", ndim=1)
    q = _prob_array(itctr, "itctr", 1)
    if q.shape != b.shape:
        raise ValueError(f"itctr: must have the shape of bids {b.shape}, got {q.shape}")
    if b.size < 2:
        raise ValueError(f"bids: a sweep needs at least 2 points, got {b.size}")
    se = np.zeros_like(q) if stderr is None else _nonneg_array(stderr, "stderr")
    if se.shape != b.shape:
        raise ValueError(f"stderr: must have the shape of bids {b.shape}, got {se.shape}")
    zz = _nonneg_float(z, "z")
    lo, hi = np.triu_indices(b.size, k=1)
    less = b[lo] < b[hi]
    greater = b[lo] > b[hi]
    # orient every pair as (smaller bid, larger bid); equal bids are not compared
    small = np.where(less, lo, hi)[less | greater]
    large = np.where(less, hi, lo)[less | greater]
    drop = q[small] - q[large]
    tol = zz * np.sqrt(se[small] ** 2 + se[large] ** 2)
    violations = int(np.count_nonzero(drop > tol)) if stderr is not None else int(np.count_nonzero(drop > 0))
    rb, rq = _ranks(b), _ranks(q)
    if np.std(rb) == 0 or np.std(rq) == 0:
        rho = 0.0
    else:
        rho = float(np.corrcoef(rb, rq)[0, 1])
    bc = b - b.mean()
    slope = float(bc @ (q - q.mean()) / (bc @ bc)) if (bc @ bc) > 0 else 0.0
    return Monotonicity(
        spearman=rho,
        slope=slope,
        violations=violations,
        pairs=int(small.size),
        max_drop=float(max(0.0, drop.max(initial=0.0))),
        monotone=violations == 0,
    )
