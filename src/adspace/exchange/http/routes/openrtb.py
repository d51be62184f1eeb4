"""OpenRTB 2.6: ``POST /openrtb2/auction`` (publisher) and the notice URLs it hands out."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Response

from adspace.exchange.domain import openrtb_mapping as openrtb
from adspace.exchange.http.deps import ExchangeDep, Id, Publisher
from adspace.exchange.services.auctions import AuctionAsk

router = APIRouter(tags=["openrtb"])


@router.post(
    "/openrtb2/auction",
    responses={
        204: {"description": "No bid"},
        400: {"description": "Malformed request (the field is named)"},
    },
)
def auction(
    ex: ExchangeDep,
    who: Publisher,
    request: Annotated[dict[str, Any], Body(description="An OpenRTB 2.6 BidRequest with native imps")],
) -> Any:
    """Run one embedding-space VCG auction (`at` = 501) per native imp; 204 when nothing is bid."""
    try:
        req = openrtb.parse_request(request, ex.settings.currency)
    except openrtb.RtbError as exc:
        raise HTTPException(400, str(exc)) from None
    except openrtb.NoBid as exc:
        return openrtb.no_bid(exc)
    if req["embedding"] is None and req["text"] is None and not req["keywords"]:
        raise HTTPException(400, "user.data[].segment[].ext.aa | ext.adspace.text | site.content: no query given")
    bids = []
    for imp_id, reserve in req["imps"]:
        token = secrets.token_urlsafe(16)
        result = ex.auctions.run(
            AuctionAsk(
                who,
                embedding=None if req["embedding"] is None else req["embedding"].tolist(),
                text=req["text"],
                keywords=req["keywords"],
                reserve_micros=reserve,
                source="openrtb",
                notice_token=token,
            )
        )
        camp = result.campaign
        if result.filled and result.price_micros >= 0:
            bids.append(
                openrtb.bid(
                    base=ex.settings.public_url,
                    auction_id=result.auction_id,
                    token=token,
                    imp_id=imp_id,
                    price_micros=result.price_micros,
                    campaign_id=camp.id,
                    title=camp.title,
                    body=camp.body,
                    url=camp.url,
                    explain=result.explain,
                )
            )
    if not bids:
        return Response(status_code=204)
    return openrtb.response(req["id"], bids, ex.settings.currency)


@router.get("/openrtb2/notice/{kind}/{auction_id}", status_code=200, responses={204: {"description": "Noted"}})
def notice(
    kind: openrtb.NoticeKind,
    auction_id: Id,
    ex: ExchangeDep,
    t: Annotated[
        str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The auction's notice token")
    ],
) -> Any:
    """nurl (`win`), burl (`billing`: settles exactly like the billing endpoint) and lurl (`loss`: releases the hold).

    Fired by ad servers without an API key: the token in the URL authenticates. Macro parameters
    (price, currency, ...) are accepted and ignored; the charge is the exchange's clearing price.
    """
    result = ex.billing.notice(kind, auction_id, t)
    if result is None:
        return Response(status_code=204)
    return result
