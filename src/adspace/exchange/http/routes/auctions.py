"""Auctions, billing notices and clicks (publishers, each on its own auctions only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from adspace.exchange.core import schemas
from adspace.exchange.http.deps import ExchangeDep, Id, Publisher
from adspace.exchange.http.fastlane import auction_json, billing_json

router = APIRouter(prefix="/v1/auctions", tags=["auctions"])

# POST /v1/auctions and POST /v1/auctions/{auction_id}/billing are served by the fast lane
# (http/fastlane.py), which answers every request to them, errors included. Their routes below are the
# operations' contract in the OpenAPI document; they call the same two functions (auction_json,
# billing_json) and serve the operations only in an app built without the lane (ADSPACE_FAST_LANE=0).


@router.post("", response_model=schemas.AuctionResponse)
async def run_auction(body: schemas.AuctionRequest, ex: ExchangeDep, who: Publisher):
    """Run one auction for a conversation (`messages`) or a query `embedding`.

    The winner pays the Clarke pivot in whole micros (rounded down), never more than its bid and never
    less than `reserve_micros`. Its price is held against its budget until billed or expired.
    """
    return Response(await auction_json(ex, who, body), media_type="application/json")


@router.get("", response_model=list[schemas.AuctionOut])
def list_auctions(
    ex: ExchangeDep,
    who: Publisher,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    return ex.auction_reads.list(who, limit=limit, offset=offset)


@router.get("/{auction_id}", response_model=schemas.AuctionOut)
def get_auction(auction_id: Id, ex: ExchangeDep, who: Publisher):
    return ex.auction_reads.get(who, auction_id)


@router.post("/{auction_id}/billing", response_model=schemas.BillingResult)
async def bill(auction_id: Id, ex: ExchangeDep, who: Publisher):
    """The ad was shown: charge the winner. Exactly once; a repeat answers the same and charges nothing."""
    return Response(await billing_json(ex, who, auction_id), media_type="application/json")


@router.post("/{auction_id}/click", response_model=schemas.ClickResult)
def click(auction_id: Id, ex: ExchangeDep, who: Publisher):
    """The ad was clicked (recorded once, for reports; clicks are not charged)."""
    return ex.clicks.record(who, auction_id)
