"""The in-memory market: campaigns held as arrays for :class:`adspace.mechanisms.vcg.Market`.

The database is the truth; this is a cache of it kept in step by the service layer. Reports
(center, σ, bid, keywords) changing rebuilds the prepared :class:`~adspace.mechanisms.vcg.Market`
lazily, before the next auction; money (spent, held, daily use) and status change in place. Every
change made by a committed transaction is applied before the request that made it returns, so the
next auction sees it.

Keyword campaigns (σ → 0, seed 000 §6). A keyword campaign sits at the point of each of its keywords
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
from dataclasses import dataclass, field, fields
from datetime import date, datetime

import numpy as np

from adspace.mechanisms.vcg import Clearing, Market

__all__ = ["CampaignState", "LiveMarket", "Outcome", "EXCLUSION_REASONS"]

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


class _Job:
    __slots__ = ("market", "x", "reserve", "mask", "result", "error", "done")

    def __init__(self, market: Market, x: np.ndarray, reserve: float, mask: np.ndarray):
        self.market, self.x, self.reserve, self.mask = market, x, reserve, mask
        self.result: Clearing | None = None
        self.error: BaseException | None = None
        self.done = False


class _Batcher:
    """Clears concurrent auctions together: one :meth:`Market.clear` call for the queries that arrive
    while the previous batch is being cleared (no added delay; a lone request is a batch of one).

    One query costs a pass over the whole prepared market (memory-bound); a batch of ``Q`` queries
    shares that pass. Queries are grouped by market and reserve (``clear`` takes one reserve); each
    keeps its own eligibility mask, so every outcome is exactly what clearing it alone would give.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._busy = False
        self.batches = 0
        self.queries = 0

    def clear(self, market: Market, x: np.ndarray, reserve: float, mask: np.ndarray) -> Clearing:
        job = _Job(market, x, reserve, mask)
        with self._cond:
            self._pending.append(job)
            while not job.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch, self._pending = self._pending, []
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.result

    def _run(self, batch: list[_Job]) -> None:
        groups: dict[tuple[int, float], list[_Job]] = {}
        for job in batch:
            groups.setdefault((id(job.market), job.reserve), []).append(job)
        for jobs in groups.values():
            try:
                xs = np.vstack([j.x for j in jobs])
                masks = np.vstack([j.mask for j in jobs])
                out = jobs[0].market.clear(xs, reserve=jobs[0].reserve, eligible=masks)
                for i, j in enumerate(jobs):
                    j.result = Clearing(**{f.name: getattr(out, f.name)[i : i + 1] for f in fields(Clearing)})
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                for j in jobs:
                    j.error = exc
            finally:
                for j in jobs:
                    j.done = True
            self.batches += 1
            self.queries += len(jobs)


