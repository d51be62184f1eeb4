"""Clearing a batch of auctions against a built market: each query's eligibility mask, then one kernel call
per distinct reserve.

Each query keeps its own mask (campaign eligibility, publisher caps, exclusions, the keyword's rows,
the relevance gate τ), so every outcome is exactly what clearing it alone would give; what is shared
is the pass over the prepared market and the campaign-level eligibility, computed once per batch.

Money is integer micros. The kernel's payment (a float in micros) is rounded down to whole micros,
never above the winner's bid and never below the reserve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from adspace.exchange.domain.campaign_state import CampaignState
from adspace.exchange.domain.eligibility import EXCLUSION_REASONS, CampaignTerms
from adspace.exchange.domain.market_rows import MarketRows
from adspace.mechanisms.vcg import Clearing

__all__ = ["Outcome", "Prepared", "Query", "clear_batch", "prepare_batch"]


@dataclass(frozen=True)
class Query:
    """One auction's request to the market: its point (``None`` when only keywords were given), keywords,
    reserve, relevance gate τ, campaigns to leave out (after refused holds), and campaigns this publisher
    already holds up to its cap (``services/holds.py``: left out, counted as ``publisher_holds``)."""

    x: np.ndarray | None
    keywords: list[str] | None = None
    reserve_micros: int = 0
    tau: float | None = None
    exclude: frozenset[str] = frozenset()
    capped: frozenset[str] = frozenset()


@dataclass
class Outcome:
    """One auction's result, before it is written down."""

    filled: bool
    campaign: CampaignState | None
    price_micros: int
    score: float | None
    value_micros: float | None
    runner_up_score: float | None
    considered: int
    total: int
    excluded: dict[str, int]
    below_reserve: bool
    point: str  # "query" | "keyword"
    keyword: str | None


@dataclass
class Prepared:
    """A query with its point, eligibility mask and explain counts, ready for the kernel (``x`` is None
    when there is nothing to clear)."""

    x: np.ndarray | None
    row_ok: np.ndarray | None
    considered: int
    excluded: dict[str, int]
    point: str
    keyword: str | None
    reserve: int


def prepare_batch(
    queries: list[Query], now: datetime, rows: MarketRows, terms: CampaignTerms, pos: dict[str, int], n: int
) -> list[Prepared]:
    """Each query's point and mask. ``pos``: the market position of each live campaign; ``n``: how many
    campaigns the market holds. Call it under the market's lock (it reads ``terms`` and ``pos``)."""
    prepared: list[Prepared] = []
    base = None
    # Queries with the same restrictions share one eligibility mask and its counts (the common
    # case: no keyword, τ, exclusion or cap), computed once per batch, not once per query.
    shared: dict[tuple, Prepared] = {}
    for q in queries:
        keyword = rows.keyword_in(q.keywords)
        point_kind = "keyword" if keyword is not None else "query"
        x = rows.keyword_point[keyword] if keyword is not None else q.x
        if x is None or rows.market is None or n == 0:
            prepared.append(Prepared(None, None, 0, dict.fromkeys(EXCLUSION_REASONS, 0), point_kind, keyword, 0))
            continue
        if base is None:
            base = terms.eligibility(now)
        # τ gates on the distance to this query's point: such a query has a mask of its own.
        key = None if q.tau is not None else (keyword, q.exclude, q.capped)
        same = shared.get(key) if key is not None else None
        if same is None:
            same = _prepare(q, x, keyword, point_kind, base, rows, pos)
            if key is not None:
                shared[key] = same
            prepared.append(same)
        else:
            prepared.append(replace(same, x=x, excluded=dict(same.excluded), reserve=int(q.reserve_micros)))
    return prepared


