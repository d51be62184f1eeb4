"""Choosing a campaign's center and reach σ from evidence, and previewing it against a market.

The embedding-space VCG auction values an impression at the query point ``x`` as
``b · exp(−‖x − c‖²/σ²)``: the bid ``b`` is the value of a conversation exactly at the center ``c``
and σ says how fast the value falls with the squared distance. Read the factor
``p(x) = exp(−‖x − c‖²/σ²)`` as the chance that the person in the conversation is a customer;
then ``b · p(x)`` is the expected value of showing the ad there, and example conversations of
customers (``y = 1``) and of non-customers (``y = 0``) are evidence about ``c`` and σ.

The fit (:func:`fit_reach`)
---------------------------
* **Center**: the mean of the customers' embeddings, which maximises the customers' part of the
  likelihood, ``Σ_customers log p(x_i) = −Σ ‖x_i − c‖²/σ²``, for every σ.
* **σ, with non-customers**: maximum likelihood of the Bernoulli model ``P(y = 1 | x) = p(x)``.
  With ``λ = 1/σ²``, ``d_i = ‖x_i − c‖²`` for customers and ``e_j`` for non-customers,

  ``ℓ(λ) = −λ Σ d_i + Σ log(1 − exp(−λ e_j))``,

  ``ℓ'(λ) = −Σ d_i + Σ e_j / (exp(λ e_j) − 1)`` and ``ℓ''(λ) = −Σ e_j² exp(λ e_j)/(exp(λ e_j) − 1)² < 0``.
  ``ℓ`` is strictly concave, ``ℓ'`` falls from ``+∞`` (λ → 0) to ``−Σ d_i < 0`` (λ → ∞), so the
  maximiser is the unique root of ``ℓ'``, found here by bisection on ``log λ`` to float64 precision.
  Non-customers at the center itself (``e_j = 0``) carry no information about σ and are left out.
* **σ, customers only**: without non-customers the likelihood grows without bound as σ → ∞ (every
  conversation becomes a customer), so the rule is the median one: σ² = median(d_i)/ln 2, the σ at
  which the median customer conversation is worth half the bid.

Units: σ is in the embedding's own distance units. For normalised sentence embeddings ``‖x − c‖²``
lies in [0, 4]; see docs/markets.md for the scale measured on real ads and queries.

The preview (:func:`preview`)
-----------------------------
The candidate campaign is added to the rivals' reports and the queries are cleared by
:class:`adspace.mechanisms.vcg.Market`, the one scoring kernel: which queries it would win, what it
would pay (the Clarke pivot), and the smallest bid that would win each query it loses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.mechanisms._validate import as_float_array, check_positive
from adspace.mechanisms.vcg import Market

__all__ = ["ReachFit", "ReachPreview", "fit_reach", "log_likelihood", "preview", "sigma_mle", "sqdist"]


def sqdist(points: NDArray[np.float64], center: NDArray[np.float64]) -> NDArray[np.float64]:
    """``‖x_i − c‖²`` for each row ``x_i``, in float64."""
    diff = points - center
    return np.einsum("ij,ij->i", diff, diff)


def log_likelihood(lam: float, d_customers: ArrayLike, d_others: ArrayLike) -> float:
    """``ℓ(λ) = −λ Σ d_i + Σ log(1 − exp(−λ e_j))`` for ``λ = 1/σ² > 0`` (``−inf`` where a term is 0)."""
    d = np.asarray(d_customers, dtype=np.float64)
    e = np.asarray(d_others, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return float(-lam * d.sum() + np.log(-np.expm1(-lam * e)).sum())


def _score(lam: float, d_sum: float, e: NDArray[np.float64]) -> float:
    """``ℓ'(λ)``; ``e / expm1(λ e)`` is evaluated stably (it tends to ``1/λ`` as ``λ e → 0``)."""
    t = lam * e
    with np.errstate(over="ignore"):
        terms = np.where(t > 700, 0.0, e / np.expm1(np.minimum(t, 700)))
    return float(terms.sum() - d_sum)


