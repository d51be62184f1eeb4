"""Reports and the ledger (each caller sees its own)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from adspace.exchange.core import schemas
from adspace.exchange.http.deps import Admin, Advertiser, Caller, ExchangeDep

router = APIRouter(prefix="/v1", tags=["reports"])


@router.get(
    "/reports/campaigns",
    response_model=schemas.CampaignReportPage,
    responses={200: {"content": {"text/csv": {}}}},
)
def campaign_report(ex: ExchangeDep, who: Advertiser, format: Literal["json", "csv"] = "json"):  # noqa: A002
    """Per campaign: wins, impressions (billed), clicks, spend and average price (micros)."""
    page = ex.reports.campaigns(who)
    if format == "json":
        return page
    buf = io.StringIO()
    cols = list(schemas.CampaignReport.model_fields)
    w = csv.writer(buf)
    w.writerow(cols)
    for r in page.campaigns:
        w.writerow([getattr(r, c) for c in cols])
    return Response(
        buf.getvalue(), media_type="text/csv", headers={"Content-Disposition": "attachment; filename=campaigns.csv"}
    )


@router.get("/ledger", response_model=schemas.LedgerPage)
def ledger(
    ex: ExchangeDep,
    who: Caller,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """Your ledger account's postings (the admin sees the exchange's), oldest first, and its balance."""
    return ex.ledger.page(who, after=after, limit=limit)


@router.get("/ledger/check")
def ledger_check(ex: ExchangeDep, _: Admin) -> dict:
    """Admin: the ledger's invariants (postings sum to zero, one charge per billed auction, spend = prices)."""
    return ex.ledger.check()


@router.get("/stats")
def stats(ex: ExchangeDep, _: Admin) -> dict:
    """Admin: this process's counters (auctions; seconds spent embedding, clearing and in the database)."""
    return ex.stats()
