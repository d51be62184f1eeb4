"""Campaigns: an advertiser's own, and no one else's (a foreign id answers 404)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from adspace.exchange.core import schemas
from adspace.exchange.http.deps import Advertiser, ExchangeDep, Id

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@router.post("", status_code=201, response_model=schemas.CampaignOut)
def create_campaign(body: schemas.CampaignCreate, ex: ExchangeDep, who: Advertiser):
    """Create a campaign: a `description` (embedded to the center), an `embedding` (384 numbers) or `keywords`."""
    return ex.campaigns.create(who, body)


@router.post("/reach", response_model=schemas.ReachResult)
def reach(body: schemas.ReachRequest, ex: ExchangeDep, who: Advertiser):
    """Propose a center and σ from example conversations, and preview what the campaign would win.

    The center is the mean embedding of `customers`; σ is the maximum-likelihood fit of the Gaussian
    value model to customers and `non_customers` (without them: the σ at which the median customer is
    worth half the bid). With `bid_micros`, the `queries` (default: the examples) are cleared against
    the live market with the campaign added: which it would win, at what price (Clarke pivot), and the
    bid that would win the others. Nothing is charged or recorded.
    """
    return ex.reach.reach(who, body)


@router.get("", response_model=list[schemas.CampaignOut])
def list_campaigns(
    ex: ExchangeDep,
    who: Advertiser,
    status: Literal["active", "paused"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    return ex.campaigns.list(who, status=status, limit=limit, offset=offset)


@router.get("/{campaign_id}", response_model=schemas.CampaignOut)
def get_campaign(campaign_id: Id, ex: ExchangeDep, who: Advertiser):
    return ex.campaigns.get(who, campaign_id)


@router.patch("/{campaign_id}", response_model=schemas.CampaignOut)
def update_campaign(campaign_id: Id, body: schemas.CampaignUpdate, ex: ExchangeDep, who: Advertiser):
    """Change a campaign; the next auction sees the change."""
    return ex.campaigns.update(who, campaign_id, body)


@router.delete("/{campaign_id}", status_code=204)
def delete_campaign(campaign_id: Id, ex: ExchangeDep, who: Advertiser):
    """Remove a campaign from the market (its history stays in reports and the ledger)."""
    ex.campaigns.delete(who, campaign_id)
    return Response(status_code=204)
