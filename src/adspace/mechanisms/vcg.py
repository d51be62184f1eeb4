"""Embedding-space VCG: the power-diagram auction of J. Kim, "Formally Verified VCG Mechanisms for Advertising in Embedding Spaces" (2026), exact in float64.

An advertiser reports a center ``c`` (its customer in embedding space), a reach ``σ > 0`` and a bid
``b > 0`` (the value of an impression exactly at the center). A conversation embeds to ``x``.

* ``score(x) = log b − ‖x − c‖²/σ²`` and ``reported_value(x) = b·exp(−‖x − c‖²/σ²)``; the score is
  the logarithm of the reported value (``score_eq_log_reportedVal``).
* The highest score wins; ties go to the lowest index (the Lean artifact's ``List.argmax`` returns the
  first maximum). The winner pays the Clarke pivot ``max_{j≠w} b_j·exp(−‖x − c_j‖²/σ_j²)`` over the
  other eligible advertisers (0 when unopposed), raised to the reserve; losers pay nothing.

This module is the **one scoring kernel** of adspace: the exchange, the experiments and the scale-out
all call :func:`clear` (or a prepared :class:`Market`). Every winner, runner-up, score and payment it
returns is a direct float64 evaluation of the formulas above.

How clearing stays exact and fast
---------------------------------
Scores are inner products in ``d + 2`` dimensions (:mod:`adspace.mechanisms.geometry`), so a whole
batch of queries is scored by one float32 GEMM. That expansion can cancel catastrophically (tiny σ far
from the origin), so it is used only as a *certified filter*:

1. Queries and centers are first translated by a common origin (the mean center); scores depend only
   on ``x − c``, so this changes nothing mathematically and removes most of the cancellation.
2. One float32 GEMM of query rows against the prepared filter matrix gives, for every pair, a
   certified *upper bound* ``S̃_ij + E_ij`` on the exact score and on its direct float64 evaluation:
   the error bound ``E_ij`` (standard dot-product error analysis, ``γ_n = n·u/(1 − n·u)``, doubled)
   is folded into the GEMM as three extra columns, so it costs no extra pass over ``Q × N``.
3. The two advertisers with the highest upper bounds are scored exactly; the smaller of those two
   exact scores, ``T_i``, is a lower bound on the runner-up's score. Any advertiser whose upper
   bound is below ``T_i`` provably is neither winner nor runner-up. All others are re-scored with
   the direct float64 formula, and winner and runner-up are chosen from those exact scores.

When the bound is useless (extreme coordinates or reaches), every eligible advertiser becomes a
candidate and the result is the plain exact scan: the fallback is automatic. Queries are processed in
chunks so that memory stays bounded (``max_chunk_bytes``) for any ``Q × N``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.mechanisms._validate import as_float_array, as_reserve, check_positive

__all__ = [
    "Clearing",
    "Market",
    "Report",
    "Valuation",
    "clear",
    "reported_value",
    "score",
    "true_value",
    "utility",
]

_U32 = 2.0**-24  # unit roundoff of float32
_U64 = 2.0**-53  # unit roundoff of float64
_F32_SAFE = 1e15  # lifted entries above this may overflow float32 products; handled by the exact path


# --------------------------------------------------------------------------------------------------
# The formulas (one definition per quantity, as in the Lean artifact)
# --------------------------------------------------------------------------------------------------


def _sqdist(x: NDArray[np.float64], c: NDArray[np.float64]) -> NDArray[np.float64]:
    """``‖x − c‖²`` over the last axis, evaluated directly (no expansion)."""
    diff = x - c
    return np.einsum("...k,...k->...", diff, diff)


def _reach_scaled(sqdist: ArrayLike, sigma: ArrayLike) -> NDArray[np.float64]:
    """``‖x − c‖²/σ²``. Where ``σ·σ`` underflows to 0 (σ < ~1.5e-162) it divides by σ twice, so the
    distance at the center stays 0 (score ``log b`` for every σ > 0) and is ``+inf`` elsewhere."""
    sigma = np.asarray(sigma, dtype=np.float64)
    sig2 = sigma * sigma
    with np.errstate(over="ignore"):
        out = np.asarray(sqdist / np.where(sig2 > 0, sig2, 1.0))
        if np.any(sig2 == 0):
            out = np.where(sig2 == 0, np.asarray(sqdist) / sigma / sigma, out)
    return out


def _score_from_sqdist(sqdist: ArrayLike, sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64]:
    return np.log(bid) - _reach_scaled(sqdist, sigma)


def _value_from_sqdist(sqdist: ArrayLike, sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64]:
    return bid * np.exp(-_reach_scaled(sqdist, sigma))


def _check_report(x: Any, center: Any, sigma: Any, bid: Any, *, sigma_name: str = "sigma", bid_name: str = "bid"):
    x = as_float_array(x, "x")
    center = as_float_array(center, "center")
    sigma = as_float_array(sigma, sigma_name)
    bid = as_float_array(bid, bid_name)
    if x.ndim == 0 or center.ndim == 0:
        raise ValueError("x and center: must have a trailing embedding axis of length d")
    if x.shape[-1] != center.shape[-1]:
        raise ValueError(f"center: dimension {center.shape[-1]} does not match x's dimension {x.shape[-1]}")
    check_positive(sigma, sigma_name)
    check_positive(bid, bid_name)
    return x, center, sigma, bid


def score(x: ArrayLike, center: ArrayLike, sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64] | float:
    """``log b − ‖x − c‖²/σ²``, broadcasting over leading axes (``x``, ``center``: ``(..., d)``).

    >>> score([1.0, 0.0], [0.0, 0.0], 1.0, np.e)
    0.0
    """
    x, center, sigma, bid = _check_report(x, center, sigma, bid)
    out = _score_from_sqdist(_sqdist(x, center), sigma, bid)
    return float(out) if np.ndim(out) == 0 else out


def reported_value(x: ArrayLike, center: ArrayLike, sigma: ArrayLike, bid: ArrayLike) -> NDArray[np.float64] | float:
    """Value implied by a report at ``x``: ``b·exp(−‖x − c‖²/σ²)``. ``score = log(reported_value)``.

    >>> reported_value([0.0, 0.0], [0.0, 0.0], 0.3, 2.5)
    2.5
    """
    x, center, sigma, bid = _check_report(x, center, sigma, bid)
    out = _value_from_sqdist(_sqdist(x, center), sigma, bid)
    return float(out) if np.ndim(out) == 0 else out


def true_value(x: ArrayLike, center: ArrayLike, true_sigma: ArrayLike, value: ArrayLike) -> NDArray[np.float64] | float:
    """True value of an impression at ``x`` for a valuation ``(center, σ*, v)``: ``v·exp(−‖x − c‖²/σ*²)``."""
    x, center, true_sigma, value = _check_report(
        x, center, true_sigma, value, sigma_name="true_sigma", bid_name="value"
    )
    out = _value_from_sqdist(_sqdist(x, center), true_sigma, value)
    return float(out) if np.ndim(out) == 0 else out


class Report(NamedTuple):
    """An advertiser's report ``(center, σ, b)``."""

    center: NDArray[np.float64]
    sigma: float
    bid: float


