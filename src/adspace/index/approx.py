"""Approximate clearing through a FAISS index over the inner-product lift, certified or exact.

The lift (:mod:`adspace.mechanisms.geometry`) turns clearing into a maximum-inner-product search:
``score(x, c, σ, b) = ⟨[x, ‖x‖², 1], [2c/σ², −1/σ², log b − ‖c‖²/σ²]⟩``. :class:`ApproxMarket`
indexes the advertisers' lifted vectors (translated by the mean center first, as the kernel does, so
that float32 does not cancel: scores depend only on ``x − c``) in FAISS, HNSW or IVF with the
inner-product metric, and clears a query in three steps:

1. **Candidates.** FAISS returns the ``k`` advertisers with the highest approximate inner product.
2. **Exact re-scoring.** The candidates are scored with the kernel's formulas
   (:func:`adspace.mechanisms.vcg.score`, :func:`~adspace.mechanisms.vcg.reported_value`, float64,
   direct) and winner, runner-up and payment are chosen among them exactly as
   :func:`~adspace.mechanisms.vcg.clear` does (:func:`adspace.index.shards.merge`: ties to the lowest
   index, reserve as a phantom bidder, Clarke pivot capped at the winner's value). Without a
   certificate this is the *approximate* answer: if the true winner or runner-up is not among the
   candidates, the winner or the price is wrong.
3. **Certificate and fallback** (``certify=True``, the default). The advertisers are also grouped into
   cells (k-means on the centers). For a cell with mean center ``μ``, radius ``R`` (the largest
   ``‖c − μ‖``) every member's score at ``x`` is at most
   ``max_j (log b_j − δ²/σ_j²)`` with ``δ = max(0, ‖x − μ‖ − R)`` (triangle inequality), and that
   maximum is taken over the cell's few Pareto-optimal ``(1/σ², log b)`` pairs, so it is exact for the
   ball. ``T``, the second-best exact score among the candidates, is at most the true runner-up score.
   Every cell whose bound (plus a rounding margin far above the float64 error) is below ``T`` holds
   neither the winner nor the runner-up; the members of the other cells are re-scored exactly too.
   When they are few (at most ``max_scan``), the answer is then *provably* the exact one; otherwise
   the query falls back to the exact kernel (:meth:`adspace.mechanisms.vcg.Market.clear`). Either
   way a certified clearing equals exact clearing bit for bit; the certificate only decides how much
   exact work is needed.

``ApproxMarket.clear(..., certify=False)`` gives the uncertified approximate answer, which
``benchmarks/scale.py`` compares with exact clearing; docs/scale.md says why the exchange must not sell
on it (a wrong winner or price breaks the DSIC argument) and how the certificate repairs that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.index.shards import ShardTop2, merge
from adspace.mechanisms._validate import as_float_array, as_reserve
from adspace.mechanisms.geometry import lift_advertisers_inner_product, lift_query_inner_product
from adspace.mechanisms.vcg import Clearing, Market, reported_value, score

__all__ = ["ApproxMarket", "ApproxStats"]

_MARGIN = 1e-9  # relative rounding margin of the cell bound (the float64 error is ~1e-13 relative)


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a pinned dependency
        raise RuntimeError("adspace.index.approx needs faiss-cpu (pip install faiss-cpu)") from exc
    return faiss


@dataclass
class ApproxStats:
    """What the last :meth:`ApproxMarket.clear` did, per query.

    ``certified``: the answer is proved exact by the cell bound (re-scoring at most ``max_scan`` rows);
    ``fallback``: the exact kernel cleared it; ``scanned``: rows re-scored exactly beyond the ``k``
    candidates (certified queries only).
    """

    certified: NDArray[np.bool_]
    fallback: NDArray[np.bool_]
    scanned: NDArray[np.int64]


class ApproxMarket:
    """FAISS (HNSW or IVF) over the translated inner-product lift, exact re-scoring, certificate, fallback.

    Parameters
    ----------
    centers, sigmas, bids : as for :class:`adspace.mechanisms.vcg.Market`
    kind : ``"hnsw"`` or ``"ivf"``
    k : candidates taken from FAISS per query
    hnsw_m, ef_search, ef_construction : HNSW graph degree and search / build breadth
    nlist, nprobe : IVF lists and lists probed (``nlist`` defaults to ``√N``)
    cells : k-means cells of the certificate (default ``√N``); ``max_scan`` the most rows a certified
        query may re-score (default ``max(2000, N/50)``) before it falls back to the exact kernel
    market : an existing exact :class:`Market` of the same advertisers (shared, not rebuilt)
    """

    def __init__(
        self,
        centers: ArrayLike,
        sigmas: ArrayLike,
        bids: ArrayLike,
        *,
        kind: str = "ivf",
        k: int = 32,
        hnsw_m: int = 32,
        ef_search: int = 128,
        ef_construction: int = 80,
        nlist: int | None = None,
        nprobe: int = 16,
        cells: int | None = None,
        max_scan: int | None = None,
        market: Market | None = None,
        seed: int = 0,
    ):
        if kind not in ("hnsw", "ivf"):
            raise ValueError(f"kind: must be 'hnsw' or 'ivf', got {kind!r}")
        if k < 2:
            raise ValueError(f"k: must be >= 2, got {k}")
        self.market = market if market is not None else Market(centers, sigmas, bids)
        m = self.market
        self.n, self.d = m.n, m.d
        if self.n < 2:
            raise ValueError("centers: an approximate index needs at least 2 advertisers")
        self.kind, self.k = kind, min(int(k), self.n)
        self.max_scan = int(max_scan) if max_scan is not None else max(2000, self.n // 50)
        self._origin = m.centers.mean(axis=0)
        faiss = _faiss()
        dl = self.d + 2
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dl, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(ef_construction)
            index.hnsw.efSearch = int(ef_search)
        else:
            nl = int(nlist) if nlist is not None else max(1, min(self.n // 39, int(np.sqrt(self.n))))
            index = faiss.index_factory(dl, f"IVF{nl},Flat", faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = rng.choice(self.n, size=min(self.n, 64 * nl), replace=False)
            index.train(self._lift_rows(np.sort(sample)))
            index.nprobe = min(int(nprobe), nl)
        step = 65536
        for lo in range(0, self.n, step):
            index.add(self._lift_rows(np.arange(lo, min(self.n, lo + step))))
        self.index = index
        self._build_cells(int(cells) if cells is not None else max(1, int(np.sqrt(self.n))), seed)
        self.stats = ApproxStats(np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64))

    # -- building ----------------------------------------------------------------------------------
    def _lift_rows(self, rows: NDArray[np.int64]) -> NDArray[np.float32]:
        m = self.market
        a = lift_advertisers_inner_product(m.centers[rows] - self._origin, m.sigmas[rows], m.bids[rows])
        return np.ascontiguousarray(a, dtype=np.float32)

    def _build_cells(self, ncells: int, seed: int) -> None:
        """k-means cells of the centers with mean, radius and Pareto front of ``(1/σ², log b)``."""
        faiss = _faiss()
        m = self.market
        ncells = max(1, min(ncells, self.n))
        if ncells > 1:
            rng = np.random.default_rng(seed + 1)
            sample = m.centers[np.sort(rng.choice(self.n, size=min(self.n, 40 * ncells), replace=False))]
            km = faiss.Kmeans(self.d, ncells, niter=10, seed=seed, verbose=False)
            km.train(np.ascontiguousarray(sample - self._origin, dtype=np.float32))
            label = np.empty(self.n, dtype=np.int64)
            step = 65536
            for lo in range(0, self.n, step):
                hi = min(self.n, lo + step)
                _, lab = km.index.search(np.ascontiguousarray(m.centers[lo:hi] - self._origin, dtype=np.float32), 1)
                label[lo:hi] = lab[:, 0]
        else:
            label = np.zeros(self.n, dtype=np.int64)
        order = np.argsort(label, kind="stable")
        counts = np.bincount(label, minlength=ncells)
        keep = counts > 0
        self._members = order  # rows grouped by cell, increasing index within a cell
        self._offsets = np.r_[0, np.cumsum(counts[keep])]
        nc = int(keep.sum())
        mu = np.zeros((nc, self.d))
        radius = np.zeros(nc)
        inv = 1.0 / (m.sigmas * m.sigmas)
        logb = np.log(m.bids)
        fronts: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
        for i in range(nc):
            rows = order[self._offsets[i] : self._offsets[i + 1]]
            c = m.centers[rows]
            mu[i] = c.mean(axis=0)
            diff = c - mu[i]
            radius[i] = np.sqrt(np.einsum("ij,ij->i", diff, diff).max())
            # Pareto front: smallest 1/σ² first; keep a point only if its log b beats all before it.
            s, lb = inv[rows], logb[rows]
            o = np.lexsort((-lb, s))
            s, lb = s[o], lb[o]
            best = np.maximum.accumulate(lb)
            front = np.r_[True, lb[1:] > best[:-1]]
            fronts.append((s[front], lb[front]))
        width = max(len(f[0]) for f in fronts)
        self._front_s = np.zeros((nc, width))
        self._front_lb = np.full((nc, width), -np.inf)
        for i, (s, lb) in enumerate(fronts):
            self._front_s[i, : len(s)] = s
            self._front_lb[i, : len(lb)] = lb
        self._mu = mu
        self._radius = radius * (1.0 + _MARGIN)
        self._cell_scale = np.abs(self._front_lb).max(axis=1, initial=0.0, where=np.isfinite(self._front_lb))
        self._cell_smax = self._front_s.max(axis=1)

    # -- clearing ----------------------------------------------------------------------------------
    def candidates(self, queries: ArrayLike, k: int | None = None) -> NDArray[np.int64]:
        """FAISS's top-``k`` advertisers by approximate lifted inner product, ``(Q, k)``, ``-1`` padded."""
        x = as_float_array(queries, "queries", ndim=(1, 2)).reshape(-1, self.d)
        q = np.ascontiguousarray(lift_query_inner_product(x - self._origin), dtype=np.float32)
        _, ids = self.index.search(q, int(k or self.k))
        return ids.astype(np.int64)

    def _rescore(self, x: NDArray[np.float64], ids: NDArray[np.int64], elig) -> ShardTop2:
        """Exact scores and values of candidate rows ``ids`` (Q, m), ``-1`` and ineligible left out."""
        m = self.market
        ok = ids >= 0
        if elig is not None:
            safe = np.where(ok, ids, 0)
            ok &= elig[safe] if elig.ndim == 1 else np.take_along_axis(elig, safe, axis=1)
        safe = np.where(ok, ids, 0)
        s = score(x[:, None, :], m.centers[safe], m.sigmas[safe], m.bids[safe])
        v = reported_value(x[:, None, :], m.centers[safe], m.sigmas[safe], m.bids[safe])
        return ShardTop2(index=np.where(ok, ids, -1), score=np.where(ok, s, -np.inf), value=np.where(ok, v, 0.0))

    def cell_bounds(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(Q, cells)`` upper bounds on every member's direct float64 score, rounding margin included."""
        xs = x - self._origin
        mus = self._mu - self._origin
        xn = np.einsum("ij,ij->i", xs, xs)
        mn = np.einsum("ij,ij->i", mus, mus)
        diff2 = xn[:, None] - 2.0 * (xs @ mus.T) + mn[None, :]
        # The expanded distance errs by at most ~(d + 3)·u·(‖x'‖ + ‖μ'‖)²; its square root by the root of
        # that, ~2e-7·(‖x'‖ + ‖μ'‖) at d = 384: the slack is far above it.
        slack = 1e-5 * (np.sqrt(xn)[:, None] + np.sqrt(mn)[None, :]) + 1e-300
        dist = np.sqrt(np.maximum(diff2, 0.0))
        delta = np.maximum(0.0, dist - slack - self._radius[None, :])
        d2 = delta * delta
        ub = (self._front_lb[None, :, :] - d2[:, :, None] * self._front_s[None, :, :]).max(axis=2)
        far = (dist + slack + self._radius[None, :]) ** 2 * self._cell_smax[None, :]
        return ub + _MARGIN * (self._cell_scale[None, :] + far) + 1e-300

    def clear(
        self,
        queries: ArrayLike,
        *,
        reserve: float = 0.0,
        eligible: ArrayLike | None = None,
        certify: bool = True,
        batch: int = 256,
    ) -> Clearing:
        """Clear ``queries``; with ``certify`` (default) the result equals exact :func:`clear` bit for bit.

        Without ``certify``, the winner, runner-up and payment are exact among FAISS's ``k`` candidates
        only: approximate. :attr:`stats` tells what happened to each query. Queries are processed
        ``batch`` at a time so that memory stays bounded.
        """
        x = self.market.check_queries(queries)
        nq = x.shape[0]
        reserve = as_reserve(reserve)
        elig = self.market._check_eligible(eligible, nq)
        fields = list(Clearing.__dataclass_fields__)
        parts: list[Clearing] = []
        stats: list[ApproxStats] = []
        for lo in range(0, nq, max(1, int(batch))):
            hi = min(nq, lo + max(1, int(batch)))
            e = None if elig is None else elig if elig.ndim == 1 else elig[lo:hi]
            out, st = self._clear_chunk(x[lo:hi], e, reserve, certify)
            parts.append(out)
            stats.append(st)
        if not parts:
            self.stats = ApproxStats(np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, np.int64))
            return self.market.clear(x, reserve=reserve, eligible=elig)
        self.stats = ApproxStats(
            *(np.concatenate([getattr(s, f) for s in stats]) for f in ApproxStats.__dataclass_fields__)
        )
        return Clearing(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})

    def audit(self, queries: ArrayLike, *, sample: int = 64, reserve: float = 0.0, seed: int = 0) -> dict[str, float]:
        """Compare the uncertified answer with exact clearing on a random sample of ``queries``.

        Returns the sample size and the shares with the exact winner and with the exact price (bit for
        bit), and the welfare loss (1 − approximate / exact sum of winners' reported values): the
        numbers to watch before an approximate answer is used anywhere money moves.
        """
        x = as_float_array(queries, "queries", ndim=(1, 2)).reshape(-1, self.d)
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(x.shape[0], size=min(int(sample), x.shape[0]), replace=False))
        approx = self.clear(x[idx], reserve=reserve, certify=False)
        exact = self.market.clear(x[idx], reserve=reserve)
        same = approx.winner == exact.winner
        total = float(exact.value.sum())
        return {
            "queries": int(idx.size),
            "share_exact_winner": float(same.mean()) if idx.size else 1.0,
            "share_exact_price": float((same & (approx.payment == exact.payment)).mean()) if idx.size else 1.0,
            "welfare_loss": 1.0 - float(approx.value.sum()) / total if total > 0 else 0.0,
        }

    def _clear_chunk(self, x, elig, reserve: float, certify: bool) -> tuple[Clearing, ApproxStats]:
        nq = x.shape[0]
        ids = self.candidates(x)
        top = self._rescore(x, ids, elig)
        certified = np.zeros(nq, dtype=bool)
        fallback = np.zeros(nq, dtype=bool)
        scanned = np.zeros(nq, dtype=np.int64)
        approx = merge([top], reserve=reserve)
        if not certify:
            return approx, ApproxStats(certified, fallback, scanned)

        # T: second-best exact score among the candidates (a lower bound on the true runner-up's).
        pre = merge([top], reserve=0.0)
        thresh = np.where(pre.runner_up >= 0, pre.runner_up_score, -np.inf)
        alive = self.cell_bounds(x) >= thresh[:, None]
        need = alive.astype(np.int64) @ np.diff(self._offsets)
        result = {f: getattr(approx, f).copy() for f in Clearing.__dataclass_fields__}
        for i in range(nq):
            if not np.isfinite(thresh[i]) or need[i] > self.max_scan:
                fallback[i] = True
                continue
            cells = np.flatnonzero(alive[i])
            rows = np.concatenate([self._members[self._offsets[c] : self._offsets[c + 1]] for c in cells])
            rows = np.setdiff1d(rows, ids[i])  # the candidates are scored already
            scanned[i] = rows.size
            certified[i] = True
            if rows.size == 0:
                continue
            e = None if elig is None else elig if elig.ndim == 1 else elig[i : i + 1]
            extra = self._rescore(x[i : i + 1], rows[None, :], e)
            own = ShardTop2(top.index[i : i + 1], top.score[i : i + 1], top.value[i : i + 1])
            got = merge([own, extra], reserve=reserve)
            for f in result:
                result[f][i] = getattr(got, f)[0]
        fb = np.flatnonzero(fallback)
        if fb.size:
            e = None if elig is None else elig if elig.ndim == 1 else elig[fb]
            got = self.market.clear(x[fb], reserve=reserve, eligible=e)
            for f in result:
                result[f][fb] = getattr(got, f)
        return Clearing(**result), ApproxStats(certified, fallback, scanned)
