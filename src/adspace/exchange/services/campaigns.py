"""Campaigns: create, read, update, pause, delete; and the in-memory market they feed.

Every committed change is applied to the :class:`~adspace.exchange.domain.live_market.LiveMarket` before the
request that made it returns, so the next auction sees it.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from adspace.exchange.core import schemas
from adspace.exchange.core.apikeys import new_id
from adspace.exchange.core.common import Conflict, NotFound, Principal, ServiceError, as_utc, utcnow, vec, vec_bytes
from adspace.exchange.domain.live_market import CampaignState, LiveMarket
from adspace.exchange.store import Store
from adspace.exchange.store.tables import Campaign, CampaignKeyword

__all__ = ["CampaignService", "campaign_state"]


def campaign_state(c: Campaign, keywords: dict[str, np.ndarray]) -> CampaignState:
    """The market's copy of a campaign row."""
    starts, ends = as_utc(c.starts_at), as_utc(c.ends_at)
    return CampaignState(
        id=c.id,
        advertiser_id=c.advertiser_id,
        kind=c.kind,
        center=None if c.center is None else vec(c.center),
        sigma=c.sigma,
        keywords=keywords,
        bid_micros=c.bid_micros,
        budget_micros=c.budget_micros,
        daily_budget_micros=c.daily_budget_micros,
        starts_at=starts.timestamp() if starts else float("-inf"),
        ends_at=ends.timestamp() if ends else float("inf"),
        status=c.status,
        spent_micros=c.spent_micros,
        held_micros=c.held_micros,
        daily_day=c.daily_day,
        daily_used_micros=c.daily_used_micros,
        money_version=c.money_version,
        title=c.creative_title,
        body=c.creative_body,
        url=c.creative_url,
        order=(as_utc(c.created_at).timestamp(), c.id),
        updated=as_utc(c.updated_at).timestamp() if c.updated_at is not None else 0.0,
    )


