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

The jobs live beside it: :mod:`~adspace.exchange.domain.campaign_state` (one campaign's copy),
:mod:`~adspace.exchange.domain.market_rows` (the prepared market's rows, keyword routing),
:mod:`~adspace.exchange.domain.eligibility` (terms and money as arrays, who may compete) and
:mod:`~adspace.exchange.domain.clearing` (a batch's masks, the kernel calls, prices in whole micros).
"""

from __future__ import annotations

import threading
from datetime import datetime

import numpy as np

from adspace.exchange.domain.campaign_state import CampaignState, same_report
from adspace.exchange.domain.clearing import Outcome, Query, clear_batch, prepare_batch
from adspace.exchange.domain.eligibility import EXCLUSION_REASONS, CampaignTerms
from adspace.exchange.domain.market_rows import MarketRows

__all__ = ["CampaignState", "LiveMarket", "Outcome", "Query", "EXCLUSION_REASONS"]


class LiveMarket:
    """The campaigns of the exchange, kept in step with the database by the service layer, and cleared
    in batches."""

    def __init__(self, dim: int, *, threads: int = 1):
        self.dim = dim
        self.threads = threads  # of the kernel's filter GEMM (Market(threads=...))
        self._lock = threading.RLock()
        self._camps: dict[str, CampaignState] = {}
        # Built from _camps by _ensure (when _dirty): campaigns in market order, their positions, the
        # prepared market's rows, and their terms and money as arrays.
        self._dirty = True
        self._states: list[CampaignState] = []
        self._pos: dict[str, int] = {}
        self._rows: MarketRows | None = None
        self._terms: CampaignTerms | None = None
        self._removed = 0
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
            if old is not None and not self._dirty and state.id in self._pos and same_report(old, state):
                i = self._pos[state.id]
                self._states[i] = state
                self._terms.write_terms(i, state)
                self._terms.write_money(i, state)
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
            self._terms.remove(self._pos.pop(campaign_id))
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
                self._terms.write_money(self._pos[campaign_id], c)

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

    def get(self, campaign_id: str) -> CampaignState | None:
        with self._lock:
            return self._camps.get(campaign_id)

    def has_keyword(self, keyword: str) -> bool:
        with self._lock:
            self._ensure()
            return self._rows.has_keyword(keyword)

    def __len__(self) -> int:
        return len(self._camps)

    def _ensure(self) -> None:
        """Rebuild the prepared market from the campaigns when a report changed (call under the lock)."""
        if not self._dirty:
            return
        camps = sorted(self._camps.values(), key=lambda c: c.order)
        self._states = camps  # the states this market was built from, by position
        self._pos = {c.id: i for i, c in enumerate(camps)}
        self._rows = MarketRows(camps, threads=self.threads)
        self._terms = CampaignTerms(camps)
        self._removed = 0
        self._dirty = False
        self.rebuilds += 1

    # -- clearing ------------------------------------------------------------------------------------
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
            prepared = prepare_batch(queries, now, self._rows, self._terms, self._pos, n)
            # Clear outside the lock (NumPy releases the GIL): the prepared market is never mutated (a
            # rebuild makes a new one), and the masks are this call's own.
            rows, states = self._rows, self._states
        outcomes, cleared = clear_batch(prepared, rows, states, n)
        self.batches += len(cleared)
        self.batched_queries += sum(cleared)
        return outcomes
