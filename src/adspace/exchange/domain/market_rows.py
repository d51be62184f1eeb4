"""The rows of the prepared market: campaigns (and keyword campaigns' keywords) as arrays for the kernel.

An embedding campaign is one row at its center with its σ. A keyword campaign (σ → 0) is one row per
keyword at the keyword's point (its embedding), with σ = 1 (irrelevant at distance 0). A request's
keywords route the auction to the point of the first keyword that campaigns bid on
(:func:`deciding_keyword`, the one statement of that rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from adspace.exchange.domain.campaign_state import CampaignState
from adspace.mechanisms.vcg import Market

__all__ = ["MarketRows", "deciding_keyword"]


def deciding_keyword(keywords: Iterable[str] | None, bid_on: Callable[[str], bool]) -> str | None:
    """The keyword whose point an auction runs at: the first of the request's ``keywords`` (in its
    order) that campaigns bid on (``bid_on``), else ``None`` (the query's own point decides)."""
    return next((k for k in keywords or () if bid_on(k)), None)


class MarketRows:
    """The prepared :class:`~adspace.mechanisms.vcg.Market` of campaigns in market order, and where each
    row comes from. Never mutated: a change of a report builds a new one.

    Attributes: ``market`` (``None`` without rows); ``row_camp`` ``(R,)`` the campaign position of each
    row; ``row_keyword`` the keyword of each row (``None`` for embedding rows); ``keyword_rows`` and
    ``keyword_point`` the rows and point of each keyword; ``embedding_rows`` ``(R,)`` bool; ``simple``:
    one row per campaign, all embedding rows (no keyword campaigns).
    """

    def __init__(self, camps: list[CampaignState], *, threads: int = 1):
        centers: list[np.ndarray] = []
        sigmas: list[float] = []
        bids: list[float] = []
        row_camp: list[int] = []
        row_kw: list[str | None] = []
        kw_rows: dict[str, list[int]] = {}
        kw_point: dict[str, np.ndarray] = {}
        for i, c in enumerate(camps):
            if c.kind == "keyword":
                for kw in sorted(c.keywords):
                    kw_rows.setdefault(kw, []).append(len(row_camp))
                    kw_point.setdefault(kw, c.keywords[kw])
                    centers.append(kw_point[kw])
                    sigmas.append(1.0)
                    bids.append(float(c.bid_micros))
                    row_camp.append(i)
                    row_kw.append(kw)
            else:
                centers.append(c.center)
                sigmas.append(float(c.sigma))
                bids.append(float(c.bid_micros))
                row_camp.append(i)
                row_kw.append(None)
        self.market: Market | None = (
            Market(np.vstack(centers), np.asarray(sigmas), np.asarray(bids), threads=threads) if centers else None
        )
        self.row_camp = np.asarray(row_camp, dtype=np.int64)
        self.row_keyword = row_kw
        self.keyword_rows = {k: np.asarray(v, dtype=np.int64) for k, v in kw_rows.items()}
        self.keyword_point = kw_point
        self.embedding_rows = np.asarray([k is None for k in row_kw], dtype=bool)
        self.simple = bool(self.embedding_rows.all()) and len(row_camp) == len(camps)

    def has_keyword(self, keyword: str) -> bool:
        """Whether any campaign bids on ``keyword``."""
        return keyword in self.keyword_rows

    def keyword_in(self, keywords: list[str] | None) -> str | None:
        """The first of a request's keywords that campaigns bid on (the auction runs at its point), else None."""
        return deciding_keyword(keywords, self.keyword_rows.__contains__)