class Valuation(NamedTuple):
    """An advertiser's private valuation ``(center, σ*, v)`` (isotropic Gaussian, Kim 2026, §2)."""

    center: NDArray[np.float64]
    sigma: float
    value: float

    def at(self, x: ArrayLike) -> NDArray[np.float64] | float:
        """True value at ``x``."""
        return true_value(x, self.center, self.sigma, self.value)


def utility(valuation: Valuation, x: ArrayLike, won: ArrayLike, payment: ArrayLike) -> NDArray[np.float64] | float:
    """Quasilinear utility: ``trueVal(x) − payment`` when the advertiser won, ``−payment`` otherwise."""
    won_arr = np.asarray(won, dtype=bool)
    out = np.where(won_arr, valuation.at(x), 0.0) - np.asarray(payment, dtype=np.float64)
    return float(out) if np.ndim(out) == 0 else out


# --------------------------------------------------------------------------------------------------
# Clearing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clearing:
    """Outcome of clearing ``Q`` queries.

    Attributes
    ----------
    winner : (Q,) int64
        Index of the winning advertiser, ``-1`` where the query is not filled (no eligible advertiser,
        or the best reported value is below the reserve).
    runner_up : (Q,) int64
        Index of the best other eligible advertiser (the one setting the Clarke pivot), ``-1`` for none.
    payment : (Q,) float64
        The winner's payment in bid units: the runner-up's reported value raised to the reserve,
        never above the winner's own reported value; ``0`` where not filled.
    score : (Q,) float64
        The winner's score ``log b − ‖x − c‖²/σ²``; ``-inf`` where not filled.
    value : (Q,) float64
        The winner's reported value ``b·exp(−‖x − c‖²/σ²)``; ``0`` where not filled.
    runner_up_score : (Q,) float64
        The runner-up's score; ``-inf`` where there is no runner-up.
    """

    winner: NDArray[np.int64]
    runner_up: NDArray[np.int64]
    payment: NDArray[np.float64]
    score: NDArray[np.float64]
    value: NDArray[np.float64]
    runner_up_score: NDArray[np.float64]

    @property
    def filled(self) -> NDArray[np.bool_]:
        """``(Q,)`` boolean: whether each query was filled."""
        return self.winner >= 0

    def __len__(self) -> int:
        return int(self.winner.shape[0])


