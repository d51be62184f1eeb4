"""A snapshot of the market for the dashboard, read from the database, and the dashboard's cache.

:class:`Snapshot` holds every campaign (not deleted) in the exchange's market order with what the
dashboard shows and why each cannot compete now; :class:`DashboardCache` keeps campaign centers between
snapshots and the last :data:`RECENT_MAX` market-map queries since the server started (the exchange
does not store query embeddings).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

import numpy as np
from sqlalchemy import select

from adspace.exchange.core.common import Principal, as_utc, utcnow
from adspace.exchange.domain import visibility
from adspace.exchange.store import Store
from adspace.exchange.store.tables import Account, Campaign, CampaignKeyword

__all__ = ["DashboardCache", "RECENT_MAX", "Snapshot", "finite"]

#: How many market-map queries the process remembers for the projection.
RECENT_MAX = 500


class DashboardCache:
    """Campaign centers (keyed by id and ``updated_at``), so a snapshot reads only the changed ones, and
    the last :data:`RECENT_MAX` market-map queries of this process."""

    def __init__(self):
        self.lock = threading.Lock()
        self.centers: dict[str, tuple[Any, np.ndarray]] = {}
        self.recent: deque[dict] = deque(maxlen=RECENT_MAX)

    def remember(self, query: dict) -> None:
        """Keep a market-map query (its point ``x``, ``at``, ``by``, ``text``, ``winner_id``, ``ad_title``,
        ``auction_id``) for the projection."""
        with self.lock:
            self.recent.append(query)

    def recent_of(self, who: Principal, limit: int) -> list[dict]:
        """The last ``limit`` remembered queries the caller may see: its own, or every one for the admin."""
        with self.lock:
            return [q for q in self.recent if who.kind == "admin" or q["by"] == who.account_id][-limit:]


class Snapshot:
    """All campaigns (not deleted) in the exchange's market order, with what the dashboard shows."""

    def __init__(self, store: Store, cache: DashboardCache):
        now = utcnow()
        self.now = now
        with store.read() as s:
            rows = s.execute(
                select(
                    Campaign.id,
                    Campaign.advertiser_id,
                    Campaign.name,
                    Campaign.kind,
                    Campaign.sigma,
                    Campaign.bid_micros,
                    Campaign.budget_micros,
                    Campaign.daily_budget_micros,
                    Campaign.starts_at,
                    Campaign.ends_at,
                    Campaign.status,
                    Campaign.spent_micros,
                    Campaign.held_micros,
                    Campaign.daily_day,
                    Campaign.daily_used_micros,
                    Campaign.created_at,
                    Campaign.updated_at,
                    Campaign.creative_title,
                ).where(Campaign.deleted_at.is_(None))
            ).all()
            rows = sorted(rows, key=lambda r: (as_utc(r.created_at).timestamp(), r.id))
            self.names = dict(s.execute(select(Account.id, Account.name)).tuples().all())
            kw = s.execute(
                select(CampaignKeyword.campaign_id, CampaignKeyword.keyword, CampaignKeyword.point).order_by(
                    CampaignKeyword.id
                )
            ).all()
            have: dict[str, np.ndarray] = {}
            with cache.lock:
                for r in rows:
                    hit = cache.centers.get(r.id) if r.kind == "embedding" else None
                    if hit is not None and hit[0] == r.updated_at:
                        have[r.id] = hit[1]
            stale = [r.id for r in rows if r.kind == "embedding" and r.id not in have]
            fresh: dict[str, tuple[Any, np.ndarray]] = {}
            for lo in range(0, len(stale), 500):
                for cid, center, upd in s.execute(
                    select(Campaign.id, Campaign.center, Campaign.updated_at).where(
                        Campaign.id.in_(stale[lo : lo + 500])
                    )
                ):
                    fresh[cid] = (upd, np.frombuffer(center, dtype="<f8").astype(np.float64))
        with cache.lock:
            cache.centers.update(fresh)
            if len(cache.centers) > 2 * len(rows) + 1000:  # drop deleted campaigns now and then
                live = {r.id for r in rows}
                for cid in [c for c in cache.centers if c not in live]:
                    del cache.centers[cid]
        have.update({cid: v[1] for cid, v in fresh.items()})
        self.center = have
        self.rows = rows
        self.keywords: dict[str, list[str]] = {}
        self.kw_point: dict[str, np.ndarray] = {}
        pos = {r.id: i for i, r in enumerate(rows)}
        for cid, k, point in sorted(kw, key=lambda t: pos.get(t[0], 1 << 60)):
            if cid in pos:
                self.keywords.setdefault(cid, []).append(k)
                self.kw_point.setdefault(k, np.frombuffer(point, dtype="<f8").astype(np.float64))
        self.reason = [self._reason(r) for r in rows]

    def _reason(self, r) -> str | None:
        """Why a campaign cannot compete now (the exchange's order: paused, schedule, budget, daily)."""
        now, today = self.now, self.now.strftime("%Y-%m-%d")
        if r.status != "active":
            return "paused"
        starts, ends = as_utc(r.starts_at), as_utc(r.ends_at)
        if (starts is not None and now < starts) or (ends is not None and now >= ends):
            return "schedule"
        if r.budget_micros - r.spent_micros - r.held_micros < r.bid_micros:
            return "budget"
        used = r.daily_used_micros if r.daily_day == today else 0
        if r.daily_budget_micros is not None and used + r.bid_micros > r.daily_budget_micros:
            return "daily_budget"
        return None

    def visible(self, who: Principal, i: int) -> bool:
        return visibility.sees_campaign(who, self.rows[i].advertiser_id)

    def index(self, campaign_id: str) -> int | None:
        for i, r in enumerate(self.rows):
            if r.id == campaign_id:
                return i
        return None

    def embedding_rows(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r.kind == "embedding"]

    def describe(self, who: Principal, i: int) -> dict[str, Any]:
        r = self.rows[i]
        return {
            "campaign_id": r.id,
            "name": r.name,
            "advertiser_id": r.advertiser_id,
            "advertiser": self.names.get(r.advertiser_id, r.advertiser_id),
            "mine": who.kind == "advertiser" and r.advertiser_id == who.account_id,
            "kind": r.kind,
            "keywords": self.keywords.get(r.id) if r.kind == "keyword" else None,
            "sigma": r.sigma,
            "bid_micros": r.bid_micros,
            "status": r.status,
        }


def finite(v: float | None) -> float | None:
    """A float for JSON: ``None`` for ``None``, infinities and NaN."""
    return None if v is None or not math.isfinite(v) else float(v)
