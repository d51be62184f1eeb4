"""Giving holds back: auctions whose billing window closed (a sweeper thread), and lost auctions.

An auction's price is held against the winner's budget until it is billed. When the billing window
closes unbilled (or an OpenRTB loss notice arrives) the auction flips ``held -> expired`` and the hold
goes back to the campaign, in one op of the group-commit writer; the in-memory market and the
publishers' hold counts follow.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from adspace.exchange.core.common import as_utc, utcnow
from adspace.exchange.core.config import Settings
from adspace.exchange.domain.live_market import LiveMarket
from adspace.exchange.services.holds import PublisherHolds
from adspace.exchange.store import Store
from adspace.exchange.store.billing_sql import FLIP_EXPIRED, FLIP_LOST, UNHOLD
from adspace.exchange.store.money_sql import money_of
from adspace.exchange.store.tables import Auction

__all__ = ["HoldExpiry"]

log = logging.getLogger("adspace.exchange")


class HoldExpiry:
    """Releases expired and lost holds; :meth:`start` runs :meth:`release_expired` every
    ``settings.sweep_seconds`` on a daemon thread."""

    def __init__(self, store: Store, market: LiveMarket, settings: Settings, holds: PublisherHolds):
        self.store = store
        self.market = market
        self.settings = settings
        self.holds = holds
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def release_expired(self, *, limit: int = 500) -> int:
        """Release the holds of auctions whose billing window closed. Returns how many were released."""
        now = utcnow()
        with self.store.read() as s:
            ids = s.scalars(
                select(Auction.id).where(Auction.status == "held", Auction.expires_at <= now).limit(limit)
            ).all()
        return sum(self.release(auction_id, expired_by=now) for auction_id in ids)

    def release(self, auction_id: str, *, expired_by: datetime | None) -> bool:
        """Move a held auction to ``expired`` and give its hold back (only if still held; ``expired_by``
        None: lost, whatever its billing window)."""

        def op(conn: Connection):
            if expired_by is None:
                got = conn.execute(FLIP_LOST, {"p_auction": auction_id}).first()
            else:
                got = conn.execute(FLIP_EXPIRED, {"p_auction": auction_id, "p_by": expired_by}).first()
            if got is None:
                return None
            price, campaign_id, day = got
            money = conn.execute(UNHOLD, {"p_campaign": campaign_id, "p_price": price, "p_day": day}).first()
            return campaign_id, money

        done = self.store.writer.submit(op)
        if done is None:
            return False
        self.market.set_money(done[0], **money_of(done[1]))
        self.holds.release(auction_id)
        return True

    def held(self) -> list[tuple]:
        """Every held auction ``(id, publisher_id, campaign_id, price_micros, expires_at)`` (at start)."""
        with self.store.read() as s:
            rows = s.execute(
                select(
                    Auction.id, Auction.publisher_id, Auction.campaign_id, Auction.price_micros, Auction.expires_at
                ).where(Auction.status == "held")
            ).all()
        return [(aid, pub, cid, price, as_utc(exp)) for aid, pub, cid, price, exp in rows]

    # -- the sweeper thread --------------------------------------------------------------------------
    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="adspace-sweeper", daemon=True)
            self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_seconds):
            try:
                self.release_expired()
            except Exception:  # pragma: no cover - logged and retried on the next tick
                log.exception("releasing expired holds failed")