def sigma_mle(d_customers: ArrayLike, d_others: ArrayLike) -> float:
    """The σ maximising the Bernoulli likelihood (see the module's docstring); ``ValueError`` if none exists.

    ``d_customers``: squared distances of customers to the center (at least one > 0);
    ``d_others``: of non-customers (at least one > 0; zeros are left out).
    """
    d = np.asarray(d_customers, dtype=np.float64)
    e = np.asarray(d_others, dtype=np.float64)
    if d.size == 0 or not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("customers: need finite squared distances >= 0")
    e = e[e > 0]
    if not np.all(np.isfinite(e)):
        raise ValueError("non_customers: need finite squared distances")
    d_sum = float(d.sum())
    if d_sum <= 0:
        raise ValueError("customers: all examples sit at the center; give at least two different conversations")
    if e.size == 0:
        raise ValueError("non_customers: all examples sit at the center; give conversations of non-customers")
    # Bracket the root of the decreasing score in log λ, then bisect to float64 precision.
    lo, hi = -60.0, 60.0
    while _score(math.exp(lo), d_sum, e) <= 0 and lo > -700:
        lo -= 60.0
    while _score(math.exp(hi), d_sum, e) >= 0 and hi < 700:
        hi += 60.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _score(math.exp(mid), d_sum, e) > 0:
            lo = mid
        else:
            hi = mid
    lam = math.exp(0.5 * (lo + hi))
    return 1.0 / math.sqrt(lam)


def _quantiles(d: NDArray[np.float64]) -> dict[str, float] | None:
    if d.size == 0:
        return None
    q = np.quantile(d, [0.1, 0.5, 0.9])
    return {"p10": float(q[0]), "median": float(q[1]), "p90": float(q[2])}


@dataclass(frozen=True)
class ReachFit:
    """A proposed center and σ, how they were chosen, and the evidence's distances to the center."""

    center: NDArray[np.float64]
    sigma: float
    method: str  # "likelihood" | "median"
    log_likelihood: float | None
    customers: int
    non_customers: int
    customer_sqdist: dict[str, float]
    non_customer_sqdist: dict[str, float] | None

    def value_share(self, sqd: float) -> float:
        """``exp(−d/σ²)``: the share of the bid a conversation at squared distance ``d`` is worth."""
        return math.exp(-sqd / self.sigma**2)

    def as_dict(self) -> dict:
        nc = self.non_customer_sqdist
        return {
            "sigma": self.sigma,
            "method": self.method,
            "log_likelihood": self.log_likelihood,
            "customers": self.customers,
            "non_customers": self.non_customers,
            "customer_sqdist": self.customer_sqdist,
            "non_customer_sqdist": nc,
            "customer_value_share": {k: self.value_share(v) for k, v in self.customer_sqdist.items()},
            "non_customer_value_share": None if nc is None else {k: self.value_share(v) for k, v in nc.items()},
        }


def fit_reach(customers: ArrayLike, non_customers: ArrayLike | None = None) -> ReachFit:
    """Propose a center and σ from customers' (and optionally non-customers') embeddings.

    >>> import numpy as np
    >>> cust = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> fit = fit_reach(cust)                       # customers only: the median rule
    >>> fit.center.tolist(), fit.method, round(fit.value_share(fit.customer_sqdist["median"]), 6)
    ([0.5, 0.5], 'median', 0.5)
    >>> fit = fit_reach(cust, np.array([[-1.0, -1.0], [3.0, 3.0]]))
    >>> fit.method, round(fit.sigma, 4)
    ('likelihood', 1.5892)
    """
    x = as_float_array(customers, "customers", ndim=2)
    if x.shape[0] < 2:
        raise ValueError(f"customers: give at least 2 example conversations, got {x.shape[0]}")
    c = x.mean(axis=0)
    d = sqdist(x, c)
    if not d.max() > 0:
        raise ValueError("customers: all examples are the same conversation; give at least two different ones")
    e = None
    if non_customers is not None:
        y = as_float_array(non_customers, "non_customers", ndim=2)
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"non_customers: dimension {y.shape[1]} does not match the customers' {x.shape[1]}")
        e = sqdist(y, c) if y.shape[0] else None
    if e is not None:
        sigma = sigma_mle(d, e)
        ll = log_likelihood(1.0 / sigma**2, d, e)
        method = "likelihood"
    else:
        sigma = math.sqrt(float(np.median(d)) / math.log(2.0))
        if not sigma > 0:  # more than half the customers at the center: use the mean instead
            sigma = math.sqrt(float(d.mean()) / math.log(2.0))
        ll, method = None, "median"
    return ReachFit(
        center=c,
        sigma=float(sigma),
        method=method,
        log_likelihood=ll,
        customers=int(x.shape[0]),
        non_customers=0 if e is None else int(e.shape[0]),
        customer_sqdist=_quantiles(d),
        non_customer_sqdist=None if e is None else _quantiles(e),
    )


