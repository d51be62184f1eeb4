"""MOSAIC: truthful aggregation of LLM replies (Soumalias, Zamanlooy, Weissteiner, Seuken; arXiv 2405.05905).

A user query ``x`` has ``M`` candidate replies ``y_1..y_M`` drawn i.i.d. from a generating LLM
``π_gen`` (``π_ref`` in the *baseline*, the context-aware ``π_con(·|x; c)`` in the *context-aware*
version). ``n`` advertisers report rewards ``r_i(x, y_j)``. With ``τ > 0``:

* **Allocation** (Algorithm 1). Return ``y_j`` with probability
  ``softmax_j( Σ_i r_i(x, y_j)/τ + log π_ref(y_j|x) − log π_gen(y_j|x) )`` (:func:`allocate`).
  As ``M → ∞`` the returned reply is distributed as ``π_r ∝ π_ref·exp(Σ_i r_i/τ)`` (eq. 2,
  Theorem EC.1), the maximizer of ``E[Σ r_i] − τ·KL(π‖π_ref)`` (Corollary 1).
* **Interim view of agent i** (eq. EC.2). ``π_int = softmax(r_i/τ + β_{−i})`` with
  ``β_{−i,j} = Σ_{k≠i} r_k(x, y_j)/τ + log π_ref(y_j|x) − log π_gen(y_j|x)``; ``β_{−i}`` does not
  depend on agent i's report.
* **Payment** (eq. EC.4, Rochet). ``p_i = π_int·r_i − τ·log Σ_j exp(r_ij/τ + β_{−i,j}) − C_i`` with the
  agent-specific offset of §5.3, ``C_i = −τ·log Σ_j exp(β_{−i,j})`` (``offset=True``), or ``C_i = 0``
  (``offset=False``). Either way truthful reporting maximizes agent i's expected utility for every
  set of candidates and every report of the others (Theorem 1).
* **Utility** (eq. 4 / EC.3). Under truthful reports ``U_i = τ·log Σ_j exp(r_ij/τ + β_{−i,j}) + C_i``;
  with the offset this is ``τ·log Σ_j exp(r_ij/τ)·softmax(β_{−i})_j`` (Lemma 1, eq. 5).

Everything is float64 and evaluated in the log domain (log-sum-exp with the maximum taken out), so
rewards and log-probabilities of magnitude 1e3 (long replies) neither overflow nor lose the
differences that matter. Sums over the *other* agents are formed directly (prefix + suffix sums),
never as ``total − r_i``, so an agent's own large reward does not cancel away the others'.

>>> import numpy as np
>>> r = np.array([[1.0, 0.0], [0.0, 0.0]])          # two agents, two candidates
>>> lp = np.log([0.5, 0.5])
>>> allocate(r, lp, lp, tau=1.0).round(4)            # candidates from π_ref: no importance correction
array([0.7311, 0.2689])
>>> payments(r, lp, lp, tau=1.0).round(4)            # agent 2 is indifferent: Lemma EC.1, pays 0
array([0.1109, 0.    ])
>>> utilities(r, lp, lp, tau=1.0).round(4)           # = τ·log(½e + ½), Lemma 1
array([0.6201, 0.    ])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.mechanisms._validate import as_float_array

__all__ = [
    "MosaicOutcome",
    "allocate",
    "allocation_logits",
    "interim_allocation",
    "others_logits",
    "payments",
    "run",
    "utilities",
    "utility_of_report",
]


# --------------------------------------------------------------------------------------------------
# Validation (once, at the boundary)
# --------------------------------------------------------------------------------------------------


def _check_tau(tau: Any) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"tau: must be a positive finite number, got {tau!r}") from None
    if not np.isfinite(t) or t <= 0.0:
        raise ValueError(f"tau: must be a positive finite number, got {tau!r}")
    return t


def _check_inputs(
    rewards: ArrayLike, log_ref: ArrayLike, log_gen: ArrayLike, tau: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float]:
    r = as_float_array(rewards, "rewards", ndim=2)
    ref = as_float_array(log_ref, "log_ref", ndim=1)
    gen = as_float_array(log_gen, "log_gen", ndim=1)
    t = _check_tau(tau)
    n, m = r.shape
    if n < 1:
        raise ValueError(f"rewards: must have at least one agent (row), got shape {r.shape}")
    if m < 1:
        raise ValueError(f"rewards: must have at least one candidate (column), got shape {r.shape}")
    if ref.shape != (m,):
        raise ValueError(f"log_ref: must have shape ({m},) to match rewards' {m} candidates, got {ref.shape}")
    if gen.shape != (m,):
        raise ValueError(f"log_gen: must have shape ({m},) to match rewards' {m} candidates, got {gen.shape}")
    if (ref > 0).any():
        j = int(np.argmax(ref > 0))
        raise ValueError(f"log_ref: log-probabilities must be <= 0, got {ref[j]!r} at index {j}")
    if (gen > 0).any():
        j = int(np.argmax(gen > 0))
        raise ValueError(f"log_gen: log-probabilities must be <= 0, got {gen[j]!r} at index {j}")
    return r, ref, gen, t


# --------------------------------------------------------------------------------------------------
# Log-domain kernels (no validation; float64 arrays of the right shapes)
# --------------------------------------------------------------------------------------------------


def _logsumexp(a: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def _softmax(a: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
    z = a - np.max(a, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _others_sum(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(n, M)``: row i is ``Σ_{k≠i} r_k``, formed from prefix and suffix sums (no ``total − r_i``)."""
    n, m = r.shape
    prefix = np.zeros((n, m))
    suffix = np.zeros((n, m))
    if n > 1:
        prefix[1:] = np.cumsum(r[:-1], axis=0)
        suffix[:-1] = np.cumsum(r[::-1], axis=0)[::-1][1:]
    return prefix + suffix


