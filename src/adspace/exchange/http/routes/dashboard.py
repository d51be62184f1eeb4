"""The dashboard: its page at ``/`` and the JSON views it needs that the REST API does not have.

HTTP only: each view parses its query, calls :class:`adspace.exchange.services.dashboard.market_views.DashboardService`
(where the views and the visibility rules live) and returns its answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from adspace.exchange.core import schemas
from adspace.exchange.http.deps import Admin, Caller, ExchangeDep, Publisher
from adspace.exchange.services.dashboard.snapshot import RECENT_MAX

__all__ = ["router", "STATIC"]

STATIC = Path(__file__).resolve().parents[2] / "static"
_ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}

router = APIRouter(tags=["dashboard"])


# -- the page --------------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/{name}", include_in_schema=False)
def asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise HTTPException(404, f"name: no dashboard asset {name!r}")
    return FileResponse(STATIC / name, media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.post("/v1/dashboard/market")
def market_map(body: schemas.MarketQuery, ex: ExchangeDep, who: Caller) -> dict[str, Any]:
    """Every campaign's score and reported value at a query, the winner, the price and why.

    ``run: true`` (publishers) also runs the real auction at the same point, exactly as
    ``POST /v1/auctions`` would (held against the winner's budget, billable).
    """
    return ex.dashboard.market_map(body, who)


@router.post("/v1/dashboard/slice")
def market_slice(body: schemas.SliceQuery, ex: ExchangeDep, who: Caller) -> dict[str, Any]:
    """Scores along the line through two points: the upper envelope of score parabolas, who wins where."""
    return ex.dashboard.market_slice(body, who)


@router.get("/v1/dashboard/projection")
def projection(ex: ExchangeDep, who: Caller, limit: Annotated[int, Query(ge=1, le=RECENT_MAX)] = 200) -> dict[str, Any]:
    """Campaign centers on the market's two principal axes, with the caller's recent queries."""
    return ex.dashboard.projection(who, limit)


@router.get("/v1/dashboard/series")
def series(ex: ExchangeDep, who: Caller, window: Literal["1h", "24h", "7d", "30d"] = "24h") -> dict[str, Any]:
    """The caller's activity per time bucket (advertiser, publisher, or the whole exchange for the admin)."""
    return ex.activity.series(who, window)


@router.get("/v1/dashboard/auctions")
def auction_log(
    ex: ExchangeDep,
    who: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    status: Literal["no_fill", "held", "billed", "expired"] | None = None,
) -> dict[str, Any]:
    """Admin: every publisher's auctions, newest first, with publisher, campaign and advertiser names."""
    return ex.activity.auction_log(who, limit=limit, offset=offset, status=status)


@router.get("/v1/dashboard/publisher/auctions")
def publisher_auctions(
    ex: ExchangeDep,
    who: Publisher,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> dict[str, Any]:
    """Publisher: its own auctions, newest first, with the title of the ad each one showed."""
    return ex.activity.publisher_auctions(who, limit=limit, offset=offset)


@router.get("/v1/dashboard/accounts")
def accounts(ex: ExchangeDep, _: Admin) -> dict[str, Any]:
    """Admin: advertisers and publishers with campaigns, auctions, spend or revenue, and ledger balance."""
    return ex.activity.accounts()