@dataclass(frozen=True)
class ReachPreview:
    """Per query: whether the candidate wins, its payment, its reported value, and the bid needed to win."""

    won: NDArray[np.bool_]
    filled: NDArray[np.bool_]
    winner: NDArray[np.int64]  # index into the rivals, -1 for none, len(rivals) for the candidate
    payment: NDArray[np.float64]  # the candidate's Clarke pivot where it wins, else 0
    value: NDArray[np.float64]  # the candidate's reported value b·exp(−d/σ²)
    sqdist: NDArray[np.float64]  # ‖x − c‖² to the candidate's center
    rival_value: NDArray[np.float64]  # the best rival's reported value (0 when none)
    bid_to_win: NDArray[np.float64]  # the bid at which the candidate's value reaches max(rival, reserve)


def preview(
    queries: ArrayLike,
    center: ArrayLike,
    sigma: float,
    bid: float,
    rival_centers: ArrayLike,
    rival_sigmas: ArrayLike,
    rival_bids: ArrayLike,
    *,
    reserve: float = 0.0,
) -> ReachPreview:
    """Clear ``queries`` with the candidate ``(center, sigma, bid)`` added after the rivals.

    The candidate comes last, so it loses exact ties (as a newly created campaign does in the
    exchange). ``bid_to_win`` is the threshold bid: at any bid above it the candidate wins the query.
    """
    x = as_float_array(queries, "queries", ndim=2)
    c = as_float_array(center, "center", ndim=1)
    rc = np.asarray(rival_centers, dtype=np.float64).reshape(-1, c.shape[0])
    rs = np.asarray(rival_sigmas, dtype=np.float64).reshape(-1)
    rb = np.asarray(rival_bids, dtype=np.float64).reshape(-1)
    check_positive(np.asarray([sigma], dtype=np.float64), "sigma")
    check_positive(np.asarray([bid], dtype=np.float64), "bid")
    k = rc.shape[0]
    market = Market(np.vstack([rc, c[None, :]]), np.append(rs, sigma), np.append(rb, bid))
    out = market.clear(x, reserve=reserve)
    won = out.winner == k
    d = sqdist(x, c)
    value = bid * np.exp(-d / sigma**2)
    with np.errstate(over="ignore"):
        runner_value = np.where(np.isfinite(out.runner_up_score), np.exp(out.runner_up_score), 0.0)
    rival = np.where(won, runner_value, np.where(out.winner >= 0, out.value, 0.0))
    # Unfilled: every rival is below the reserve (rival = 0 here), so the reserve is what binds.
    threshold = np.maximum(rival, reserve)
    with np.errstate(over="ignore"):
        bid_to_win = threshold * np.exp(d / sigma**2)
    return ReachPreview(
        won=won,
        filled=out.filled,
        winner=out.winner,
        payment=np.where(won, out.payment, 0.0),
        value=value,
        sqdist=d,
        rival_value=rival,
        bid_to_win=bid_to_win,
    )
