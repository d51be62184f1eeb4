"""Which campaigns may compete now: their terms and money as arrays, and the reasons that leave them out.

A campaign competes when it is live (not removed), active, inside its schedule, has budget left for
its bid, and its daily budget (reset at UTC midnight) has room for its bid. :class:`CampaignTerms`
holds these columns for the campaigns of one built market, by market position, and keeps each
campaign's first reason to be left out up to date as money and terms change in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from adspace.exchange.domain.campaign_state import NEVER, CampaignState, day_number

__all__ = ["CAMPAIGN_REASONS", "EXCLUSION_REASONS", "CampaignTerms"]

#: Why a campaign was left out of an auction, in the order they are checked.
EXCLUSION_REASONS = ("paused", "schedule", "budget", "daily_budget", "publisher_holds", "keyword", "relevance")

#: Campaign-level reasons to be left out, in the order they are checked (the first counts).
CAMPAIGN_REASONS = ("paused", "schedule", "budget", "daily_budget")
_NOT_LIVE = len(CAMPAIGN_REASONS)  # a removed campaign (its rows stay until a rebuild)


@dataclass
class _Eligibility:
    """Each campaign's first reason to be left out (:meth:`CampaignTerms.first_reasons`), valid for the
    day ``today`` from ``now`` until ``until`` (the next start or end of a campaign's schedule), once
    the campaigns in ``changed`` are re-read."""

    first: np.ndarray
    today: int
    now: float
    until: float
    #: Positions of campaigns changed since ``first`` was last brought up to date (see ``_touch``).
    changed: set[int] = field(default_factory=set)


class CampaignTerms:
    """Status, schedule, budgets and money of the campaigns of one built market, by market position.

    ``arrays`` maps each column (``live``, ``active``, ``starts``, ``ends``, ``bid``, ``budget``, ``cap``
    (-1: no daily budget), ``spent``, ``held``, ``day``, ``used``) to an ``(N,)`` array.
    """

    def __init__(self, states: list[CampaignState]):
        n = len(states)
        self.arrays: dict[str, np.ndarray] = {
            "live": np.ones(n, dtype=bool),
            "active": np.zeros(n, dtype=bool),
            "starts": np.zeros(n, dtype=np.float64),
            "ends": np.zeros(n, dtype=np.float64),
            "bid": np.fromiter((c.bid_micros for c in states), dtype=np.int64, count=n),
            "budget": np.zeros(n, dtype=np.int64),
            "cap": np.zeros(n, dtype=np.int64),
            "spent": np.zeros(n, dtype=np.int64),
            "held": np.zeros(n, dtype=np.int64),
            "day": np.zeros(n, dtype=np.int64),
            "used": np.zeros(n, dtype=np.int64),
        }
        self._elig: _Eligibility | None = None  # see eligibility()
        for i, c in enumerate(states):
            self.write_terms(i, c)
            self.write_money(i, c)

    # -- changes in place ----------------------------------------------------------------------------
    def write_terms(self, i: int, c: CampaignState) -> None:
        """Campaign ``i``'s status, schedule and budgets from ``c``."""
        a = self.arrays
        a["active"][i] = c.status == "active"
        a["starts"][i], a["ends"][i] = c.starts_at, c.ends_at
        a["budget"][i] = c.budget_micros
        a["cap"][i] = -1 if c.daily_budget_micros is None else c.daily_budget_micros
        self._touch(i)

    def write_money(self, i: int, c: CampaignState) -> None:
        """Campaign ``i``'s spend, holds and daily use from ``c``."""
        a = self.arrays
        a["spent"][i], a["held"][i], a["used"][i] = c.spent_micros, c.held_micros, c.daily_used_micros
        a["day"][i] = day_number(c.daily_day)
        self._touch(i)

    def remove(self, i: int) -> None:
        """Campaign ``i`` is gone: never eligible again (its position stays until a rebuild)."""
        self.arrays["live"][i] = False
        self.arrays["active"][i] = False
        self._touch(i)

    def _touch(self, i: int) -> None:
        """Campaign ``i``'s arrays changed: the cached eligibility re-reads it before its next use."""
        if self._elig is not None:
            self._elig.changed.add(i)

    # -- eligibility ---------------------------------------------------------------------------------
    def reasons(
        self, now: float, today: int, idx: np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-campaign eligibility (before keyword and relevance) and the mask of each reason: of every
        campaign, or of the campaigns at positions ``idx``."""
        a = self.arrays if idx is None else {k: v[idx] for k, v in self.arrays.items()}
        used = np.where(a["day"] == today, a["used"], 0)
        sched_ok = (a["starts"] <= now) & (now < a["ends"])
        budget_ok = a["budget"] - a["spent"] - a["held"] >= a["bid"]
        daily_ok = (a["cap"] < 0) | (used + a["bid"] <= a["cap"])
        status_ok = a["active"]
        reasons = {"paused": ~status_ok, "schedule": ~sched_ok, "budget": ~budget_ok, "daily_budget": ~daily_ok}
        return a["live"] & status_ok & sched_ok & budget_ok & daily_ok, reasons

    def first_reasons(self, now: float, today: int, idx: np.ndarray | None = None) -> np.ndarray:
        """Per campaign (every one, or those at ``idx``), the first of :data:`CAMPAIGN_REASONS` that
        leaves it out (its index), ``-1`` when it is eligible, ``len(CAMPAIGN_REASONS)`` when removed."""
        _, reasons = self.reasons(now, today, idx)
        live = self.arrays["live"] if idx is None else self.arrays["live"][idx]
        first = np.full(len(live), -1, dtype=np.int8)
        for k in range(len(CAMPAIGN_REASONS) - 1, -1, -1):  # the first reason is written last
            first[reasons[CAMPAIGN_REASONS[k]]] = k
        first[~live] = _NOT_LIVE
        return first

    def eligibility(self, now: datetime) -> tuple[np.ndarray, dict[str, int], np.ndarray]:
        """Campaign eligibility before keyword and relevance, the counts of each reason, and who is left.

        Computed over every campaign only when the day changes or a campaign's schedule starts or
        ends; in between, only the campaigns whose money or terms changed since the last call
        (:meth:`_touch`) are re-read, so a busy exchange does not rescan every campaign for each batch.
        """
        t, today = now.timestamp(), now.date().toordinal()
        a = self.arrays
        c = self._elig
        if c is not None and c.today == today and c.changed:
            idx = np.fromiter(c.changed, dtype=np.intp, count=len(c.changed))
            c.changed.clear()
            c.first[idx] = self.first_reasons(c.now, c.today, idx)
            bounds = np.concatenate([a["starts"][idx], a["ends"][idx]])
            bounds = bounds[bounds > c.now]
            if bounds.size:
                c.until = min(c.until, float(bounds.min()))
        if c is None or c.today != today or not (c.now <= t < c.until):
            later = np.concatenate([a["starts"][a["starts"] > t], a["ends"][a["ends"] > t]])
            c = self._elig = _Eligibility(
                self.first_reasons(t, today), today, t, float(later.min()) if later.size else NEVER
            )
        counts = np.bincount(c.first.astype(np.intp) + 1, minlength=_NOT_LIVE + 2)
        camp_ok = c.first == -1
        return camp_ok, {name: int(counts[k + 1]) for k, name in enumerate(CAMPAIGN_REASONS)}, camp_ok
