"""One campaign as the in-memory market holds it: a copy of its database row.

:class:`CampaignState` is what :class:`~adspace.exchange.domain.live_market.LiveMarket` caches per
campaign; :func:`same_report` tells whether a new state changes the report (center, σ, bid, keywords),
which rebuilds the prepared market, or only its terms and money, which change in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

__all__ = ["CampaignState", "NEVER", "day_number", "same_report"]

#: A schedule bound that never comes (an open start or end).
NEVER = float("inf")


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
    starts_at: float = -NEVER  # POSIX seconds
    ends_at: float = NEVER
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


def same_report(a: CampaignState, b: CampaignState) -> bool:
    """Whether two states of a campaign report the same (center, σ, bid, keywords): no rebuild needed."""
    if a.kind != b.kind or a.bid_micros != b.bid_micros or a.sigma != b.sigma or a.order != b.order:
        return False
    if (a.center is None) != (b.center is None) or (a.center is not None and not np.array_equal(a.center, b.center)):
        return False
    return a.keywords.keys() == b.keywords.keys() and all(
        np.array_equal(a.keywords[k], b.keywords[k]) for k in a.keywords
    )


def day_number(day: str | None) -> int:
    """``"YYYY-MM-DD"`` -> proleptic ordinal (0 for none)."""
    return 0 if not day else date.fromisoformat(day).toordinal()