def _beta(r, ref, gen, t):
    """``β_{−i}`` for every agent, ``(n, M)`` (eq. EC.2)."""
    return _others_sum(r) / t + (ref - gen)


def _logits(r, ref, gen, t):
    return r.sum(axis=0) / t + (ref - gen)


def _payments(r, ref, gen, t, offset: bool):
    logits = _logits(r, ref, gen, t)
    pi = _softmax(logits)
    lse = _logsumexp(logits)  # the same τ·log Σ exp(r_i/τ + β_{−i}) for every i
    p = r @ pi - t * lse
    if offset:
        p = p + t * _logsumexp(_beta(r, ref, gen, t), axis=1)
    return p


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def allocation_logits(rewards: ArrayLike, log_ref: ArrayLike, log_gen: ArrayLike, tau: float) -> NDArray[np.float64]:
    """``(M,)`` logits of Algorithm 1: ``Σ_i r_i(x, y_j)/τ + log π_ref(y_j|x) − log π_gen(y_j|x)``.

    Subtracting any constant leaves the allocation unchanged; in particular the per-query normalizers
    ``Z_i(x)`` of the rewards (EC.5) and the sampler's normalizer cancel.
    """
    r, ref, gen, t = _check_inputs(rewards, log_ref, log_gen, tau)
    return _logits(r, ref, gen, t)


def allocate(rewards: ArrayLike, log_ref: ArrayLike, log_gen: ArrayLike, tau: float) -> NDArray[np.float64]:
    """Probabilities ``(M,)`` of returning each candidate (Algorithm 1).

    Parameters
    ----------
    rewards : (n, M) array
        ``rewards[i, j] = r_i(x, y_j)``, the reported reward of agent ``i`` for candidate ``j``.
    log_ref : (M,) array
        ``log π_ref(y_j|x)``: the reference LLM's log-probability of each candidate (<= 0).
    log_gen : (M,) array
        ``log π_gen(y_j|x)``: log-probability of each candidate under the distribution it was
        *actually sampled from* (after temperature / top-p); ``log_gen = log_ref`` when candidates are
        drawn from ``π_ref`` itself.
    tau : float
        The KL weight ``τ > 0`` of eq. (1).

    >>> allocate([[0.0, 0.0]], [-1.0, -2.0], [-1.0, -2.0], 1.0)
    array([0.5, 0.5])
    """
    r, ref, gen, t = _check_inputs(rewards, log_ref, log_gen, tau)
    return _softmax(_logits(r, ref, gen, t))


def others_logits(rewards: ArrayLike, log_ref: ArrayLike, log_gen: ArrayLike, tau: float) -> NDArray[np.float64]:
    """``(n, M)``: row ``i`` is ``β_{−i}`` of eq. EC.2, the part of the logits agent ``i`` cannot influence."""
    r, ref, gen, t = _check_inputs(rewards, log_ref, log_gen, tau)
    return _beta(r, ref, gen, t)


def interim_allocation(rewards: ArrayLike, log_ref: ArrayLike, log_gen: ArrayLike, tau: float) -> NDArray[np.float64]:
    """``(n, M)``: row ``i`` is ``softmax(β_{−i})``, the allocation had agent ``i`` reported zero (``π_int`` of eq. 5)."""
    r, ref, gen, t = _check_inputs(rewards, log_ref, log_gen, tau)
    return _softmax(_beta(r, ref, gen, t), axis=1)


