"""Reports: an advertiser's per-campaign outcomes (wins, impressions, clicks, spend).

The process's own counters for the admin are :meth:`adspace.exchange.container.Exchange.stats`.
"""

from __future__ import annotations

from sqlalchemy import case, func, select

from adspace.exchange.core import schemas
from adspace.exchange.core.common import Principal
from adspace.exchange.store import Store
from adspace.exchange.store.tables import Auction, Campaign

__all__ = ["ReportService"]


class ReportService:
    """Read-only aggregates (never a write)."""

    def __init__(self, store: Store):
        self.store = store

    def campaigns(self, who: Principal) -> schemas.CampaignReportPage:
        with self.store.read() as s:
            camps = s.scalars(
                select(Campaign)
                .where(Campaign.advertiser_id == who.account_id)
                .order_by(Campaign.created_at, Campaign.id)
            ).all()
            billed = Auction.status == "billed"
            stats = {
                r.campaign_id: r
                for r in s.execute(
                    select(
                        Auction.campaign_id,
                        func.count().label("wins"),
                        func.coalesce(func.sum(case((billed, 1), else_=0)), 0).label("impressions"),
                        func.coalesce(func.sum(case((Auction.clicked_at.is_not(None), 1), else_=0)), 0).label("clicks"),
                        func.coalesce(func.sum(case((billed, Auction.price_micros), else_=0)), 0).label("spend"),
                    )
                    .where(Auction.advertiser_id == who.account_id, Auction.filled.is_(True))
                    .group_by(Auction.campaign_id)
                )
            }
        out = []
        for c in camps:
            r = stats.get(c.id)
            wins, imps, clicks, spend = (
                (int(r.wins), int(r.impressions), int(r.clicks), int(r.spend)) if r else (0, 0, 0, 0)
            )
            out.append(
                schemas.CampaignReport(
                    campaign_id=c.id,
                    name=c.name,
                    status=c.status,
                    wins=wins,
                    impressions=imps,
                    clicks=clicks,
                    spend_micros=spend,
                    avg_price_micros=spend // imps if imps else 0,
                    ctr=clicks / imps if imps else 0.0,
                )
            )
        return schemas.CampaignReportPage(campaigns=out)
