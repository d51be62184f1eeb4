"""The dashboard's market views: the market map of a query, slices through two points, the projection.
(Activity over time and the logs: :mod:`adspace.exchange.services.dashboard.activity`.)

Visibility: :mod:`adspace.exchange.domain.visibility` decides, for every row, curve and number
(the admin sees all; an advertiser its own campaigns in full and rivals as anonymous rows without
score, value or curve; a publisher campaign names and kinds, eligibility, the winner and the price,
never a score or reported value; no slices). Recent queries are kept in
memory (the last 500 market-map queries since the server started; the exchange does not store query
embeddings) and each caller sees only its own, the admin all.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

import numpy as np
from sqlalchemy import select

from adspace.exchange.core.config import Settings
from adspace.exchange.domain import visibility
from adspace.exchange.domain.live_market import LiveMarket
from adspace.exchange.http import schemas
from adspace.exchange.services.auctions import AuctionService
from adspace.exchange.services.common import Conflict, Forbidden, NotFound, Principal, as_utc, utcnow
from adspace.exchange.store import Store
from adspace.exchange.store.tables import (
    Account,
    Campaign,
    CampaignKeyword,
)
from adspace.experiments.vcg_figures import pca_2d, slice_scores, winning_intervals
from adspace.mechanisms.vcg import Market

__all__ = ["DashboardService", "RECENT_MAX"]

RECENT_MAX = 500
MAX_CURVES = 12

# -- a snapshot of the market, read from the database --


class _Cache:
    """Cache of campaign centers (keyed by id and ``updated_at``) and recent queries."""

    def __init__(self):
        self.lock = threading.Lock()
        self.centers: dict[str, tuple[Any, np.ndarray]] = {}
        self.recent: deque[dict] = deque(maxlen=RECENT_MAX)


class Snapshot:
    """All campaigns (not deleted) in the exchange's market order, with what the dashboard shows."""

    def __init__(self, store: Store, cache: _Cache):
        now = utcnow()
        self.now = now
        with store.read() as s:
            rows = s.execute(
                select(
                    Campaign.id,
                    Campaign.advertiser_id,
                    Campaign.name,
                    Campaign.kind,
                    Campaign.sigma,
                    Campaign.bid_micros,
                    Campaign.budget_micros,
                    Campaign.daily_budget_micros,
                    Campaign.starts_at,
                    Campaign.ends_at,
                    Campaign.status,
                    Campaign.spent_micros,
                    Campaign.held_micros,
                    Campaign.daily_day,
                    Campaign.daily_used_micros,
                    Campaign.created_at,
                    Campaign.updated_at,
                    Campaign.creative_title,
                ).where(Campaign.deleted_at.is_(None))
            ).all()
            rows = sorted(rows, key=lambda r: (as_utc(r.created_at).timestamp(), r.id))
            self.names = dict(s.execute(select(Account.id, Account.name)).tuples().all())
            kw = s.execute(
                select(CampaignKeyword.campaign_id, CampaignKeyword.keyword, CampaignKeyword.point).order_by(
                    CampaignKeyword.id
                )
            ).all()
            have: dict[str, np.ndarray] = {}
            with cache.lock:
                for r in rows:
                    hit = cache.centers.get(r.id) if r.kind == "embedding" else None
                    if hit is not None and hit[0] == r.updated_at:
                        have[r.id] = hit[1]
            stale = [r.id for r in rows if r.kind == "embedding" and r.id not in have]
            fresh: dict[str, tuple[Any, np.ndarray]] = {}
            for lo in range(0, len(stale), 500):
                for cid, center, upd in s.execute(
                    select(Campaign.id, Campaign.center, Campaign.updated_at).where(
                        Campaign.id.in_(stale[lo : lo + 500])
                    )
                ):
                    fresh[cid] = (upd, np.frombuffer(center, dtype="<f8").astype(np.float64))
        with cache.lock:
            cache.centers.update(fresh)
            if len(cache.centers) > 2 * len(rows) + 1000:  # drop deleted campaigns now and then
                live = {r.id for r in rows}
                for cid in [c for c in cache.centers if c not in live]:
                    del cache.centers[cid]
        have.update({cid: v[1] for cid, v in fresh.items()})
        self.center = have
        self.rows = rows
        self.keywords: dict[str, list[str]] = {}
        self.kw_point: dict[str, np.ndarray] = {}
        pos = {r.id: i for i, r in enumerate(rows)}
        for cid, k, point in sorted(kw, key=lambda t: pos.get(t[0], 1 << 60)):
            if cid in pos:
                self.keywords.setdefault(cid, []).append(k)
                self.kw_point.setdefault(k, np.frombuffer(point, dtype="<f8").astype(np.float64))
        self.reason = [self._reason(r) for r in rows]

    def _reason(self, r) -> str | None:
        """Why a campaign cannot compete now (the exchange's order: paused, schedule, budget, daily)."""
        now, today = self.now, self.now.strftime("%Y-%m-%d")
        if r.status != "active":
            return "paused"
        starts, ends = as_utc(r.starts_at), as_utc(r.ends_at)
        if (starts is not None and now < starts) or (ends is not None and now >= ends):
            return "schedule"
        if r.budget_micros - r.spent_micros - r.held_micros < r.bid_micros:
            return "budget"
        used = r.daily_used_micros if r.daily_day == today else 0
        if r.daily_budget_micros is not None and used + r.bid_micros > r.daily_budget_micros:
            return "daily_budget"
        return None

    def visible(self, who: Principal, i: int) -> bool:
        return visibility.sees_campaign(who, self.rows[i].advertiser_id)

    def index(self, campaign_id: str) -> int | None:
        for i, r in enumerate(self.rows):
            if r.id == campaign_id:
                return i
        return None

    def embedding_rows(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r.kind == "embedding"]

    def describe(self, who: Principal, i: int) -> dict[str, Any]:
        r = self.rows[i]
        return {
            "campaign_id": r.id,
            "name": r.name,
            "advertiser_id": r.advertiser_id,
            "advertiser": self.names.get(r.advertiser_id, r.advertiser_id),
            "mine": who.kind == "advertiser" and r.advertiser_id == who.account_id,
            "kind": r.kind,
            "keywords": self.keywords.get(r.id) if r.kind == "keyword" else None,
            "sigma": r.sigma,
            "bid_micros": r.bid_micros,
            "status": r.status,
        }


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# -- the market map --------------------------------------------------------------------------------


