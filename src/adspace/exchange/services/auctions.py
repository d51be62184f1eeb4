"""Auctions: the exchange's write path, in one straight line.

``run``: the query point (an embedding, a keyword's point, or a conversation embedded by the
model) -> :meth:`LiveMarket.run <adspace.exchange.market.LiveMarket.run>` (eligibility masks, then
one :meth:`Market.clear <adspace.mechanisms.vcg.Market.clear>` shared with the concurrent auctions of
the same micro-batch) -> one op for the group-commit writer (the winner's budget hold, a conditional
``UPDATE ... RETURNING`` of its money, and the auction's row) -> the committed money applied to the
in-memory market -> the result, from which the router shapes the response.

A hold that fails its condition (a concurrent auction took the budget first, here or in another
process) re-runs the auction on the refreshed market; after two such refusals the winner is left out.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.engine import Connection

from adspace.exchange import schemas
from adspace.exchange.config import Settings
from adspace.exchange.market import CampaignState, LiveMarket, Outcome
from adspace.exchange.security import new_auction_id
from adspace.exchange.services.common import Conflict, NotFound, Principal, as_utc, utcnow
from adspace.exchange.services.holds import PublisherHolds
from adspace.exchange.services.visibility import explain_for
from adspace.exchange.store import Store
from adspace.exchange.store.models import Auction, Campaign

__all__ = ["AuctionResult", "AuctionService", "MONEY_COLUMNS", "money_of"]

_c = Campaign.__table__.c

#: The money columns of a campaign, in the order :func:`money_of` reads them.
MONEY_COLUMNS = (_c.spent_micros, _c.held_micros, _c.daily_day, _c.daily_used_micros, _c.money_version)

# Compiled once: the hold is a conditional UPDATE (the budget and daily cap re-checked by the database,
# under its row lock), returning the campaign's committed money.
_USED_TODAY = case((_c.daily_day == bindparam("p_day"), _c.daily_used_micros), else_=0)
_HOLD = (
    update(Campaign.__table__)
    .where(
        _c.id == bindparam("p_campaign"),
        _c.deleted_at.is_(None),
        _c.status == "active",
        _c.budget_micros - _c.spent_micros - _c.held_micros >= bindparam("p_bid"),
        _c.daily_budget_micros.is_(None) | (_USED_TODAY + bindparam("p_bid") <= _c.daily_budget_micros),
    )
    .values(
        held_micros=_c.held_micros + bindparam("p_price"),
        daily_used_micros=_USED_TODAY + bindparam("p_price"),
        daily_day=bindparam("p_day"),
        money_version=_c.money_version + 1,
    )
    .returning(*MONEY_COLUMNS)
)
_INSERT_AUCTION = insert(Auction.__table__)
_MONEY = select(*MONEY_COLUMNS).where(_c.id == bindparam("p_campaign"))

_REASON_FILLED = (
    "highest score log(bid) - |x - c|^2 / sigma^2 among the eligible campaigns; the price is the "
    "runner-up's reported value (or the reserve, if higher), rounded down to whole micros"
)


def money_of(row) -> dict[str, Any]:
    """Keyword arguments of :meth:`LiveMarket.set_money` from a row of :data:`MONEY_COLUMNS`."""
    return {"spent": row[0], "held": row[1], "daily_day": row[2], "daily_used": row[3], "version": row[4]}


@dataclass(frozen=True)
class AuctionResult:
    """A committed auction: what the router needs to answer (and the outcome, for the dashboard)."""

    auction_id: str
    filled: bool
    campaign: CampaignState | None
    price_micros: int
    expires_at: datetime | None
    explain: dict[str, Any]
    outcome: Outcome

    def response(self) -> schemas.AuctionResponse:
        """The body of ``POST /v1/auctions``."""
        c = self.campaign
        ad = None
        if self.filled and c is not None:
            ad = schemas.Ad(campaign_id=c.id, title=c.title, body=c.body, url=c.url)
        return schemas.AuctionResponse(
            auction_id=self.auction_id,
            filled=self.filled,
            ad=ad,
            price_micros=self.price_micros,
            expires_at=self.expires_at,
            explain=self.explain,
        )


def explain(out: Outcome) -> dict[str, Any]:
    """Why the auction ended as it did: stored in full with the auction; each reader sees what
    :func:`~adspace.exchange.services.visibility.explain_for` allows."""
    ex: dict[str, Any] = {
        "mechanism": "embedding-space VCG (Clarke pivot)",
        "point": out.point,
        "keyword": out.keyword,
        "campaigns_total": out.total,
        "considered": out.considered,
        "excluded": out.excluded,
    }
    if out.filled:
        ex["winner"] = {"campaign_id": out.campaign.id, "score": out.score, "value_micros": out.value_micros}
        ex["runner_up"] = None if out.runner_up_score is None else {"score": out.runner_up_score}
        ex["reason"] = _REASON_FILLED
    else:
        ex["winner"] = None
        ex["runner_up"] = None
        if out.below_reserve:
            ex["reason"] = "below_reserve: no eligible campaign's reported value reaches the reserve"
        else:
            ex["reason"] = "no eligible campaign (see excluded)"
    return ex


class AuctionService:
    """Clears, holds and records auctions; reads a publisher's own auctions back."""

    def __init__(self, store: Store, market: LiveMarket, settings: Settings, embed, holds: PublisherHolds):
        self.store = store
        self.market = market
        self.holds = holds
        self.settings = settings
        self.embed = embed
        self.timings = {"embed": 0.0, "clear": 0.0, "db": 0.0, "total": 0.0, "auctions": 0}
        self._timing_lock = threading.Lock()

    def _time(self, key: str, seconds: float) -> None:
        with self._timing_lock:
            self.timings[key] += seconds

    def run(
        self,
        who: Principal,
        *,
        embedding: list[float] | np.ndarray | None,
        text: str | None,
        keywords: list[str] | None,
        reserve_micros: int | None,
        tau: float | None,
        source: str = "rest",
        notice_token: str | None = None,
    ) -> AuctionResult:
        """Clear one auction, hold the winner's price against its budget, and record it (committed)."""
        t_start = time.perf_counter()
        reserve = self.settings.default_reserve_micros if reserve_micros is None else reserve_micros
        x: np.ndarray | None = None
        keyword_hit = keywords and any(self.market.has_keyword(k) for k in keywords)
        if not keyword_hit:
            if embedding is not None:
                x = np.asarray(embedding, dtype=np.float64)
            elif text is not None:
                t0 = time.perf_counter()
                x = self.embed([text])[0]
                self._time("embed", time.perf_counter() - t0)
        now = utcnow()
        exclude: set[str] = set()
        capped = self.holds.capped(who.account_id, now)  # in memory (services/holds.py)
        try:
            for attempt in range(4):
                t0 = time.perf_counter()
                out = self.market.run(
                    x,
                    keywords=keywords,
                    reserve_micros=reserve,
                    tau=tau,
                    now=now,
                    exclude=frozenset(exclude),
                    capped=capped,
                )
                t1 = time.perf_counter()
                result = self._record(who, out, now, source, notice_token)
                t2 = time.perf_counter()
                with self._timing_lock:
                    self.timings["clear"] += t1 - t0
                    self.timings["db"] += t2 - t1
                if result is not None:
                    with self._timing_lock:
                        self.timings["auctions"] += 1
                    return result
                # The winner's budget was taken by a concurrent auction: our copy was stale. Refresh, retry.
                self.refresh_money(out.campaign.id)
                if attempt >= 2:
                    exclude.add(out.campaign.id)
            raise Conflict("auction: could not hold a winner's budget after several tries; retry")
        finally:
            self._time("total", time.perf_counter() - t_start)

    def _record(
        self, who: Principal, out: Outcome, now: datetime, source: str, notice_token: str | None
    ) -> AuctionResult | None:
        """Hand the auction's writes to the group-commit writer; ``None`` if the hold was refused."""
        day = now.strftime("%Y-%m-%d")
        why = explain(out)
        expires = now + timedelta(seconds=self.settings.hold_seconds)
        camp = out.campaign if out.filled else None
        row = {
            "id": new_auction_id(),
            "publisher_id": who.account_id,
            "source": source,
            "created_at": now,
            "expires_at": expires,
            "day": day,
            "filled": out.filled,
            "campaign_id": camp.id if camp else None,
            "advertiser_id": camp.advertiser_id if camp else None,
            "price_micros": out.price_micros,
            "status": "held" if out.filled else "no_fill",
            "keyword": out.keyword,
            "notice_token": notice_token,
            "explain": json.dumps(why),
            "billed_at": None,
            "clicked_at": None,
        }
        hold = None
        if camp is not None:
            hold = {"p_campaign": camp.id, "p_bid": camp.bid_micros, "p_price": out.price_micros, "p_day": day}

        def op(conn: Connection):
            money = None
            if hold is not None:
                money = conn.execute(_HOLD, hold).first()
                if money is None:
                    return False, None
            conn.execute(_INSERT_AUCTION, row)
            return True, money

        held, money = self.store.writer.submit(op)
        if not held:
            return None
        if money is not None:
            self.market.set_money(camp.id, **money_of(money))
            self.holds.add(row["id"], who.account_id, camp, out.price_micros, expires)
        return AuctionResult(
            auction_id=row["id"],
            filled=out.filled,
            campaign=camp,
            price_micros=out.price_micros,
            expires_at=expires if out.filled else None,
            explain=explain_for(who, why),  # the full one is stored; the caller sees its share (visibility.py)
            outcome=out,
        )

    def refresh_money(self, campaign_id: str) -> None:
        """Re-read a campaign's committed money into the market (after a refused hold)."""
        with self.store.read_engine.connect() as conn:
            row = conn.execute(_MONEY, {"p_campaign": campaign_id}).first()
        if row is not None:
            self.market.set_money(campaign_id, **money_of(row))

    # -- reading -------------------------------------------------------------------------------------
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
