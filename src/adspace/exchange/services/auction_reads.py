"""A publisher's own auctions, read back as each role may see them."""

from __future__ import annotations

import json

from sqlalchemy import select

from adspace.exchange.core import schemas
from adspace.exchange.core.common import NotFound, Principal, as_utc
from adspace.exchange.domain.visibility import explain_for
from adspace.exchange.store import Store
from adspace.exchange.store.tables import Auction

__all__ = ["AuctionReads", "auction_out"]


class AuctionReads:
    """``GET /v1/auctions`` and ``GET /v1/auctions/{auction_id}``: a publisher's auctions, newest first."""

    def __init__(self, store: Store):
        self.store = store

    def get(self, who: Principal, auction_id: str) -> schemas.AuctionOut:
        with self.store.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            return auction_out(who, a)

    def list(self, who: Principal, *, limit: int, offset: int) -> list[schemas.AuctionOut]:
        with self.store.read() as s:
            rows = s.scalars(
                select(Auction)
                .where(Auction.publisher_id == who.account_id)
                .order_by(Auction.created_at.desc(), Auction.id)
                .limit(limit)
                .offset(offset)
            )
            return [auction_out(who, a) for a in rows]


def auction_out(who: Principal, a: Auction) -> schemas.AuctionOut:
    """An auction's row as ``who`` sees it (the stored explanation cut by
    :func:`~adspace.exchange.domain.visibility.explain_for`)."""
    return schemas.AuctionOut(
        auction_id=a.id,
        created_at=as_utc(a.created_at),
        expires_at=as_utc(a.expires_at),
        source=a.source,
        filled=a.filled,
        status=a.status,
        campaign_id=a.campaign_id,
        price_micros=a.price_micros,
        billed_at=as_utc(a.billed_at),
        clicked_at=as_utc(a.clicked_at),
        explain=explain_for(who, json.loads(a.explain), winner_advertiser_id=a.advertiser_id),
    )
