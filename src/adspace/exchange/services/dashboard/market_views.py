"""The dashboard's market views: the market map of a query, slices through two points, the projection.
(Activity over time and the logs: :mod:`adspace.exchange.services.dashboard.activity`.)

Each view reads a :class:`~adspace.exchange.services.dashboard.snapshot.Snapshot` of the market and
shapes it for the caller: the map (:mod:`~adspace.exchange.services.dashboard.map_view`), the slices
(:mod:`~adspace.exchange.services.dashboard.slices`), the projection
(:mod:`~adspace.exchange.services.dashboard.projection`). Visibility:
:mod:`adspace.exchange.domain.visibility` decides, for every row, curve and number (the admin sees
all; an advertiser its own campaigns in full and rivals as anonymous rows without score, value or
curve; a publisher campaign names and kinds, eligibility, the winner and the price, never a score or
reported value; no slices). Recent queries are kept in memory (the last 500 market-map queries since
the server started; the exchange does not store query embeddings) and each caller sees only its own,
the admin all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adspace.exchange.core import schemas
from adspace.exchange.core.common import Forbidden, Principal
from adspace.exchange.core.config import Settings
from adspace.exchange.domain import visibility
from adspace.exchange.domain.live_market import LiveMarket
from adspace.exchange.domain.market_rows import deciding_keyword
from adspace.exchange.services.auctions import AuctionAsk, AuctionService
from adspace.exchange.services.dashboard.map_view import map_view, score_rows
from adspace.exchange.services.dashboard.projection import projection_view, query_xy
from adspace.exchange.services.dashboard.slices import slice_view
from adspace.exchange.services.dashboard.snapshot import DashboardCache, Snapshot
from adspace.exchange.store import Store

__all__ = ["DashboardService"]


class DashboardService:
    """The dashboard's JSON views (reads; ``market_map(run=True)`` runs a real auction through the auction service)."""

    def __init__(self, store: Store, market: LiveMarket, settings: Settings, auctions: AuctionService, embed):
        self.store = store
        self.market = market
        self.settings = settings
        self.auctions = auctions
        self.embed = embed
        self.cache = DashboardCache()

    def _query_point(self, body: schemas.DashboardQuery) -> np.ndarray | None:
        if body.embedding is not None:
            return np.asarray(body.embedding, dtype=np.float64)
        if body.text is not None:
            return self.embed([body.text])[0]
        return None

    def market_map(self, body: schemas.MarketQuery, who: Principal) -> dict[str, Any]:
        """Every campaign's score and reported value at a query, the winner, the price and why.

        ``run: true`` (publishers) also runs the real auction at the same point, exactly as
        ``POST /v1/auctions`` would (held against the winner's budget, billable).
        """
        if body.run and who.kind != "publisher":
            raise Forbidden(f"run: only publisher keys run auctions, not {who.kind}")
        visibility.check_market_query(who, reserve_micros=body.reserve_micros, run=body.run)
        snap = Snapshot(self.store, self.cache)
        x = self._query_point(body)
        reserve = self.settings.default_reserve_micros if body.reserve_micros is None else body.reserve_micros
        keyword = deciding_keyword(body.keywords, snap.kw_point.__contains__)
        point = snap.kw_point[keyword] if keyword is not None else x

        # Rows scored at the point: embedding campaigns, and the keyword's campaigns sitting at distance 0.
        scores = score_rows(snap, point, keyword, body.tau)

        # The outcome, from the exchange's own in-memory market (or the real auction when run).
        auction = None
        if body.run:
            result = self.auctions.run(
                AuctionAsk(
                    who,
                    embedding=body.embedding,
                    text=body.text,
                    keywords=body.keywords,
                    reserve_micros=body.reserve_micros,
                    tau=body.tau,
                )
            )
            out = result.outcome
            auction = result.response().model_dump(mode="json")
        else:
            out = self.market.run(x, keywords=body.keywords, reserve_micros=reserve, tau=body.tau, now=snap.now)
        outcome, rows, winner = map_view(snap, scores, out, who, reserve, auction)
        if point is not None:
            self.cache.remember(
                {
                    "x": np.array(point, dtype=np.float64),
                    "at": snap.now.isoformat(),
                    "by": who.account_id,
                    "text": (body.text or (f"keyword: {keyword}" if keyword else "embedding"))[:120],
                    "winner_id": None if winner is None else snap.rows[winner].id,
                    "ad_title": auction["ad"]["title"] if auction and auction.get("ad") else None,
                    "auction_id": auction["auction_id"] if auction else None,
                }
            )
        return {"outcome": outcome, "campaigns": rows, "auction": auction, "query_xy": query_xy(snap, point)}

    def market_slice(self, body: schemas.SliceQuery, who: Principal) -> dict[str, Any]:
        """Scores of the embedding campaigns along the line through ``a`` and ``b`` (campaigns or the query):
        :func:`~adspace.exchange.services.dashboard.slices.slice_view`."""
        visibility.may_slice(who)
        snap = Snapshot(self.store, self.cache)
        return slice_view(snap, body, who, lambda: self._query_point(body))

    def projection(self, who: Principal, limit: int = 200) -> dict[str, Any]:
        """Campaign centers on the two principal axes of all centers, and recent queries coloured by winner."""
        return projection_view(Snapshot(self.store, self.cache), self.cache, who, limit)
