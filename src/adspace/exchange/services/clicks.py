"""Clicks: a publisher records a click on an ad it showed (a billed auction), once."""

from __future__ import annotations

from adspace.exchange.core import schemas
from adspace.exchange.core.common import Conflict, NotFound, Principal, as_utc, utcnow
from adspace.exchange.store import Store
from adspace.exchange.store.billing_sql import CLICK
from adspace.exchange.store.tables import Auction

__all__ = ["ClickService"]


class ClickService:
    """Records clicks through the group-commit writer."""

    def __init__(self, store: Store):
        self.store = store

    def record(self, who: Principal, auction_id: str) -> schemas.ClickResult:
        """Record a click on a billed (shown) ad, once; a repeat returns the first click's time."""
        now = utcnow()
        params = {"p_auction": auction_id, "p_publisher": who.account_id, "p_now": now}
        self.store.writer.submit(lambda conn: conn.execute(CLICK, params).rowcount)
        with self.store.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            if a.clicked_at is None:
                raise Conflict(f"auction_id: auction is {a.status}; a click needs a billed impression (bill it first)")
            return schemas.ClickResult(auction_id=a.id, clicked_at=as_utc(a.clicked_at))