def _money(micros: float) -> str:
    """Currency units, as the dashboard prints money everywhere (micros / 1e6; small amounts keep 6 digits)."""
    v = micros / 1e6
    return f"{v:,.6f}" if v and abs(v) < 0.01 else f"{v:,.2f}"


def _why(out, labels: dict[int, str], winner: int | None, runner: int | None, reserve: int) -> str:
    if not out.filled:
        if out.below_reserve:
            return (
                f"No fill: the best eligible reported value is below the reserve ({_money(reserve)}). "
                "Reported value = bid · exp(−‖x − c‖²/σ²)."
            )
        return "No fill: no campaign is eligible for this query (see the reasons in the table)."
    name = labels.get(winner, "the winner")
    s = f"{name} wins with the highest score log(bid) − ‖x − c‖²/σ² = {out.score:.4f} "
    s += f"(reported value {_money(out.value_micros)})"
    if out.runner_up_score is not None and runner is not None:
        rv = math.exp(out.runner_up_score)
        s += f"; the runner-up {labels[runner]} scores {out.runner_up_score:.4f} (reported value {_money(rv)}). "
        s += "The price is the Clarke pivot: the runner-up's reported value"
    else:
        s += "; nobody else is eligible, so the Clarke pivot is 0"
    s += f", raised to the reserve ({_money(reserve)}), rounded down to whole micros: {_money(out.price_micros)}."
    return s


def _why_in_words(out, labels: dict[int, str], winner: int | None, sees_winner: bool, price_ok: bool) -> str:
    """The outcome for a publisher or an advertiser: words, and numbers only of what they may see."""
    if not out.filled:
        if out.below_reserve:
            return "No fill: no eligible campaign's reported value reaches the reserve."
        return "No fill: no campaign is eligible for this query (see the reasons in the table)."
    name = labels.get(winner, "another advertiser's campaign")
    s = f"{name} wins: the highest score log(bid) − ‖x − c‖²/σ² among the {out.considered} eligible campaigns"
    if sees_winner:
        s += f" (its score {out.score:.4f}, reported value {out.value_micros:,.0f} micros)"
    s += ". It pays the Clarke pivot: the runner-up's reported value, raised to the reserve, rounded down"
    s += f" to whole micros: {out.price_micros} micros." if price_ok else "."
    return s