def payments(
    rewards: ArrayLike, log_ref: ArrayLike, log_gen: ArrayLike, tau: float, offset: bool = True
) -> NDArray[np.float64]:
    """Rochet payments ``(n,)`` of eq. EC.4.

    ``p_i = π·r_i − τ·log Σ_j exp(r_ij/τ + β_{−i,j}) − C_i`` where ``π`` is :func:`allocate`'s output and
    ``C_i = −τ·log Σ_j exp(β_{−i,j})`` with ``offset=True`` (§5.3) or ``0`` with ``offset=False``.
    Payments are computed from the *reports*; they are charged whichever candidate is returned.

    >>> payments([[2.0]], [-3.0], [-3.0], 1.0)   # one candidate: nothing to influence, nothing to pay
    array([0.])
    """
    r, ref, gen, t = _check_inputs(rewards, log_ref, log_gen, tau)
    return _payments(r, ref, gen, t, bool(offset))


def utilities(
    rewards: ArrayLike,
    log_ref: ArrayLike,
    log_gen: ArrayLike,
    tau: float,
    offset: bool = True,
    *,
    true_rewards: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Ex-interim expected utilities ``(n,)``: ``E_{y∼π}[r_i^true(y)] − p_i``.

    The expectation is over the draw of the returned reply from the fixed candidates (the randomness
    Theorem 1 speaks of); allocation and payments are computed from the *reports* ``rewards``. With
    ``true_rewards=None`` the reports are taken as true, giving eq. (4): ``τ·LSE(Σ_k r_k/τ + log π_ref −
    log π_gen) + C_i``, which with the offset equals Lemma 1's ``τ·log Σ_j exp(r_ij/τ)·softmax(β_{−i})_j``.

    Parameters
    ----------
    true_rewards : (n, M) array, optional
        The agents' true rewards, to value a profile of (mis)reports.
    """
    r, ref, gen, t = _check_inputs(rewards, log_ref, log_gen, tau)
    if true_rewards is None:
        v = r
    else:
        v = as_float_array(true_rewards, "true_rewards", ndim=2)
        if v.shape != r.shape:
            raise ValueError(f"true_rewards: must have the shape of rewards {r.shape}, got {v.shape}")
    pi = _softmax(_logits(r, ref, gen, t))
    return v @ pi - _payments(r, ref, gen, t, bool(offset))


def utility_of_report(
    i: int,
    report: ArrayLike,
    true_rewards: ArrayLike,
    log_ref: ArrayLike,
    log_gen: ArrayLike,
    tau: float,
    offset: bool = True,
) -> float:
    """Agent ``i``'s ex-interim expected utility when it reports ``report`` (M,) and the others truthfully.

    The quantity Theorem 1 bounds: ``utility_of_report(i, r_i', r, ...) <= utility_of_report(i, r_i, r, ...)``.
    """
    v = as_float_array(true_rewards, "true_rewards", ndim=2)
    rep = as_float_array(report, "report", ndim=1)
    if not 0 <= int(i) < v.shape[0]:
        raise ValueError(f"i: must index an agent in 0..{v.shape[0] - 1}, got {i!r}")
    if rep.shape != (v.shape[1],):
        raise ValueError(f"report: must have shape ({v.shape[1]},), got {rep.shape}")
    reports = v.copy()
    reports[int(i)] = rep
    return float(utilities(reports, log_ref, log_gen, tau, offset, true_rewards=v)[int(i)])


@dataclass(frozen=True)
class MosaicOutcome:
    """One run of MOSAIC on fixed candidates.

    Attributes
    ----------
    probs : (M,) allocation of Algorithm 1.
    index : the returned candidate, drawn from ``probs``.
    payments : (n,) payments (with or without the §5.3 offset, as asked).
    expected_utilities : (n,) ex-interim expected utilities (reports taken as true).
    realized_utilities : (n,) ``r_i(x, y_index) − p_i``.
    """

    probs: NDArray[np.float64]
    index: int
    payments: NDArray[np.float64]
    expected_utilities: NDArray[np.float64]
    realized_utilities: NDArray[np.float64]


def run(
    rewards: ArrayLike,
    log_ref: ArrayLike,
    log_gen: ArrayLike,
    tau: float,
    rng: np.random.Generator | int | None = None,
    offset: bool = True,
) -> MosaicOutcome:
    """Allocate, draw the returned candidate with ``rng`` and charge payments.

    >>> out = run([[0.0, 5.0]], [-1.0, -1.0], [-1.0, -1.0], 1.0, rng=0)
    >>> out.index, round(float(out.probs[1]), 4)
    (1, 0.9933)
    """
    r, ref, gen, t = _check_inputs(rewards, log_ref, log_gen, tau)
    gen_rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    pi = _softmax(_logits(r, ref, gen, t))
    idx = int(gen_rng.choice(pi.size, p=pi))
    pay = _payments(r, ref, gen, t, bool(offset))
    return MosaicOutcome(
        probs=pi,
        index=idx,
        payments=pay,
        expected_utilities=r @ pi - pay,
        realized_utilities=r[:, idx] - pay,
    )
