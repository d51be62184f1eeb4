"""Sharded exact clearing: the single-slot auction decomposes over any partition of the advertisers.

Winner, runner-up and Clarke pivot of one slot depend only on the two best eligible advertisers of
each query. So a market split into shards (on one machine or many) clears exactly by

1. **per shard**, the shard's own top 2 for every query: :func:`shard_top2` runs the one kernel,
   :meth:`adspace.mechanisms.vcg.Market.clear`, with reserve 0 on the shard, and keeps (global index,
   exact score, reported value) of its winner and runner-up;
2. **merge**: :func:`merge` takes the best two of all shards' entries by (exact score descending,
   global index ascending), the same order the kernel uses, and applies the reserve and the payment
   rule of :func:`adspace.mechanisms.vcg.clear`.

Why it is exact. The global winner ``w`` and runner-up ``r`` are the first two advertisers in that
order. Each is in the top 2 of its own shard (whatever outranks it globally also outranks it within
its shard, and at most one advertiser outranks ``r``), so both reach the merge, with the exact float64
scores the kernel computes for them (the same formula on the same rows). The runner-up's value is
carried as the shard's reserve-0 payment ``min(value_r, value_{w_s})``: when ``r`` is its shard's
runner-up, its shard winner outranks it and so is ``w``, and ``min(max(min(v_r, v_w), reserve), v_w)``
equals the kernel's ``min(max(v_r, reserve), v_w)`` in every case, floating-point near-ties included.
Tie-breaking (lowest global index) and the reserve (a phantom bidder applied once, after the merge)
are therefore identical to unsharded :func:`~adspace.mechanisms.vcg.clear`; the tests check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adspace.mechanisms._validate import as_float_array, as_reserve
from adspace.mechanisms.vcg import Clearing, Market

__all__ = ["ShardTop2", "ShardedMarket", "merge", "shard_top2", "split"]

_NONE = np.iinfo(np.int64).max  # sort key of an empty slot: after every real index


@dataclass(frozen=True)
class ShardTop2:
    """One shard's two best eligible advertisers per query (global indices).

    ``index`` (Q, 2) int64, ``-1`` for an empty slot; ``score`` (Q, 2) exact float64 scores
    (``-inf`` for an empty slot); ``value`` (Q, 2) reported values: column 0 the shard winner's,
    column 1 the shard runner-up's capped at the shard winner's (the kernel's reserve-0 payment;
    equal to the runner-up's reported value except in floating-point near-ties).
    """

    index: NDArray[np.int64]
    score: NDArray[np.float64]
    value: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.index.shape[0])


def shard_top2(
    market: Market,
    queries: ArrayLike,
    *,
    ids: ArrayLike | int = 0,
    eligible: ArrayLike | None = None,
) -> ShardTop2:
    """Top 2 of one shard for each query, by the kernel (:meth:`Market.clear` at reserve 0).

    ``ids`` maps the shard's rows to global indices: an int offset (rows ``offset .. offset+n-1``)
    or an ``(n,)`` integer array, increasing (so that the shard's own lowest-index tie-breaking
    agrees with the global one). ``eligible`` is the shard's own ``(n,)`` or ``(Q, n)`` mask.
    """
    out = market.clear(queries, reserve=0.0, eligible=eligible)
    if isinstance(ids, int | np.integer):
        gid = None
        off = int(ids)
    else:
        gid = np.asarray(ids, dtype=np.int64)
        if gid.shape != (market.n,):
            raise ValueError(f"ids: shape must be ({market.n},), got {gid.shape}")
        if gid.size > 1 and not (np.diff(gid) > 0).all():
            raise ValueError("ids: must be strictly increasing")
        off = 0

    def to_global(local: NDArray[np.int64]) -> NDArray[np.int64]:
        ok = local >= 0
        g = np.where(ok, local, 0)
        g = gid[g] if gid is not None else g + off
        return np.where(ok, g, -1)

    index = np.stack([to_global(out.winner), to_global(out.runner_up)], axis=1)
    score = np.stack([out.score, out.runner_up_score], axis=1)
    # Reserve 0: payment = min(runner-up value, winner value), 0 without a runner-up.
    value = np.stack([out.value, np.where(out.runner_up >= 0, out.payment, 0.0)], axis=1)
    return ShardTop2(index=index, score=score, value=value)


def merge(parts: Sequence[ShardTop2], *, reserve: float = 0.0) -> Clearing:
    """Merge shards' top 2 into the global :class:`Clearing` (identical to unsharded ``clear``)."""
    reserve = as_reserve(reserve)
    if not parts:
        raise ValueError("parts: need at least one shard")
    nq = len(parts[0])
    if any(len(p) != nq for p in parts):
        raise ValueError("parts: every shard must cover the same queries")
    index = np.concatenate([p.index for p in parts], axis=1)
    score = np.concatenate([p.score for p in parts], axis=1)
    value = np.concatenate([p.value for p in parts], axis=1)
    has = index >= 0
    # Best first: present entries, then higher exact score, then lower global index.
    order = np.lexsort((np.where(has, index, _NONE), -score, ~has), axis=-1)
    r = np.arange(nq)
    first = order[:, 0]
    w_idx = index[r, first]
    w_score = score[r, first]
    w_value = value[r, first]
    if index.shape[1] >= 2:
        second = order[:, 1]
        r_idx = index[r, second]
        r_score = np.where(r_idx >= 0, score[r, second], -np.inf)
        r_value = np.where(r_idx >= 0, value[r, second], 0.0)
    else:
        r_idx = np.full(nq, -1, dtype=np.int64)
        r_score = np.full(nq, -np.inf)
        r_value = np.zeros(nq)
    filled = (w_idx >= 0) & (w_value >= reserve)
    payment = np.where(filled, np.minimum(np.maximum(r_value, reserve), w_value), 0.0)
    return Clearing(
        winner=np.where(filled, w_idx, -1).astype(np.int64),
        runner_up=np.where(filled, r_idx, -1).astype(np.int64),
        payment=payment,
        score=np.where(filled, w_score, -np.inf),
        value=np.where(filled, w_value, 0.0),
        runner_up_score=np.where(filled, r_score, -np.inf),
    )


def split(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``(lo, hi)`` index ranges of ``shards`` nearly equal parts of ``range(n)``."""
    if shards < 1:
        raise ValueError(f"shards: must be >= 1, got {shards}")
    bounds = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


class ShardedMarket:
    """A market cut into contiguous shards, each a prepared :class:`Market`; clears exactly.

    On one machine this bounds the build's scratch memory by the shard size; across machines (Ray,
    :mod:`adspace.experiments.replay`) each worker holds shards and only ``ShardTop2`` travels.
    """

    def __init__(self, centers: ArrayLike, sigmas: ArrayLike, bids: ArrayLike, *, shards: int = 2, **market_kw):
        c = as_float_array(centers, "centers", ndim=2)
        s = as_float_array(sigmas, "sigmas", ndim=1)
        b = as_float_array(bids, "bids", ndim=1)
        if s.shape[0] != c.shape[0]:
            raise ValueError(f"sigmas: length {s.shape[0]} does not match the {c.shape[0]} centers")
        if b.shape[0] != c.shape[0]:
            raise ValueError(f"bids: length {b.shape[0]} does not match the {c.shape[0]} centers")
        self.n, self.d = c.shape
        self.ranges = split(self.n, shards) if self.n else []
        self.markets = [Market(c[lo:hi], s[lo:hi], b[lo:hi], **market_kw) for lo, hi in self.ranges]

    def __len__(self) -> int:
        return self.n

    def top2(self, queries: ArrayLike, *, eligible: ArrayLike | None = None) -> list[ShardTop2]:
        """Every shard's :class:`ShardTop2` (what a distributed deployment would ship to the merger)."""
        x = as_float_array(queries, "queries", ndim=(1, 2))
        nq = 1 if x.ndim == 1 else x.shape[0]
        e = None if eligible is None else np.asarray(eligible)
        if e is not None:
            if e.dtype != np.bool_:
                raise ValueError(f"eligible: must be a boolean mask, got dtype {e.dtype}")
            if e.shape not in ((self.n,), (nq, self.n)):
                raise ValueError(f"eligible: shape must be ({self.n},) or ({nq}, {self.n}), got {e.shape}")
        return [
            shard_top2(m, x, ids=lo, eligible=None if e is None else e[..., lo:hi])
            for (lo, hi), m in zip(self.ranges, self.markets, strict=True)
        ]

    def clear(self, queries: ArrayLike, *, reserve: float = 0.0, eligible: ArrayLike | None = None) -> Clearing:
        """Clear exactly: the same :class:`Clearing` as unsharded :func:`adspace.mechanisms.vcg.clear`."""
        if not self.markets:
            return Market(np.zeros((0, self.d)), np.zeros(0), np.zeros(0)).clear(queries, reserve=reserve)
        return merge(self.top2(queries, eligible=eligible), reserve=reserve)