#: Fewest advertisers per thread of the filter GEMM (below, a thread hand-off costs more than it saves).
_MIN_BLOCK = 2048
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``workers`` threads for the GEMM blocks (shared by every Market)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="adspace-gemm")
        return pool


def _gamma(n: int, u: float) -> float:
    return n * u / (1.0 - n * u)


class Market:
    """Advertisers' reports prepared for repeated clearing (the lifted arrays are built once).

    ``Market(centers, sigmas, bids).clear(queries)`` is what :func:`clear` does; keep a ``Market``
    when the same advertisers clear many batches (the exchange does).

    Parameters
    ----------
    centers : (N, d) array
    sigmas, bids : (N,) arrays, every entry finite and > 0
    max_chunk_bytes : int
        Upper bound on the scratch memory of one chunk of queries (one ``q × N`` float32 matrix and
        one boolean mask); larger ``Q`` is processed chunk by chunk.
    threads : int
        Threads sharing the filter GEMM of a large market, each over its own block of advertisers
        (each a single-threaded BLAS call; they wait on a queue, never spin, between calls). The
        clearing does not depend on it: every block's bounds are certified by the same analysis,
        whatever order the library sums in, and winners and prices come from the exact re-scoring.
    """

    def __init__(
        self,
        centers: ArrayLike,
        sigmas: ArrayLike,
        bids: ArrayLike,
        *,
        max_chunk_bytes: int = 256 << 20,
        threads: int = 1,
    ):
        c = as_float_array(centers, "centers", ndim=2)
        s = as_float_array(sigmas, "sigmas", ndim=1)
        b = as_float_array(bids, "bids", ndim=1)
        n, d = c.shape
        if d == 0:
            raise ValueError("centers: embedding dimension must be >= 1, got 0")
        if s.shape[0] != n:
            raise ValueError(f"sigmas: length {s.shape[0]} does not match the {n} centers")
        if b.shape[0] != n:
            raise ValueError(f"bids: length {b.shape[0]} does not match the {n} centers")
        check_positive(s, "sigmas")
        check_positive(b, "bids")
        self.centers = np.ascontiguousarray(c)
        self.sigmas = s
        self.bids = b
        self.n, self.d = n, d
        self.max_chunk_bytes = int(max_chunk_bytes)
        if int(threads) < 1:
            raise ValueError(f"threads: must be >= 1, got {threads}")
        self.threads = int(threads)
        self._prepare()

    # -- preparation -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Build the float32 filter matrix ``[2c'/σ², −1/σ², log b − ‖c'‖²/σ², 1/σ², t, 1]`` (c' = c − origin).

        The first ``d + 2`` columns are the inner-product lift of Kim 2026 (translated); the last three
        carry the error bound, so one GEMM with the query row ``[x', ‖x'‖², 1, s, 1, w]`` yields a
        certified *upper bound* ``S̃_ij + E_ij`` on every score (see :meth:`_query_rows`).
        """
        n, d = self.n, self.d
        self._origin = self.centers.mean(axis=0) if n else np.zeros(d)
        self._g = 2.0 * (_gamma(d + 5, _U32) + 3 * _U32 + _gamma(2 * d + 16, _U64))
        self._tiny = 2.0 * (d + 5) * 2.0**-147
        self._lift32 = np.empty((n, d + 5), dtype=np.float32)
        self._always = np.zeros(n, dtype=bool)
        # Built in blocks of rows so that the float64 scratch stays small (a million campaigns at
        # d = 384 would otherwise need several GiB of temporaries on top of the result).
        block = max(1, (32 << 20) // (8 * (d + 5)))
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            shifted = self.centers[lo:hi] - self._origin
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                inv = 1.0 / (self.sigmas[lo:hi] * self.sigmas[lo:hi])
                c2 = np.einsum("ij,ij->i", shifted, shifted)
                logb = np.log(self.bids[lo:hi])
                lift = np.empty((hi - lo, d + 5), dtype=np.float64)
                np.multiply((2.0 * inv)[:, None], shifted, out=lift[:, :d])
                lift[:, d] = -inv
                lift[:, d + 1] = logb - inv * c2
                amax = np.abs(lift[:, : d + 2]).max(axis=1)
                # Advertisers whose lift is not safely representable in float32 are always re-scored exactly.
                always = ~(amax <= _F32_SAFE)
                # Error-bound columns: E_ij = s_i * alpha_j + t_j + w_i (see _query_rows).
                lift[:, d + 2] = inv
                lift[:, d + 3] = self._g * (2.0 * c2 * inv + np.abs(logb)) + self._tiny * (1.0 + amax)
                lift[:, d + 4] = 1.0
            lift[always] = 0.0
            self._always[lo:hi] = always
            self._lift32[lo:hi] = lift
        self._any_always = bool(self._always.any())

    def __len__(self) -> int:
        return self.n

    def scores(self, x: ArrayLike) -> NDArray[np.float64]:
        """Exact scores ``log b − ‖x − c‖²/σ²`` of every advertiser for one query ``x`` of shape ``(d,)``.

        The direct float64 evaluation :meth:`clear` agrees with; use it to explain an outcome
        (every campaign's score and, through ``np.exp``, its reported value).
        """
        x = as_float_array(x, "x", ndim=1)
        if x.shape[0] != self.d:
            raise ValueError(f"x: dimension {x.shape[0]} does not match the centers' dimension {self.d}")
        return _score_from_sqdist(_sqdist(x, self.centers), self.sigmas, self.bids)

    def reported_values(self, x: ArrayLike) -> NDArray[np.float64]:
        """Reported values ``b·exp(−‖x − c‖²/σ²)`` of every advertiser for one query ``x`` (``(d,)``)."""
        x = as_float_array(x, "x", ndim=1)
        if x.shape[0] != self.d:
            raise ValueError(f"x: dimension {x.shape[0]} does not match the centers' dimension {self.d}")
        return _value_from_sqdist(_sqdist(x, self.centers), self.sigmas, self.bids)

    # -- clearing ----------------------------------------------------------------------------------
    def check_queries(self, queries: ArrayLike) -> NDArray[np.float64]:
        """Validate ``queries`` (``(Q, d)`` or ``(d,)``, finite, this market's ``d``) as a C-contiguous ``(Q, d)`` array."""
        x = as_float_array(queries, "queries", ndim=(1, 2))
        if x.shape[-1] != self.d:
            raise ValueError(f"queries: dimension {x.shape[-1]} does not match the centers' dimension {self.d}")
        return np.ascontiguousarray(x.reshape(-1, self.d))

    def clear(self, queries: ArrayLike, *, reserve: float = 0.0, eligible: ArrayLike | None = None) -> Clearing:
        """Clear ``queries`` (``(Q, d)`` or ``(d,)``) against this market. See :func:`clear`."""
        x2 = self.check_queries(queries)
        nq = x2.shape[0]
        reserve = as_reserve(reserve)
        elig = self._check_eligible(eligible, nq)

        winner = np.full(nq, -1, dtype=np.int64)
        runner = np.full(nq, -1, dtype=np.int64)
        wscore = np.full(nq, -np.inf)
        rscore = np.full(nq, -np.inf)
        wvalue = np.zeros(nq)
        rvalue = np.zeros(nq)
        if self.n and nq:
            per_row = max(1, self.n) * 5
            step = max(1, min(nq, self.max_chunk_bytes // per_row))
            for lo in range(0, nq, step):
                hi = min(nq, lo + step)
                e = None if elig is None else (elig if elig.ndim == 1 else elig[lo:hi])
                self._clear_chunk(
                    x2[lo:hi],
                    e,
                    winner[lo:hi],
                    runner[lo:hi],
                    wscore[lo:hi],
                    rscore[lo:hi],
                    wvalue[lo:hi],
                    rvalue[lo:hi],
                )

        filled = (winner >= 0) & (wvalue >= reserve)
        payment = np.where(filled, np.minimum(np.maximum(rvalue, reserve), wvalue), 0.0)
        return Clearing(
            winner=np.where(filled, winner, -1),
            runner_up=np.where(filled, runner, -1),
            payment=payment,
            score=np.where(filled, wscore, -np.inf),
            value=np.where(filled, wvalue, 0.0),
            runner_up_score=np.where(filled, rscore, -np.inf),
        )

    def _check_eligible(self, eligible: ArrayLike | None, nq: int) -> NDArray[np.bool_] | None:
        if eligible is None:
            return None
        e = np.asarray(eligible)
        if e.dtype != np.bool_:
            raise ValueError(f"eligible: must be a boolean mask, got dtype {e.dtype}")
        if e.shape == (self.n,):
            return e
        if e.shape == (nq, self.n):
            return e
        raise ValueError(f"eligible: shape must be ({self.n},) or ({nq}, {self.n}), got {e.shape}")

    def _query_rows(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """Query rows ``[x', ‖x'‖², 1, s, 1, w]`` whose product with the filter matrix bounds scores above.

        Error analysis (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1): a dot product
        of ``n`` terms computed in any order errs by at most ``γ_n Σ|q_k a_k|`` with
        ``γ_n = n·u/(1 − n·u)``; rounding the float64 lifts to float32 adds ``≈ 3u`` per term. With the
        translated inputs ``x', c'``, Cauchy–Schwarz gives
        ``Σ|q_k a_k| <= M_ij = (2‖x'‖² + 2‖c'‖²)/σ_j² + |log b_j|``, and the direct float64 score
        (the reference :func:`clear` must match) differs from the exact one by at most
        ``γ_{2d+16}(64-bit) · M_ij``. The bound ``E_ij = g · M_ij`` with
        ``g = 2(γ_{d+5} + 3u + γ_{2d+16})`` is twice the sum, which also absorbs the rounding of the
        GEMM that adds ``E`` itself and of forming ``E`` in float32; ``w_i`` covers float32 underflow.
        Rows that are not safely representable in float32 are flagged for exact scoring.
        """
        q, d = x.shape[0], self.d
        shifted = x - self._origin
        xn2 = np.einsum("ij,ij->i", shifted, shifted)
        rows = np.empty((q, d + 5), dtype=np.float64)
        rows[:, :d] = shifted
        rows[:, d] = xn2
        rows[:, d + 1] = 1.0
        qmax = np.abs(rows[:, : d + 2]).max(axis=1)
        exact = ~(qmax <= _F32_SAFE)  # also catches inf
        rows[:, d + 2] = self._g * 2.0 * xn2
        rows[:, d + 3] = 1.0
        rows[:, d + 4] = self._tiny * (1.0 + qmax)
        rows[exact] = 0.0
        return rows.astype(np.float32), exact

    def _upper_bounds(self, rows32: NDArray[np.float32], elig: NDArray[np.bool_] | None) -> NDArray[np.float32]:
        """``rows32 @ lift32.T``: upper bounds on every score, ``+inf`` for advertisers scored exactly
        always, ``-inf`` for ineligible ones. With ``threads > 1`` each thread fills its own block of
        columns (one BLAS call each); each entry is bounded as in one call (:meth:`_query_rows`)."""
        q, n = rows32.shape[0], self.n
        upper = np.empty((q, n), dtype=np.float32)

        def block(lo: int, hi: int) -> None:
            np.matmul(rows32, self._lift32[lo:hi].T, out=upper[:, lo:hi])
            if self._any_always:
                upper[:, lo:hi][:, self._always[lo:hi]] = np.inf
            if elig is not None:
                e = elig[lo:hi] if elig.ndim == 1 else elig[:, lo:hi]
                np.copyto(upper[:, lo:hi], -np.inf, where=~e)

        parts = min(self.threads, max(1, n // _MIN_BLOCK))
        if parts == 1:
            block(0, n)
            return upper
        step = -(-n // parts)
        pool = _pool(parts - 1)
        futures = [pool.submit(block, lo, min(n, lo + step)) for lo in range(step, n, step)]
        try:
            block(0, step)
        finally:
            for f in futures:
                f.result()
        return upper

    def _clear_chunk(self, x, elig, winner, runner, wscore, rscore, wvalue, rvalue) -> None:
        q, n, d = x.shape[0], self.n, self.d
        rows32, row_exact = self._query_rows(x)
        upper = self._upper_bounds(rows32, elig)  # (q, n) float32: certified upper bounds on the scores
        if row_exact.any():  # every eligible advertiser is a candidate of these queries
            keep = True if elig is None else (elig if elig.ndim == 1 else elig[row_exact])
            upper[row_exact] = np.where(keep, np.inf, -np.inf)
        r = np.arange(q)
        # Two distinct advertisers per row with the highest upper bounds; the smaller of their exact
        # scores is a certified lower bound T_i on the true runner-up score.
        top1 = upper.argmax(axis=1)
        keep = upper[r, top1].copy()
        upper[r, top1] = -np.inf
        top2 = upper.argmax(axis=1) if n >= 2 else top1
        upper[r, top1] = keep
        pair_c = np.concatenate([top1, top2])
        pair_s = _score_from_sqdist(
            _sqdist(x[np.concatenate([r, r])], self.centers[pair_c]), self.sigmas[pair_c], self.bids[pair_c]
        )
        valid2 = (n >= 2) & (upper[r, top2] > -np.inf)
        thresh = np.where(valid2, np.minimum(pair_s[:q], pair_s[q:]), -np.inf)
        # float32 rounding of the threshold must not exclude anyone: round it down, but keep it finite
        # so that ineligible advertisers (upper bound -inf) never pass.
        with np.errstate(over="ignore"):
            thresh32 = thresh.astype(np.float32)
            thresh32 = np.where(thresh32 > thresh, np.nextafter(thresh32, np.float32(-np.inf)), thresh32)
        thresh32 = np.maximum(thresh32, np.float32(-np.finfo(np.float32).max))
        # Flat indices of a 1-D mask: much cheaper than np.nonzero of the 2-D one (few pass).
        flat = np.flatnonzero(upper >= thresh32[:, None])
        if flat.size == 0:
            return
        cand_r, cand_c = np.divmod(flat, n)
        # Exact re-scoring of the candidates, in blocks to bound memory.
        sq = np.empty(cand_r.size)
        block = max(1, (64 << 20) // (8 * d))
        for lo in range(0, cand_r.size, block):
            hi = lo + block
            sq[lo:hi] = _sqdist(x[cand_r[lo:hi]], self.centers[cand_c[lo:hi]])
        sc = _score_from_sqdist(sq, self.sigmas[cand_c], self.bids[cand_c])
        # Per row: highest score first, ties to the lowest index.
        order = np.lexsort((cand_c, -sc, cand_r))
        r_sorted, c_sorted, s_sorted, q_sorted = cand_r[order], cand_c[order], sc[order], sq[order]
        first = np.flatnonzero(np.r_[True, r_sorted[1:] != r_sorted[:-1]])
        wr = r_sorted[first]
        winner[wr] = c_sorted[first]
        wscore[wr] = s_sorted[first]
        wvalue[wr] = _value_from_sqdist(q_sorted[first], self.sigmas[c_sorted[first]], self.bids[c_sorted[first]])
        second = first + 1
        has2 = second < r_sorted.size
        has2[has2] &= r_sorted[second[has2]] == wr[has2]
        sec = second[has2]
        rr = r_sorted[sec]
        runner[rr] = c_sorted[sec]
        rscore[rr] = s_sorted[sec]
        rvalue[rr] = _value_from_sqdist(q_sorted[sec], self.sigmas[c_sorted[sec]], self.bids[c_sorted[sec]])


def clear(
    queries: ArrayLike,
    centers: ArrayLike,
    sigmas: ArrayLike,
    bids: ArrayLike,
    *,
    reserve: float = 0.0,
    eligible: ArrayLike | None = None,
) -> Clearing:
    """Clear a batch of queries by the embedding-space VCG auction.

    Parameters
    ----------
    queries : (Q, d) or (d,) array
        Query embeddings. A single query gives ``Q = 1``.
    centers : (N, d) array
        Advertisers' declared centers.
    sigmas, bids : (N,) arrays
        Declared reaches and bids; finite and > 0.
    reserve : float
        A value in bid units acting as a phantom bidder: no fill when the best reported value is
        below it, and the winner pays at least it.
    eligible : (N,) or (Q, N) boolean array, optional
        Which advertisers may compete (for every query, or per query).

    Returns
    -------
    Clearing
        ``winner``, ``runner_up``, ``payment`` (Clarke pivot), ``score``, and more; see :class:`Clearing`.

    Raises
    ------
    ValueError
        Naming the argument: σ <= 0, bid <= 0, non-finite values, a dimension or length mismatch,
        a non-boolean or mis-shaped ``eligible``, a negative ``reserve``.

    Examples
    --------
    >>> out = clear([[0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]], [1.0, 1.0], [2.0, 3.0])
    >>> int(out.winner[0]), int(out.runner_up[0]), round(float(out.payment[0]), 6)
    (0, 1, 1.103638)
    """
    return Market(centers, sigmas, bids).clear(queries, reserve=reserve, eligible=eligible)