# -- slices: the upper envelope of score parabolas along a line ------------------------------------


# -- the 2-D projection ----------------------------------------------------------------------------


def _projection_basis(snap: Snapshot) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and two principal axes of the embedding campaigns' centers (None without campaigns)."""
    emb = snap.embedding_rows()
    if not emb:
        return None
    _, _, info = pca_2d(np.vstack([snap.center[snap.rows[i].id] for i in emb]))
    return info["mean"], info["axes"]


# -- time series -----------------------------------------------------------------------------------


class DashboardService:
    """The dashboard's JSON views (reads; ``market_map(run=True)`` runs a real auction through the auction service)."""

    def __init__(self, store: Store, market: LiveMarket, settings: Settings, auctions: AuctionService, embed):
        self.store = store
        self.market = market
        self.settings = settings
        self.auctions = auctions
        self.embed = embed
        self.cache = _Cache()

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
        keyword = next((k for k in (body.keywords or []) if k in snap.kw_point), None)
        point = snap.kw_point[keyword] if keyword is not None else x

        # Rows scored at the point: embedding campaigns, and the keyword's campaigns sitting at distance 0.
        n = len(snap.rows)
        reason: list[str | None] = list(snap.reason)
        scored: list[int] = []
        centers, sigmas, bids = [], [], []
        for i, r in enumerate(snap.rows):
            if r.kind == "keyword":
                if keyword is None or keyword not in snap.keywords.get(r.id, []):
                    reason[i] = reason[i] or "keyword"
                    continue
                c, sg = snap.kw_point[keyword], 1.0  # σ is irrelevant at distance 0
            else:
                c, sg = snap.center[r.id], float(r.sigma)
            if point is None:
                continue
            scored.append(i)
            centers.append(c)
            sigmas.append(sg)
            bids.append(float(r.bid_micros))
        score = [None] * n
        value = [None] * n
        sqdist = [None] * n
        if scored:
            m = Market(np.vstack(centers), np.asarray(sigmas), np.asarray(bids))
            sc = m.scores(point)  # the kernel's exact scores
            for k, i in enumerate(scored):
                score[i] = float(sc[k])
                value[i] = float(np.exp(sc[k]))
                d = m.centers[k] - point
                sqdist[i] = float(d @ d)
                if (
                    body.tau is not None
                    and snap.rows[i].kind == "embedding"
                    and reason[i] is None
                    and sqdist[i] > body.tau
                ):
                    reason[i] = "relevance"

        # The outcome, from the exchange's own in-memory market (or the real auction when run).
        auction = None
        if body.run:
            result = self.auctions.run(
                who,
                embedding=body.embedding,
                text=body.text,
                keywords=body.keywords,
                reserve_micros=body.reserve_micros,
                tau=body.tau,
            )
            out = result.outcome
            auction = result.response().model_dump(mode="json")
        else:
            out = self.market.run(x, keywords=body.keywords, reserve_micros=reserve, tau=body.tau, now=snap.now)
        winner = snap.index(out.campaign.id) if out.filled and out.campaign is not None else None
        eligible = [i for i in scored if reason[i] is None]
        runner = None
        rest = [i for i in eligible if i != winner]
        if winner is not None and rest:
            runner = max(rest, key=lambda i: score[i])

        # Rows, shaped by what the caller may see (services/visibility.py). Scores order the rows only for
        # the admin; others see the rows they may score first (by score), then the rest by name.
        shown_ad = auction["ad"] if auction and auction.get("ad") else None
        adv_of = [r.advertiser_id for r in snap.rows]
        scores_ok = [visibility.sees_scores(who, adv_of[i]) for i in range(n)]

        def sort_key(i: int):
            if who.kind == "admin":
                return (score[i] is None, -(score[i] or 0.0), i)
            return (not scores_ok[i], i != winner, -(score[i] or 0.0) if scores_ok[i] else 0.0, snap.rows[i].name, i)

        order = sorted(range(n), key=sort_key)
        labels: dict[int, str] = {}
        k = 0
        rows_out = []
        for rank, i in enumerate(order, start=1):
            eligible = reason[i] is None and score[i] is not None
            if visibility.sees_campaign(who, adv_of[i]):
                row = snap.describe(who, i)
                row.update(reason=reason[i], sqdist=_finite(sqdist[i]))
            elif visibility.shows_name(who, adv_of[i]):
                r = snap.rows[i]  # what is public to a publisher: the name and kind, eligibility, winner
                row = {"campaign_id": r.id, "name": r.name, "mine": False, "kind": r.kind, "reason": None}
            else:
                k += 1
                row = {"campaign_id": None, "name": f"other #{k}", "mine": False, "kind": None, "reason": None}
            labels[i] = row["name"]
            see = scores_ok[i]
            row.update(
                label=labels[i],
                rank=rank,
                score=_finite(score[i]) if see else None,
                value_micros=_finite(value[i]) if see else None,
                eligible=eligible,
                winner=i == winner,
                runner_up=i == runner and (see or who.kind == "admin"),
            )
            rows_out.append(row)
        excluded: dict[str, int] = {}
        for rsn in reason:
            if rsn is not None:
                excluded[rsn] = excluded.get(rsn, 0) + 1

        sees_winner = winner is not None and scores_ok[winner]
        sees_runner = runner is not None and scores_ok[runner]
        price_ok = visibility.sees_price(who)
        outcome: dict[str, Any] = {
            "filled": bool(out.filled),
            "point": out.point,
            "keyword": out.keyword,
            "winner": None if winner is None else labels[winner],
            "winner_campaign_id": None
            if winner is None or not (visibility.shows_name(who, adv_of[winner]) or shown_ad)
            else snap.rows[winner].id,
            "runner_up": labels[runner] if sees_runner else None,
            "price_micros": int(out.price_micros) if price_ok else None,
            "reserve_micros": int(reserve),
            "score": _finite(out.score) if sees_winner else None,
            "value_micros": _finite(out.value_micros) if sees_winner else None,
            "runner_up_score": _finite(out.runner_up_score) if sees_runner else None,
            "runner_up_value_micros": _finite(math.exp(out.runner_up_score)) if sees_runner else None,
            "considered": int(out.considered),
            "total": int(out.total),
            "excluded": excluded,
            "below_reserve": bool(out.below_reserve),
            "why": _why(out, labels, winner, runner, reserve)
            if who.kind == "admin"
            else _why_in_words(out, labels, winner, sees_winner, price_ok),
        }
        ad_title = shown_ad["title"] if shown_ad else None
        if point is not None:
            cache = self.cache
            with cache.lock:
                cache.recent.append(
                    {
                        "x": np.array(point, dtype=np.float64),
                        "at": snap.now.isoformat(),
                        "by": who.account_id,
                        "text": (body.text or (f"keyword: {keyword}" if keyword else "embedding"))[:120],
                        "winner_id": None if winner is None else snap.rows[winner].id,
                        "ad_title": ad_title,
                        "auction_id": auction["auction_id"] if auction else None,
                    }
                )
        proj = _projection_basis(snap)
        query_xy = None
        if point is not None and proj is not None:
            query_xy = ((point - proj[0]) @ proj[1].T).tolist()
        return {"outcome": outcome, "campaigns": rows_out, "auction": auction, "query_xy": query_xy}

    def market_slice(self, body: schemas.SliceQuery, who: Principal) -> dict[str, Any]:
        """Scores of the embedding campaigns along the line through ``a`` and ``b`` (campaigns or the query).

        Returns the parameter grid ``t`` (``a`` at 0, ``b`` at 1), a curve per campaign that wins
        somewhere on the line or is an endpoint (at most 12, the caller's visible ones; no curve of a rival),
        the upper envelope where the caller's campaigns win, and the winning intervals (rivals: "others").
        Keyword campaigns (σ → 0) are not on the line and are left out.
        """
        visibility.may_slice(who)
        snap = Snapshot(self.store, self.cache)
        ends = []
        for e in (body.a, body.b):
            if e == "query":
                ends.append(("query", self._query_point(body)))
                continue
            i = snap.index(e)
            if i is None or not snap.visible(who, i):
                raise NotFound(f"a | b: no campaign {e!r} of yours")
            r = snap.rows[i]
            if r.kind == "keyword":
                raise Conflict(f"a | b: campaign {e!r} is a keyword campaign (σ → 0); choose an embedding campaign")
            ends.append((r.name, snap.center[r.id]))
        if np.array_equal(ends[0][1], ends[1][1]):
            raise Conflict("a | b: the two points coincide (same center); choose another")
        emb = snap.embedding_rows()
        t = np.linspace(body.t_min, body.t_max, body.n)
        out: dict[str, Any] = {"t": t.tolist(), "a": ends[0][0], "b": ends[1][0], "curves": [], "intervals": []}
        if not emb:
            out["envelope"] = [None] * len(t)
            out["winner"] = [None] * len(t)
            return out
        c = np.vstack([snap.center[snap.rows[i].id] for i in emb])
        s = np.asarray([float(snap.rows[i].sigma) for i in emb])
        b = np.asarray([float(snap.rows[i].bid_micros) for i in emb])
        elig = np.asarray([snap.reason[i] is None for i in emb])
        pa, pb = ends[0][1], ends[1][1]
        sc_all, _, _ = slice_scores(c, s, b, pa, pb, t)  # every campaign's parabola, eligible or not
        sc, env, win = slice_scores(c, s, b, pa, pb, t, eligible=elig)
        vis = np.asarray([snap.visible(who, i) for i in emb])
        label = [snap.rows[i].name if vis[k] else "others" for k, i in enumerate(emb)]
        winners = sorted({int(w) for w in win if w >= 0}, key=lambda k: (not vis[k], -float(np.max(sc[:, k]))))
        endpoint_ids = {e for e in (body.a, body.b) if e != "query"}
        shown = [k for k in range(len(emb)) if vis[k] and snap.rows[emb[k]].id in endpoint_ids]
        shown += [k for k in winners if vis[k] and k not in shown]
        shown = shown[:MAX_CURVES]
        for k in shown:
            i = emb[k]
            out["curves"].append(
                {
                    **snap.describe(who, i),
                    "label": label[k],
                    "eligible": bool(elig[k]),
                    "score": [_finite(v) for v in sc_all[:, k]],
                }
            )
        # Rivals' scores are not shown (not even their best: at a rival's center it is log(bid)); the
        # envelope is drawn where the caller's campaigns win, and where a rival wins only its label.
        out["envelope"] = [_finite(v) if w >= 0 and vis[int(w)] else None for v, w in zip(env, win, strict=True)]
        out["winner"] = [None if w < 0 else label[int(w)] for w in win]
        for iv in winning_intervals(c, s, b, body.t_min, body.t_max, a=pa, b=pb, n=body.n, eligible=elig):
            lab = None if iv.winner < 0 else label[iv.winner]
            if out["intervals"] and out["intervals"][-1]["winner"] == lab:
                out["intervals"][-1]["hi"] = iv.hi  # adjacent rivals merge into one "others" interval
            else:
                out["intervals"].append({"winner": lab, "lo": iv.lo, "hi": iv.hi})
        return out

    def projection(self, who: Principal, limit: int = 200) -> dict[str, Any]:
        """Campaign centers on the two principal axes of all centers, and recent queries coloured by winner."""
        snap = Snapshot(self.store, self.cache)
        emb = snap.embedding_rows()
        out: dict[str, Any] = {"campaigns": [], "queries": [], "explained": [0.0, 0.0]}
        if not emb:
            return out
        c = np.vstack([snap.center[snap.rows[i].id] for i in emb])
        cache = self.cache
        with cache.lock:
            recent = [q for q in cache.recent if who.kind == "admin" or q["by"] == who.account_id][-limit:]
        q = np.vstack([r["x"] for r in recent]) if recent else None
        xy, qxy, info = pca_2d(c, q)
        out["explained"] = info["explained"]
        for k, i in enumerate(emb):
            if snap.visible(who, i):
                out["campaigns"].append(
                    {
                        **snap.describe(who, i),
                        "label": snap.rows[i].name,
                        "eligible": snap.reason[i] is None,
                        "xy": xy[k].tolist(),
                    }
                )
        pos = {r.id: i for i, r in enumerate(snap.rows)}
        for r, p in zip(recent, qxy, strict=True):
            wid = r["winner_id"]
            i = pos.get(wid) if wid else None
            if wid is None:
                lab, cid = "no fill", None
            elif i is not None and snap.visible(who, i):
                lab, cid = snap.rows[i].name, wid
            else:
                lab, cid = r["ad_title"] or "other", None
            out["queries"].append(
                {
                    "xy": p.tolist(),
                    "text": r["text"],
                    "at": r["at"],
                    "winner": lab,
                    "winner_campaign_id": cid,
                    "auction_id": r["auction_id"],
                }
            )
        return out
