"""The in-memory market: campaigns held as arrays for :class:`adspace.mechanisms.vcg.Market`.

The database is the truth; this is a cache of it kept in step by the service layer. Reports
(center, σ, bid, keywords) changing rebuilds the prepared :class:`~adspace.mechanisms.vcg.Market`
lazily, before the next auction; money (spent, held, daily use) and status change in place. Every
change made by a committed transaction is applied before the request that made it returns, so the
next auction sees it.

Keyword campaigns (σ → 0, Kim 2026, §6). A keyword campaign sits at the point of each of its keywords
(the keyword's embedding), one row of the market per keyword. When a request's keywords include a
keyword that campaigns bid on, the auction runs at that keyword's point: the keyword's campaigns sit
at distance 0 there (reported value = bid, whatever σ), every embedding campaign is scored at the
point as usual, and keyword rows of other keywords are out (their value tends to 0 as σ → 0). With
only keyword bidders the outcome is exactly a second-price auction. The σ stored for a keyword row
is irrelevant at distance 0; it is set to 1.

Money is integer micros. The kernel's payment (a float in micros) is rounded down to whole micros,
never above the winner's bid and never below the reserve.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import numpy as np

from adspace.mechanisms.vcg import Clearing, Market

__all__ = ["CampaignState", "LiveMarket", "Outcome", "Query", "EXCLUSION_REASONS"]

#: Why a campaign was left out of an auction, in the order they are checked.
EXCLUSION_REASONS = ("paused", "schedule", "budget", "daily_budget", "publisher_holds", "keyword", "relevance")

_BIG = float("inf")


@dataclass
class CampaignState:
    """What the market needs of one campaign (a copy of its database row)."""

    id: str
    advertiser_id: str
    kind: str  # embedding | keyword
    center: np.ndarray | None
    sigma: float | None
    keywords: dict[str, np.ndarray] = field(default_factory=dict)  # keyword -> point
    bid_micros: int = 0
    budget_micros: int = 0
    daily_budget_micros: int | None = None
    starts_at: float = -_BIG  # POSIX seconds
    ends_at: float = _BIG
    status: str = "active"
    spent_micros: int = 0
    held_micros: int = 0
    daily_day: str | None = None
    daily_used_micros: int = 0
    money_version: int = 0
    title: str = ""
    body: str = ""
    url: str = ""
    order: tuple = ()
    updated: float = 0.0  # the row's updated_at (POSIX seconds): a read older than the market's is stale


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


def _same_report(a: CampaignState, b: CampaignState) -> bool:
    """Whether two states of a campaign report the same (center, σ, bid, keywords): no rebuild needed."""
    if a.kind != b.kind or a.bid_micros != b.bid_micros or a.sigma != b.sigma or a.order != b.order:
        return False
    if (a.center is None) != (b.center is None) or (a.center is not None and not np.array_equal(a.center, b.center)):
        return False
    return a.keywords.keys() == b.keywords.keys() and all(
        np.array_equal(a.keywords[k], b.keywords[k]) for k in a.keywords
    )


def _day_number(day: str | None) -> int:
    """``"YYYY-MM-DD"`` -> proleptic ordinal (0 for none)."""
    return 0 if not day else date.fromisoformat(day).toordinal()


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


#: Campaign-level reasons to be left out, in the order they are checked (the first counts).
_CAMPAIGN_REASONS = ("paused", "schedule", "budget", "daily_budget")
_NOT_LIVE = len(_CAMPAIGN_REASONS)  # a removed campaign (its rows stay until a rebuild)


@dataclass
class _Eligibility:
    """Each campaign's first reason to be left out (:meth:`LiveMarket._first_reasons`), valid for the
    day ``today`` from ``now`` until ``until`` (the next start or end of a campaign's schedule), once
    the campaigns in ``changed`` are re-read."""

    first: np.ndarray
    today: int
    now: float
    until: float
    #: Positions of campaigns changed since ``first`` was last brought up to date (see ``_touch``).
    changed: set[int] = field(default_factory=set)


@dataclass
class _Prepared:
    """A query with its point, eligibility mask and explain counts, ready for the kernel."""

    x: np.ndarray | None
    row_ok: np.ndarray | None
    considered: int
    excluded: dict[str, int]
    point: str
    keyword: str | None
    reserve: int


class LiveMarket:
    """Campaign arrays for clearing, kept in step with the database by the service layer."""

    def __init__(self, dim: int, *, threads: int = 1):
        self.dim = dim
        self.threads = threads  # of the kernel's filter GEMM (Market(threads=...))
        self._lock = threading.RLock()
        self._camps: dict[str, CampaignState] = {}
        self._dirty = True
        self._market: Market | None = None
        self._row_camp = np.zeros(0, dtype=np.int64)  # row -> campaign position
        self._row_keyword: list[str | None] = []
        self._keyword_rows: dict[str, np.ndarray] = {}
        self._keyword_point: dict[str, np.ndarray] = {}
        self._embedding_rows = np.zeros(0, dtype=bool)
        self._order: list[str] = []
        self._pos: dict[str, int] = {}
        self._arr: dict[str, np.ndarray] = {}
        self._states: list[CampaignState] = []
        self._removed = 0
        self._simple = True  # one row per campaign, all embedding rows (no keyword campaigns)
        self._elig: _Eligibility | None = None  # see _base_eligibility
        self.rebuilds = 0
        self.batches = 0  # kernel calls that cleared auctions (each may hold several)
        self.batched_queries = 0  # auctions cleared by them

    # -- keeping in step -----------------------------------------------------------------------------
    def upsert(self, state: CampaignState) -> None:
        """Add or replace a campaign; the next auction sees it.

        A change of the report (center, σ, bid, keywords) or a new campaign rebuilds the prepared
        market before the next auction; status, schedule, budgets and creative change in place.
        """
        with self._lock:
            old = self._camps.get(state.id)
            if old is not None and state.updated < old.updated:
                # A stale read (another process's listener read the row before a newer change was
                # applied here): keep the newer report; only its money can be newer.
                self.set_money_of(state)
                return
            if old is not None and old.money_version > state.money_version:
                state.spent_micros, state.held_micros = old.spent_micros, old.held_micros
                state.daily_day, state.daily_used_micros = old.daily_day, old.daily_used_micros
                state.money_version = old.money_version
            self._camps[state.id] = state
            if old is not None and not self._dirty and state.id in self._pos and _same_report(old, state):
                i = self._pos[state.id]
                self._states[i] = state
                self._write_terms(i, state)
                self._write_money(i, state)
            else:
                self._dirty = True

    def remove(self, campaign_id: str) -> None:
        """Take a campaign out of the market (in place: its rows stay, never eligible, until a rebuild)."""
        with self._lock:
            old = self._camps.pop(campaign_id, None)
            if old is None:
                return
            if self._dirty or campaign_id not in self._pos or old.kind == "keyword":  # keyword routing changes
                self._dirty = True
                return
            i = self._pos.pop(campaign_id)
            self._arr["live"][i] = False
            self._arr["active"][i] = False
            self._touch(i)
            self._removed += 1
            if self._removed > 64 and self._removed * 10 > len(self._states):
                self._dirty = True  # compact

    def set_money(
        self, campaign_id: str, *, spent: int, held: int, daily_day: str | None, daily_used: int, version: int
    ) -> None:
        """Apply committed money columns (ignored when an equal or newer version is already applied)."""
        with self._lock:
            c = self._camps.get(campaign_id)
            if c is None or version <= c.money_version:
                return
            c.spent_micros, c.held_micros = int(spent), int(held)
            c.daily_day, c.daily_used_micros = daily_day, int(daily_used)
            c.money_version = int(version)
            if not self._dirty:
                self._write_money(self._pos[campaign_id], c)

    def set_money_of(self, state: CampaignState) -> None:
        """:meth:`set_money` with the money columns of a state read from the database."""
        self.set_money(
            state.id,
            spent=state.spent_micros,
            held=state.held_micros,
            daily_day=state.daily_day,
            daily_used=state.daily_used_micros,
            version=state.money_version,
        )

    def _write_terms(self, i: int, c: CampaignState) -> None:
        a = self._arr
        a["active"][i] = c.status == "active"
        a["starts"][i], a["ends"][i] = c.starts_at, c.ends_at
        a["budget"][i] = c.budget_micros
        a["cap"][i] = -1 if c.daily_budget_micros is None else c.daily_budget_micros
        self._touch(i)

    def _write_money(self, i: int, c: CampaignState) -> None:
        a = self._arr
        a["spent"][i], a["held"][i], a["used"][i] = c.spent_micros, c.held_micros, c.daily_used_micros
        a["day"][i] = _day_number(c.daily_day)
        self._touch(i)

    def get(self, campaign_id: str) -> CampaignState | None:
        with self._lock:
            return self._camps.get(campaign_id)

    def has_keyword(self, keyword: str) -> bool:
        with self._lock:
            self._ensure()
            return keyword in self._keyword_rows

    def __len__(self) -> int:
        return len(self._camps)

    def _ensure(self) -> None:
        if not self._dirty:
            return
        camps = sorted(self._camps.values(), key=lambda c: c.order)
        self._order = [c.id for c in camps]
        self._states = camps  # the states this market was built from, by position
        self._pos = {cid: i for i, cid in enumerate(self._order)}
        centers: list[np.ndarray] = []
        sigmas: list[float] = []
        bids: list[float] = []
        row_camp: list[int] = []
        row_kw: list[str | None] = []
        kw_rows: dict[str, list[int]] = {}
        kw_point: dict[str, np.ndarray] = {}
        for i, c in enumerate(camps):
            if c.kind == "keyword":
                for kw in sorted(c.keywords):
                    kw_rows.setdefault(kw, []).append(len(row_camp))
                    kw_point.setdefault(kw, c.keywords[kw])
                    centers.append(kw_point[kw])
                    sigmas.append(1.0)
                    bids.append(float(c.bid_micros))
                    row_camp.append(i)
                    row_kw.append(kw)
            else:
                centers.append(c.center)
                sigmas.append(float(c.sigma))
                bids.append(float(c.bid_micros))
                row_camp.append(i)
                row_kw.append(None)
        if centers:
            self._market = Market(np.vstack(centers), np.asarray(sigmas), np.asarray(bids), threads=self.threads)
        else:
            self._market = None
        self._row_camp = np.asarray(row_camp, dtype=np.int64)
        self._row_keyword = row_kw
        self._keyword_rows = {k: np.asarray(v, dtype=np.int64) for k, v in kw_rows.items()}
        self._keyword_point = kw_point
        self._embedding_rows = np.asarray([k is None for k in row_kw], dtype=bool)
        n = len(camps)
        self._simple = bool(self._embedding_rows.all()) and len(row_camp) == n
        self._arr = {
            "live": np.ones(n, dtype=bool),
            "active": np.zeros(n, dtype=bool),
            "starts": np.zeros(n, dtype=np.float64),
            "ends": np.zeros(n, dtype=np.float64),
            "bid": np.fromiter((c.bid_micros for c in camps), dtype=np.int64, count=n),
            "budget": np.zeros(n, dtype=np.int64),
            "cap": np.zeros(n, dtype=np.int64),
            "spent": np.zeros(n, dtype=np.int64),
            "held": np.zeros(n, dtype=np.int64),
            "day": np.zeros(n, dtype=np.int64),
            "used": np.zeros(n, dtype=np.int64),
        }
        self._removed = 0
        self._elig = None
        for i, c in enumerate(camps):
            self._write_terms(i, c)
            self._write_money(i, c)
        self._dirty = False
        self.rebuilds += 1

    # -- clearing ------------------------------------------------------------------------------------
    def _campaign_reasons(
        self, now: float, today: int, idx: np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-campaign eligibility (before keyword and relevance) and the mask of each reason: of every
        campaign, or of the campaigns at positions ``idx``."""
        a = self._arr if idx is None else {k: v[idx] for k, v in self._arr.items()}
        used = np.where(a["day"] == today, a["used"], 0)
        sched_ok = (a["starts"] <= now) & (now < a["ends"])
        budget_ok = a["budget"] - a["spent"] - a["held"] >= a["bid"]
        daily_ok = (a["cap"] < 0) | (used + a["bid"] <= a["cap"])
        status_ok = a["active"]
        reasons = {"paused": ~status_ok, "schedule": ~sched_ok, "budget": ~budget_ok, "daily_budget": ~daily_ok}
        return a["live"] & status_ok & sched_ok & budget_ok & daily_ok, reasons

    def run(
        self,
        x: np.ndarray | None,
        *,
        keywords: list[str] | None,
        reserve_micros: int,
        tau: float | None,
        now: datetime,
        exclude: frozenset[str] = frozenset(),
        capped: frozenset[str] = frozenset(),
    ) -> Outcome:
        """Clear one auction. ``x``: the query embedding (``None`` when only keywords were given)."""
        return self.run_batch([Query(x, keywords, reserve_micros, tau, exclude, capped)], now)[0]

    def run_batch(self, queries: list[Query], now: datetime) -> list[Outcome]:
        """Clear several auctions together: one :meth:`Market.clear` call per distinct reserve.

        Each query keeps its own eligibility mask, so every outcome is exactly what clearing it alone
        would give; what is shared is the pass over the prepared market (memory-bound for one query)
        and the campaign-level eligibility (status, schedule, budgets at ``now``), computed once.
        """
        with self._lock:
            self._ensure()
            n = len(self._camps)
            prepared: list[_Prepared] = []
            base = None
            # Queries with the same restrictions share one eligibility mask and its counts (the common
            # case: no keyword, τ, exclusion or cap), computed once per batch, not once per query.
            shared: dict[tuple, _Prepared] = {}
            for q in queries:
                keyword = next((k for k in (q.keywords or []) if k in self._keyword_rows), None)
                point_kind = "keyword" if keyword is not None else "query"
                x = self._keyword_point[keyword] if keyword is not None else q.x
                if x is None or self._market is None or n == 0:
                    prepared.append(
                        _Prepared(None, None, 0, dict.fromkeys(EXCLUSION_REASONS, 0), point_kind, keyword, 0)
                    )
                    continue
                if base is None:
                    base = self._base_eligibility(now)
                # τ gates on the distance to this query's point: such a query has a mask of its own.
                key = None if q.tau is not None else (keyword, q.exclude, q.capped)
                same = shared.get(key) if key is not None else None
                if same is None:
                    same = self._prepare(q, x, keyword, point_kind, base)
                    if key is not None:
                        shared[key] = same
                    prepared.append(same)
                else:
                    prepared.append(replace(same, x=x, excluded=dict(same.excluded), reserve=int(q.reserve_micros)))
            # Clear outside the lock (NumPy releases the GIL): the prepared market is never mutated (a
            # rebuild makes a new one), and the masks are this call's own.
            market, row_camp, states = self._market, self._row_camp, self._states
        outcomes: list[Outcome | None] = [None] * len(queries)
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
            clearing = market.clear(xs, reserve=float(reserve), eligible=masks)
            self.batches += 1
            self.batched_queries += len(idx)
            for k, i in enumerate(idx):
                outcomes[i] = self._outcome(prepared[i], clearing, k, n, row_camp, states)
        return outcomes

    def _first_reasons(self, now: float, today: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Per campaign (every one, or those at ``idx``), the first of :data:`_CAMPAIGN_REASONS` that
        leaves it out (its index), ``-1`` when it is eligible, ``_NOT_LIVE`` when it was removed."""
        _, reasons = self._campaign_reasons(now, today, idx)
        live = self._arr["live"] if idx is None else self._arr["live"][idx]
        first = np.full(len(live), -1, dtype=np.int8)
        for k in range(len(_CAMPAIGN_REASONS) - 1, -1, -1):  # the first reason is written last
            first[reasons[_CAMPAIGN_REASONS[k]]] = k
        first[~live] = _NOT_LIVE
        return first

    def _touch(self, i: int) -> None:
        """Campaign ``i``'s arrays changed: the cached eligibility re-reads it before its next use."""
        if self._elig is not None:
            self._elig.changed.add(i)

    def _base_eligibility(self, now: datetime) -> tuple[np.ndarray, dict[str, int], np.ndarray]:
        """Campaign eligibility before keyword and relevance, the counts of each reason, and who is left.

        Computed over every campaign only when the day changes or a campaign's schedule starts or
        ends; in between, only the campaigns whose money or terms changed since the last batch
        (:meth:`_touch`) are re-read, so a busy exchange does not rescan every campaign for each batch.
        """
        t, today = now.timestamp(), now.date().toordinal()
        a = self._arr
        c = self._elig
        if c is not None and c.today == today and c.changed:
            idx = np.fromiter(c.changed, dtype=np.intp, count=len(c.changed))
            c.changed.clear()
            c.first[idx] = self._first_reasons(c.now, c.today, idx)
            bounds = np.concatenate([a["starts"][idx], a["ends"][idx]])
            bounds = bounds[bounds > c.now]
            if bounds.size:
                c.until = min(c.until, float(bounds.min()))
        if c is None or c.today != today or not (c.now <= t < c.until):
            later = np.concatenate([a["starts"][a["starts"] > t], a["ends"][a["ends"] > t]])
            c = self._elig = _Eligibility(
                self._first_reasons(t, today), today, t, float(later.min()) if later.size else _BIG
            )
        counts = np.bincount(c.first.astype(np.intp) + 1, minlength=_NOT_LIVE + 2)
        camp_ok = c.first == -1
        return camp_ok, {name: int(counts[k + 1]) for k, name in enumerate(_CAMPAIGN_REASONS)}, camp_ok

    def _prepare(self, q: Query, x: np.ndarray, keyword: str | None, point_kind: str, base) -> _Prepared:
        camp_ok, counts, left = base
        excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
        excluded.update(counts)
        if q.capped:  # this publisher's outstanding holds reached the cap on these campaigns
            hit = np.zeros(len(self._states), dtype=bool)
            hit[[self._pos[c] for c in q.capped if c in self._pos]] = True
            excluded["publisher_holds"] = int((hit & left).sum())
            left = left & ~hit
            camp_ok = camp_ok & ~hit
        if q.exclude:
            camp_ok = camp_ok.copy()
            for cid in q.exclude:
                if cid in self._pos:
                    camp_ok[self._pos[cid]] = False
        if self._simple:
            row_ok = camp_ok.copy()
        else:
            row_ok = camp_ok[self._row_camp]
            # Keyword rows: only those of the auction's keyword (σ → 0: every other keyword's value is 0).
            kw_row_ok = np.zeros(row_ok.shape[0], dtype=bool)
            if keyword is not None:
                kw_row_ok[self._keyword_rows[keyword]] = True
            row_kw_fail = ~self._embedding_rows & ~kw_row_ok
            row_ok &= ~row_kw_fail
        # Relevance gate: ‖x − c‖² <= τ (a filter on the report; see docs/exchange.md).
        if q.tau is not None:
            cand = np.flatnonzero(row_ok & self._embedding_rows)
            if cand.size:
                diff = self._market.centers[cand] - x
                d2 = np.einsum("ij,ij->i", diff, diff)
                row_ok[cand[d2 > q.tau]] = False
        # Explain: each live campaign counted once, under the first reason that left it out.
        if self._simple:
            camp_any_ok = row_ok
        else:
            camp_kw_fail = np.ones(len(self._states), dtype=bool)  # fails if all its rows do
            np.logical_and.at(camp_kw_fail, self._row_camp, row_kw_fail)
            hit = camp_kw_fail & left
            excluded["keyword"] = int(hit.sum())
            left = left & ~hit
            camp_any_ok = np.zeros(len(self._states), dtype=bool)
            np.logical_or.at(camp_any_ok, self._row_camp, row_ok)
        excluded["relevance"] = int((left & ~camp_any_ok).sum())
        considered = int(camp_any_ok.sum())
        return _Prepared(x, row_ok, considered, excluded, point_kind, keyword, int(q.reserve_micros))

    @staticmethod
    def _outcome(p: _Prepared, clearing: Clearing, k: int, n: int, row_camp, states) -> Outcome:
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