def _prepare(
    q: Query, x: np.ndarray, keyword: str | None, point_kind: str, base, rows: MarketRows, pos: dict[str, int]
) -> Prepared:
    camp_ok, counts, left = base
    n_camps = camp_ok.shape[0]
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    excluded.update(counts)
    if q.capped:  # this publisher's outstanding holds reached the cap on these campaigns
        hit = np.zeros(n_camps, dtype=bool)
        hit[[pos[c] for c in q.capped if c in pos]] = True
        excluded["publisher_holds"] = int((hit & left).sum())
        left = left & ~hit
        camp_ok = camp_ok & ~hit
    if q.exclude:
        camp_ok = camp_ok.copy()
        for cid in q.exclude:
            if cid in pos:
                camp_ok[pos[cid]] = False
    if rows.simple:
        row_ok = camp_ok.copy()
    else:
        row_ok = camp_ok[rows.row_camp]
        # Keyword rows: only those of the auction's keyword (σ → 0: every other keyword's value is 0).
        kw_row_ok = np.zeros(row_ok.shape[0], dtype=bool)
        if keyword is not None:
            kw_row_ok[rows.keyword_rows[keyword]] = True
        row_kw_fail = ~rows.embedding_rows & ~kw_row_ok
        row_ok &= ~row_kw_fail
    # Relevance gate: ‖x − c‖² <= τ (a filter on the report; see docs/exchange.md).
    if q.tau is not None:
        cand = np.flatnonzero(row_ok & rows.embedding_rows)
        if cand.size:
            diff = rows.market.centers[cand] - x
            d2 = np.einsum("ij,ij->i", diff, diff)
            row_ok[cand[d2 > q.tau]] = False
    # Explain: each live campaign counted once, under the first reason that left it out.
    if rows.simple:
        camp_any_ok = row_ok
    else:
        camp_kw_fail = np.ones(n_camps, dtype=bool)  # fails if all its rows do
        np.logical_and.at(camp_kw_fail, rows.row_camp, row_kw_fail)
        hit = camp_kw_fail & left
        excluded["keyword"] = int(hit.sum())
        left = left & ~hit
        camp_any_ok = np.zeros(n_camps, dtype=bool)
        np.logical_or.at(camp_any_ok, rows.row_camp, row_ok)
    excluded["relevance"] = int((left & ~camp_any_ok).sum())
    considered = int(camp_any_ok.sum())
    return Prepared(x, row_ok, considered, excluded, point_kind, keyword, int(q.reserve_micros))


def clear_batch(
    prepared: list[Prepared], rows: MarketRows, states: list[CampaignState], n: int
) -> tuple[list[Outcome], list[int]]:
    """The outcome of each prepared query, and how many queries each kernel call cleared (one call per
    distinct reserve). Safe outside the market's lock: ``rows`` is never mutated and the masks are the
    batch's own."""
    outcomes: list[Outcome | None] = [None] * len(prepared)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prepared):
        if p.x is None:
            outcomes[i] = Outcome(False, None, 0, None, None, None, 0, n, p.excluded, False, p.point, p.keyword)
        else:
            groups.setdefault(p.reserve, []).append(i)
    for reserve, idx in groups.items():
        xs = np.vstack([prepared[i].x for i in idx])
        first = prepared[idx[0]].row_ok
        if all(prepared[i].row_ok is first for i in idx):
            masks = first  # one (N,) mask for the whole group
        else:
            masks = np.vstack([prepared[i].row_ok for i in idx])
        clearing = rows.market.clear(xs, reserve=float(reserve), eligible=masks)
        for k, i in enumerate(idx):
            outcomes[i] = _outcome(prepared[i], clearing, k, n, rows.row_camp, states)
    return outcomes, [len(idx) for idx in groups.values()]


def _outcome(p: Prepared, clearing: Clearing, k: int, n: int, row_camp, states) -> Outcome:
    w = int(clearing.winner[k])
    if w < 0:
        return Outcome(
            False, None, 0, None, None, None, p.considered, n, p.excluded, p.considered > 0, p.point, p.keyword
        )
    camp = states[int(row_camp[w])]
    payment = float(clearing.payment[k])
    # The kernel's payment lies in [reserve, winner's value] and the value is <= the bid, so its
    # floor lies in [reserve, bid] for an integer reserve; min() guards float rounding at the top.
    price = min(int(math.floor(payment)), camp.bid_micros)
    r = int(clearing.runner_up[k])
    return Outcome(
        filled=True,
        campaign=camp,
        price_micros=price,
        score=float(clearing.score[k]),
        value_micros=float(clearing.value[k]),
        runner_up_score=float(clearing.runner_up_score[k]) if r >= 0 else None,
        considered=p.considered,
        total=n,
        excluded=p.excluded,
        below_reserve=False,
        point=p.point,
        keyword=p.keyword,
    )
