"""Per-publisher caps on outstanding holds: one publisher cannot lock an advertiser's budget.

The attack: a won auction holds its price against the winner's budget until it is billed or expires
(``hold_seconds``, 15 minutes by default). A publisher that runs auctions it never bills keeps the
budget held: a few hundred requests take a campaign out of every other publisher's auctions for the
whole hold period (``benchmarks/budget_griefing.py`` measures it).

The bound: a publisher's outstanding holds against one campaign may not exceed
``max(publisher_hold_cap_bps / 10,000 x budget, bid)`` (at least one auction's worth). A publisher at
its cap simply no longer sees that campaign in its auctions (counted under ``publisher_holds`` in the
explain) until it bills or its holds expire; every other publisher still does. With the default 10 %
one publisher locks at most a tenth of a campaign's budget; ``k`` publisher accounts (each created by
the admin) lock at most ``k`` tenths.

The counts live in memory (no database round trip on the auction path): a hold is added when the
auction commits and removed when it is billed, lost or released here. Each entry also expires on its
own at the hold's ``expires_at``, so holds settled by another exchange process (several processes on
one PostgreSQL database) never cap a publisher for longer than the hold period; each process counts
the holds it made, so with ``n`` processes the bound is ``n`` times the cap. At start the counts are
rebuilt from the held auctions in the database.
"""

from __future__ import annotations

import heapq
import threading
from datetime import datetime

from adspace.exchange.domain.live_market import CampaignState

__all__ = ["PublisherHolds"]


class PublisherHolds:
    """Outstanding held micros per (publisher, campaign), and per publisher the campaigns at the cap."""

    def __init__(self, cap_bps: int):
        self.cap_bps = int(cap_bps)
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], int] = {}
        self._auctions: dict[str, tuple[str, str, int, float]] = {}  # id -> (publisher, campaign, price, expires)
        self._expiry: list[tuple[float, str]] = []  # heap of (expires POSIX seconds, auction id)
        self._capped: dict[str, dict[str, tuple[int, int]]] = {}  # publisher -> {campaign: (cap, bid)}

    @property
    def enabled(self) -> bool:
        return self.cap_bps < 10_000

    def cap(self, camp: CampaignState) -> int:
        return max(camp.budget_micros * self.cap_bps // 10_000, camp.bid_micros)

    def capped(self, publisher_id: str, now: datetime) -> frozenset[str]:
        """The campaigns this publisher's next auction must leave out (usually none: one dict lookup)."""
        if self._expiry and self._expiry[0][0] <= now.timestamp():
            self._expire(now.timestamp())
        if not self._capped.get(publisher_id):
            return frozenset()
        with self._lock:
            return frozenset(self._capped.get(publisher_id, ()))

    def add(self, auction_id: str, publisher_id: str, camp: CampaignState, price: int, expires_at: datetime) -> None:
        """A committed hold of ``price`` against ``camp`` by ``publisher_id``."""
        if not self.enabled:
            return
        with self._lock:
            key = (publisher_id, camp.id)
            self._held[key] = self._held.get(key, 0) + int(price)
            self._auctions[auction_id] = (publisher_id, camp.id, int(price), expires_at.timestamp())
            heapq.heappush(self._expiry, (expires_at.timestamp(), auction_id))
            cap = self.cap(camp)
            if self._held[key] + camp.bid_micros > cap:
                self._capped.setdefault(publisher_id, {})[camp.id] = (cap, camp.bid_micros)

    def release(self, auction_id: str) -> None:
        """The hold of ``auction_id`` was billed, lost or expired (no-op if not counted here)."""
        with self._lock:
            self._drop(auction_id)

    def load(self, rows, campaigns) -> None:
        """At start: ``rows`` of held auctions ``(id, publisher_id, campaign_id, price, expires_at)``;
        ``campaigns(id)`` gives a campaign's state (or ``None``)."""
        for aid, pub, cid, price, expires in rows:
            camp = campaigns(cid)
            if camp is not None:
                self.add(aid, pub, camp, price, expires)

    def _drop(self, auction_id: str) -> None:
        got = self._auctions.pop(auction_id, None)
        if got is None:
            return
        pub, cid, price, _ = got
        key = (pub, cid)
        left = self._held.get(key, 0) - price
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)
        caps = self._capped.get(pub)
        if caps is not None and cid in caps:
            # Still at the cap while one more auction's worth (its bid) does not fit (the cap and bid of
            # the last hold stand in for the campaign's current ones; the next hold recomputes them).
            cap, bid = caps[cid]
            if left + bid <= cap:
                del caps[cid]
                if not caps:
                    del self._capped[pub]

    def _expire(self, now: float) -> None:
        with self._lock:
            while self._expiry and self._expiry[0][0] <= now:
                _, aid = heapq.heappop(self._expiry)
                self._drop(aid)