class LiveMarket:
    """Campaign arrays for clearing, kept in step with the database by the service layer."""

    def __init__(self, dim: int):
        self.dim = dim
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
        self._batcher = _Batcher()
        self.rebuilds = 0

    # -- keeping in step -----------------------------------------------------------------------------
    def upsert(self, state: CampaignState) -> None:
        """Add or replace a campaign; the next auction sees it.

        A change of the report (center, σ, bid, keywords) or a new campaign rebuilds the prepared
        market before the next auction; status, schedule, budgets and creative change in place.
        """
        with self._lock:
            old = self._camps.get(state.id)
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

    def _write_terms(self, i: int, c: CampaignState) -> None:
        a = self._arr
        a["active"][i] = c.status == "active"
        a["starts"][i], a["ends"][i] = c.starts_at, c.ends_at
        a["budget"][i] = c.budget_micros
        a["cap"][i] = -1 if c.daily_budget_micros is None else c.daily_budget_micros

    def _write_money(self, i: int, c: CampaignState) -> None:
        a = self._arr
        a["spent"][i], a["held"][i], a["used"][i] = c.spent_micros, c.held_micros, c.daily_used_micros
        a["day"][i] = _day_number(c.daily_day)

    def get(self, campaign_id: str) -> CampaignState | None:
        with self._lock:
            return self._camps.get(campaign_id)

    def has_keyword(self, keyword: str) -> bool:
        with self._lock:
            self._ensure()
            return keyword in self._keyword_rows

    def __len__(self) -> int:
        return len(self._camps)

    @property
    def batches(self) -> int:
        """How many kernel calls cleared auctions (each may hold several concurrent auctions)."""
        return self._batcher.batches

    @property
    def batched_queries(self) -> int:
        return self._batcher.queries

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
            self._market = Market(np.vstack(centers), np.asarray(sigmas), np.asarray(bids))
        else:
            self._market = None
        self._row_camp = np.asarray(row_camp, dtype=np.int64)
        self._row_keyword = row_kw
        self._keyword_rows = {k: np.asarray(v, dtype=np.int64) for k, v in kw_rows.items()}
        self._keyword_point = kw_point
        self._embedding_rows = np.asarray([k is None for k in row_kw], dtype=bool)
        n = len(camps)
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
        for i, c in enumerate(camps):
            self._write_terms(i, c)
            self._write_money(i, c)
        self._dirty = False
        self.rebuilds += 1

    # -- clearing ------------------------------------------------------------------------------------
    def _campaign_reasons(self, now: float, today: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-campaign eligibility (before keyword and relevance) and the mask of each reason."""
        a = self._arr
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
        """Clear one auction. ``x``: the query embedding (``None`` when only keywords were given).
        ``capped``: campaigns this publisher holds up to its cap (``services/holds.py``): left out."""
        with self._lock:
            self._ensure()
            today = now.date().toordinal()
            n = len(self._camps)
            keyword = next((k for k in (keywords or []) if k in self._keyword_rows), None)
            point_kind = "keyword" if keyword is not None else "query"
            if keyword is not None:
                x = self._keyword_point[keyword]
            excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
            if x is None or self._market is None or n == 0:
                return Outcome(False, None, 0, None, None, None, 0, n, excluded, False, point_kind, keyword)

            camp_ok, reasons = self._campaign_reasons(now.timestamp(), today)
            if capped:  # issue 12: per-publisher cap on outstanding holds
                hit = np.zeros(len(self._states), dtype=bool)
                hit[[self._pos[c] for c in capped if c in self._pos]] = True
                reasons["publisher_holds"] = hit
                camp_ok &= ~hit
            if exclude:
                for cid in exclude:
                    if cid in self._pos:
                        camp_ok[self._pos[cid]] = False
            row_ok = camp_ok[self._row_camp]
            # Keyword rows: only those of the auction's keyword (σ → 0: every other keyword's value is 0).
            kw_row_ok = np.zeros(row_ok.shape[0], dtype=bool)
            if keyword is not None:
                kw_row_ok[self._keyword_rows[keyword]] = True
            row_kw_fail = ~self._embedding_rows & ~kw_row_ok
            row_ok &= ~row_kw_fail
            # Relevance gate: ‖x − c‖² <= τ (a filter on the report; see docs/exchange.md).
            row_tau_fail = np.zeros(row_ok.shape[0], dtype=bool)
            if tau is not None:
                cand = np.flatnonzero(row_ok & self._embedding_rows)
                if cand.size:
                    diff = self._market.centers[cand] - x
                    d2 = np.einsum("ij,ij->i", diff, diff)
                    row_tau_fail[cand[d2 > tau]] = True
                row_ok &= ~row_tau_fail

            # Explain: each live campaign counted once, under the first reason that left it out.
            left = self._arr["live"].copy()
            for name in ("paused", "schedule", "budget", "daily_budget", "publisher_holds"):
                if name not in reasons:
                    continue
                hit = reasons[name] & left
                excluded[name] = int(hit.sum())
                left &= ~hit
            camp_kw_fail = np.ones(
                len(self._states), dtype=bool
            )  # a campaign fails the keyword test if all its rows do
            np.logical_and.at(camp_kw_fail, self._row_camp, row_kw_fail)
            hit = camp_kw_fail & left
            excluded["keyword"] = int(hit.sum())
            left &= ~hit
            camp_any_ok = np.zeros(len(self._states), dtype=bool)
            np.logical_or.at(camp_any_ok, self._row_camp, row_ok)
            excluded["relevance"] = int((left & ~camp_any_ok).sum())
            considered = int(camp_any_ok.sum())

            # Clear outside the lock (NumPy releases the GIL, so auctions clear in parallel): the prepared
            # market is never mutated (a rebuild makes a new one), and the mask is this call's own.
            market, row_camp, states = self._market, self._row_camp, self._states
        clearing = self._batcher.clear(market, x, float(reserve_micros), row_ok)
        w = int(clearing.winner[0])
        if w < 0:
            return Outcome(
                False, None, 0, None, None, None, considered, n, excluded, considered > 0, point_kind, keyword
            )
        camp = states[int(row_camp[w])]
        payment = float(clearing.payment[0])
        # The kernel's payment lies in [reserve, winner's value] and the value is <= the bid, so its
        # floor lies in [reserve, bid] for an integer reserve; min() guards float rounding at the top.
        price = min(int(math.floor(payment)), camp.bid_micros)
        r = int(clearing.runner_up[0])
        return Outcome(
            filled=True,
            campaign=camp,
            price_micros=price,
            score=float(clearing.score[0]),
            value_micros=float(clearing.value[0]),
            runner_up_score=float(clearing.runner_up_score[0]) if r >= 0 else None,
            considered=considered,
            total=n,
            excluded=excluded,
            below_reserve=False,
            point=point_kind,
            keyword=keyword,
        )