class CampaignService:
    """Campaign use cases (advertisers, each on its own campaigns) and the market cache they feed."""

    def __init__(self, store: Store, market: LiveMarket, embed):
        self.store = store
        self.market = market
        self.embed = embed  # texts -> (n, d) float64, raising Unavailable when the model cannot load

    def load(self) -> None:
        """Fill the in-memory market from the database (at start)."""
        with self.store.read() as s:
            camps = s.scalars(select(Campaign).where(Campaign.deleted_at.is_(None))).all()
            kws = s.scalars(select(CampaignKeyword)).all()
        by_campaign: dict[str, dict[str, np.ndarray]] = {}
        for k in kws:
            by_campaign.setdefault(k.campaign_id, {})[k.keyword] = vec(k.point)
        for c in camps:
            self.market.upsert(campaign_state(c, by_campaign.get(c.id, {})))

    def _out(self, c: Campaign, keywords: list[str] | None) -> schemas.CampaignOut:
        return schemas.CampaignOut(
            id=c.id,
            advertiser_id=c.advertiser_id,
            name=c.name,
            kind=c.kind,
            description=c.description,
            keywords=keywords if c.kind == "keyword" else None,
            sigma=c.sigma,
            bid_micros=c.bid_micros,
            budget_micros=c.budget_micros,
            daily_budget_micros=c.daily_budget_micros,
            starts_at=as_utc(c.starts_at),
            ends_at=as_utc(c.ends_at),
            status=c.status,
            creative={"title": c.creative_title, "body": c.creative_body, "url": c.creative_url},
            spent_micros=c.spent_micros,
            held_micros=c.held_micros,
            remaining_micros=c.budget_micros - c.spent_micros - c.held_micros,
            created_at=as_utc(c.created_at),
            updated_at=as_utc(c.updated_at),
        )

    def _keyword_points(self, keywords: list[str]) -> dict[str, np.ndarray]:
        """Each keyword's point: the existing one if campaigns already bid on it, else its embedding."""
        points: dict[str, np.ndarray] = {}
        todo = []
        with self.store.read() as s:
            for k in keywords:
                row = s.scalars(select(CampaignKeyword.point).where(CampaignKeyword.keyword == k).limit(1)).first()
                if row is not None:
                    points[k] = vec(row)
                else:
                    todo.append(k)
        if todo:
            for k, v in zip(todo, self.embed(todo), strict=True):
                points[k] = v
        return points

    def create(self, who: Principal, body: schemas.CampaignCreate) -> schemas.CampaignOut:
        now = utcnow()
        center = None
        points: dict[str, np.ndarray] = {}
        if body.description is not None:
            center = self.embed([body.description])[0]
        elif body.embedding is not None:
            center = np.asarray(body.embedding, dtype=np.float64)
        else:
            points = self._keyword_points(body.keywords)
        c = Campaign(
            id=new_id("cmp"),
            advertiser_id=who.account_id,
            name=body.name,
            kind="keyword" if body.keywords is not None else "embedding",
            description=body.description,
            center=None if center is None else vec_bytes(center),
            sigma=body.sigma,
            bid_micros=body.bid_micros,
            budget_micros=body.budget_micros,
            daily_budget_micros=body.daily_budget_micros,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            status=body.status,
            creative_title=body.creative.title,
            creative_body=body.creative.body,
            creative_url=body.creative.url,
            spent_micros=0,
            held_micros=0,
            daily_day=None,
            daily_used_micros=0,
            money_version=0,
            created_at=now,
            updated_at=now,
        )
        with self.store.tx() as s:
            s.add(c)
            s.flush()
            for k, p in points.items():
                s.add(CampaignKeyword(campaign_id=c.id, keyword=k, point=vec_bytes(p)))
        self.market.upsert(campaign_state(c, points))
        return self._out(c, list(points) or None)

    def _owned(self, s: Session, who: Principal, campaign_id: str, *, lock: bool = False) -> Campaign:
        q = select(Campaign).where(
            Campaign.id == campaign_id, Campaign.advertiser_id == who.account_id, Campaign.deleted_at.is_(None)
        )
        if lock:
            q = q.with_for_update()
        c = s.scalars(q).first()
        if c is None:
            raise NotFound(f"campaign_id: no campaign {campaign_id!r} of yours")
        return c

    def _keywords_of(self, s: Session, campaign_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if campaign_ids:
            for k in s.scalars(select(CampaignKeyword).where(CampaignKeyword.campaign_id.in_(campaign_ids))):
                out.setdefault(k.campaign_id, []).append(k.keyword)
        return out

    def list(self, who: Principal, *, status: str | None, limit: int, offset: int) -> list[schemas.CampaignOut]:
        with self.store.read() as s:
            q = select(Campaign).where(Campaign.advertiser_id == who.account_id, Campaign.deleted_at.is_(None))
            if status:
                q = q.where(Campaign.status == status)
            rows = s.scalars(q.order_by(Campaign.created_at, Campaign.id).limit(limit).offset(offset)).all()
            kws = self._keywords_of(s, [c.id for c in rows if c.kind == "keyword"])
            return [self._out(c, kws.get(c.id)) for c in rows]

    def get(self, who: Principal, campaign_id: str) -> schemas.CampaignOut:
        with self.store.read() as s:
            c = self._owned(s, who, campaign_id)
            return self._out(c, self._keywords_of(s, [c.id]).get(c.id))

    def update(self, who: Principal, campaign_id: str, body: schemas.CampaignUpdate) -> schemas.CampaignOut:
        fields = body.model_fields_set
        center = None
        points: dict[str, np.ndarray] | None = None
        with self.store.read() as s:  # validate against the stored campaign before any slow work
            c = self._owned(s, who, campaign_id)
            kind = c.kind
        if kind == "keyword" and ({"description", "embedding", "sigma"} & fields):
            bad = sorted({"description", "embedding", "sigma"} & fields)[0]
            raise Conflict(f"{bad}: not a field of a keyword campaign (σ → 0); create an embedding campaign instead")
        if kind == "embedding" and "keywords" in fields:
            raise Conflict("keywords: not a field of an embedding campaign; create a keyword campaign instead")
        if body.description is not None:
            center = self.embed([body.description])[0]
        elif body.embedding is not None:
            center = np.asarray(body.embedding, dtype=np.float64)
        if body.keywords is not None:
            points = self._keyword_points(body.keywords)
        with self.store.tx() as s:
            c = self._owned(s, who, campaign_id, lock=True)
            for name in (
                "name",
                "sigma",
                "bid_micros",
                "budget_micros",
                "daily_budget_micros",
                "starts_at",
                "ends_at",
                "status",
            ):
                if name in fields:
                    setattr(c, name, getattr(body, name))
            if body.description is not None:
                c.description, c.center = body.description, vec_bytes(center)
            elif body.embedding is not None:
                c.description, c.center = None, vec_bytes(center)
            if body.creative is not None:
                c.creative_title, c.creative_body, c.creative_url = (
                    body.creative.title,
                    body.creative.body,
                    body.creative.url,
                )
            starts, ends = as_utc(c.starts_at), as_utc(c.ends_at)
            if starts is not None and ends is not None and ends <= starts:
                raise ServiceError("ends_at: must be later than starts_at")
            c.updated_at = utcnow()
            if points is not None:
                for k in s.scalars(select(CampaignKeyword).where(CampaignKeyword.campaign_id == c.id)):
                    s.delete(k)
                s.flush()
                for k, p in points.items():
                    s.add(CampaignKeyword(campaign_id=c.id, keyword=k, point=vec_bytes(p)))
            s.flush()
            kw_rows = s.scalars(select(CampaignKeyword).where(CampaignKeyword.campaign_id == c.id)).all()
            kw_points = {k.keyword: vec(k.point) for k in kw_rows}
        self.market.upsert(campaign_state(c, kw_points))
        return self._out(c, list(kw_points) or None)

    def delete(self, who: Principal, campaign_id: str) -> None:
        """Soft delete: the campaign leaves the market; its auctions, ledger and reports stay."""
        with self.store.tx() as s:
            c = self._owned(s, who, campaign_id, lock=True)
            c.deleted_at = utcnow()
            c.status = "deleted"
        self.market.remove(campaign_id)
