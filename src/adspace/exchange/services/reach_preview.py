"""Reach chosen from evidence: propose a center and σ, and preview them against the live market.

The mathematics (the maximum-likelihood fit and the preview's clearing by the one scoring kernel,
:class:`adspace.mechanisms.vcg.Market`) is in :mod:`adspace.mechanisms.reach`; this service embeds the
conversations, reads the market's current reports (the dashboard's snapshot: every eligible
embedding campaign, as the next auction would see them) and turns the outcome into micros. Nothing
is written: a preview commits no money and records no auction.
"""

from __future__ import annotations

import math

import numpy as np

from adspace.exchange.core import schemas
from adspace.exchange.core.common import Invalid, NotFound, Principal
from adspace.exchange.core.config import Settings
from adspace.exchange.services.dashboard.snapshot import Snapshot
from adspace.exchange.store import Store
from adspace.mechanisms.reach import fit_reach, preview

__all__ = ["ReachService"]


class ReachService:
    """``reach(who, body)``: the advertiser's proposed center and σ, and what they would win."""

    def __init__(self, store: Store, settings: Settings, embed, cache):
        self.store = store
        self.settings = settings
        self.embed = embed
        self.cache = cache  # the dashboard's cache of campaign centers

    def reach(self, who: Principal, body: schemas.ReachRequest) -> schemas.ReachResult:
        others = body.non_customers or []
        queries = body.queries if body.queries is not None else list(dict.fromkeys(body.customers + others))
        texts = list(dict.fromkeys(body.customers + others + queries))
        at = {t: i for i, t in enumerate(texts)}
        x = self.embed(texts)
        pick = lambda ts: x[[at[t] for t in ts]]  # noqa: E731
        try:
            fit = fit_reach(pick(body.customers), pick(others) if others else None)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        out = schemas.ReachResult(center=fit.center.tolist(), sigma=fit.sigma, fit=fit.as_dict(), preview=None)
        if body.bid_micros is None:
            return out
        out.preview = self._preview(who, body, fit.center, body.sigma or fit.sigma, queries, pick(queries))
        return out

    def _preview(self, who, body, center, sigma, texts, q) -> schemas.ReachPreviewOut:
        snap = Snapshot(self.store, self.cache)
        if body.campaign_id is not None:
            i = snap.index(body.campaign_id)
            if i is None or snap.rows[i].advertiser_id != who.account_id:
                raise NotFound(f"campaign_id: no campaign {body.campaign_id!r} of yours")
        rivals = [i for i in snap.embedding_rows() if snap.reason[i] is None and snap.rows[i].id != body.campaign_id]
        dim = center.shape[0]
        rc = np.vstack([snap.center[snap.rows[i].id] for i in rivals]) if rivals else np.zeros((0, dim))
        rs = np.asarray([float(snap.rows[i].sigma) for i in rivals])
        rb = np.asarray([float(snap.rows[i].bid_micros) for i in rivals])
        reserve = self.settings.default_reserve_micros if body.reserve_micros is None else body.reserve_micros
        bid = body.bid_micros
        pv = preview(q, center, sigma, float(bid), rc, rs, rb, reserve=float(reserve))
        rows = []
        for k, text in enumerate(texts):
            w = int(pv.winner[k])
            if pv.won[k]:
                winner = "this campaign"
            elif w < 0:
                winner = None
            else:
                r = snap.rows[rivals[w]]
                winner = r.name if r.advertiser_id == who.account_id else "another advertiser"
            # Integer micros as the exchange charges them: the pivot rounded down, never above the bid.
            price = min(int(math.floor(pv.payment[k])), bid) if pv.won[k] else 0
            need = float(pv.bid_to_win[k])
            to_win = math.floor(need) + 1 if math.isfinite(need) and need < schemas.MAX_BID_MICROS else None
            rows.append(
                schemas.ReachQuery(
                    text=text,
                    won=bool(pv.won[k]),
                    price_micros=price,
                    value_micros=float(pv.value[k]),
                    sqdist=float(pv.sqdist[k]),
                    winner=winner,
                    bid_to_win_micros=to_win,
                )
            )
        return schemas.ReachPreviewOut(
            bid_micros=bid,
            sigma=sigma,
            reserve_micros=int(reserve),
            wins=int(pv.won.sum()),
            queries=rows,
            rivals=len(rivals),
        )
