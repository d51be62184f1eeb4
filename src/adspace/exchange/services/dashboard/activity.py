"""The dashboard's activity views: series per time bucket, the admin's auction log and accounts, and a
publisher's own auctions with the ads they showed. Reads only; what each role may see of an auction's
explain is :mod:`adspace.exchange.domain.visibility`'s."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from adspace.exchange.core.common import Principal, as_utc
from adspace.exchange.domain import visibility
from adspace.exchange.services.auction_reads import auction_out
from adspace.exchange.store import Store
from adspace.exchange.store.tables import (
    Account,
    Auction,
    Campaign,
    LedgerAccount,
    LedgerPosting,
    LedgerTransaction,
)

__all__ = ["ActivityService"]

_WINDOWS = {"1h": (3600, 300), "24h": (86400, 3600), "7d": (7 * 86400, 6 * 3600), "30d": (30 * 86400, 86400)}


def _buckets(window: str) -> tuple[float, int, list[float]]:
    span, width = _WINDOWS[window]
    now = time.time()
    end = (math.floor(now / width) + 1) * width
    start = end - span
    return start, width, [start + k * width for k in range(span // width)]


def _bucket_of(dt: datetime | None, start: float, width: int, n: int) -> int | None:
    if dt is None:
        return None
    k = int((as_utc(dt).timestamp() - start) // width)
    return k if 0 <= k < n else None


# -- admin: the auction log and the accounts -------------------------------------------------------


class ActivityService:
    """Activity over time and the logs behind the dashboard's charts and tables."""

    def __init__(self, store: Store):
        self.store = store

    def series(self, who: Principal, window: str = "24h") -> dict[str, Any]:
        """Per time bucket (UTC): the caller's own activity.

        * advertiser: ``wins``, ``impressions`` (billed), ``spend_micros`` (billed prices, by billing
          time), ``auctions`` (all auctions of the exchange) and ``win_rate`` = wins / auctions;
        * publisher: ``auctions``, ``filled``, ``fill_rate``, ``billed`` and ``revenue_micros`` (its share);
        * admin: ``auctions``, ``filled``, ``fill_rate``, ``billed``, ``gross_micros`` (billed prices) and
          ``revenue_micros`` (the exchange's share).
        """
        start, width, starts = _buckets(window)
        n = len(starts)
        since = datetime.fromtimestamp(start, UTC)
        z = lambda: [0] * n  # noqa: E731
        data: dict[str, list] = {"auctions": z(), "filled": z(), "billed": z()}
        with self.store.read() as s:
            q = select(
                Auction.created_at, Auction.filled, Auction.advertiser_id, Auction.publisher_id, Auction.source
            ).where(Auction.created_at >= since)
            if who.kind == "publisher":
                q = q.where(Auction.publisher_id == who.account_id)
            runs = s.execute(q).all()
            b = select(Auction.billed_at, Auction.price_micros, Auction.advertiser_id).where(
                Auction.status == "billed", Auction.billed_at >= since
            )
            if who.kind == "publisher":
                b = b.where(Auction.publisher_id == who.account_id)
            elif who.kind == "advertiser":
                b = b.where(Auction.advertiser_id == who.account_id)
            bills = s.execute(b).all()
            owner_kind = "exchange" if who.kind == "admin" else who.kind
            owner_id = "exchange" if who.kind == "admin" else who.account_id
            postings = []
            if who.kind in ("admin", "publisher"):
                postings = s.execute(
                    select(Auction.billed_at, LedgerPosting.amount_micros)
                    .select_from(LedgerPosting)
                    .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
                    .join(Auction, Auction.id == LedgerTransaction.auction_id)
                    .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
                    .where(LedgerAccount.owner_kind == owner_kind, LedgerAccount.owner_id == owner_id)
                    .where(Auction.billed_at >= since)
                ).all()
        for created, filled, adv, _pub, _src in runs:
            k = _bucket_of(created, start, width, n)
            if k is None:
                continue
            data["auctions"][k] += 1
            if who.kind == "advertiser":
                if adv == who.account_id:
                    data["filled"][k] += 1
            elif filled:
                data["filled"][k] += 1
        money = z()
        for billed_at, price, _adv in bills:
            k = _bucket_of(billed_at, start, width, n)
            if k is not None:
                data["billed"][k] += 1
                money[k] += int(price)
        revenue = z()
        for billed_at, amount in postings:
            k = _bucket_of(billed_at, start, width, n)
            if k is not None:
                revenue[k] += int(amount)
        rate = [data["filled"][k] / data["auctions"][k] if data["auctions"][k] else None for k in range(n)]
        out: dict[str, Any] = {
            "role": who.kind,
            "window": window,
            "bucket_seconds": width,
            "starts": [datetime.fromtimestamp(t, UTC).isoformat() for t in starts],
            "auctions": data["auctions"],
        }
        if who.kind == "advertiser":
            out.update(wins=data["filled"], win_rate=rate, impressions=data["billed"], spend_micros=money)
        else:
            out.update(filled=data["filled"], fill_rate=rate, billed=data["billed"], revenue_micros=revenue)
            if who.kind == "admin":
                out["gross_micros"] = money
        out["totals"] = {k: sum(v) for k, v in out.items() if isinstance(v, list) and v and isinstance(v[0], int)}
        out["demo_auctions"] = sum(1 for *_, src in runs if src == "demo")  # simulated by `serve --demo`
        return out

    def auction_log(
        self, who: Principal, *, limit: int = 100, offset: int = 0, status: str | None = None
    ) -> dict[str, Any]:
        """Admin: every publisher's auctions, newest first, with publisher, campaign and advertiser names."""
        pub, adv = aliased(Account), aliased(Account)
        with self.store.read() as s:
            q = (
                select(Auction, pub.name, Campaign.name, adv.name)
                .join(pub, pub.id == Auction.publisher_id)
                .outerjoin(Campaign, Campaign.id == Auction.campaign_id)
                .outerjoin(adv, adv.id == Auction.advertiser_id)
            )
            cnt = select(func.count()).select_from(Auction)
            if status:
                q = q.where(Auction.status == status)
                cnt = cnt.where(Auction.status == status)
            total = int(s.scalar(cnt) or 0)
            rows = s.execute(q.order_by(Auction.created_at.desc(), Auction.id).limit(limit).offset(offset)).all()
            items = [
                {
                    "auction_id": a.id,
                    "created_at": as_utc(a.created_at).isoformat(),
                    "source": a.source,
                    "publisher_id": a.publisher_id,
                    "publisher": pname,
                    "status": a.status,
                    "filled": a.filled,
                    "campaign_id": a.campaign_id,
                    "campaign": cname,
                    "advertiser_id": a.advertiser_id,
                    "advertiser": aname,
                    "price_micros": a.price_micros,
                    "keyword": a.keyword,
                    "billed_at": None if a.billed_at is None else as_utc(a.billed_at).isoformat(),
                    "clicked_at": None if a.clicked_at is None else as_utc(a.clicked_at).isoformat(),
                    "explain": visibility.explain_for(who, json.loads(a.explain), winner_advertiser_id=a.advertiser_id),
                }
                for a, pname, cname, aname in rows
            ]
        return {"total": total, "auctions": items}

    def publisher_auctions(self, who: Principal, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """A publisher's own auctions, newest first, with the title of the ad each one showed."""
        with self.store.read() as s:
            rows = s.execute(
                select(Auction, Campaign.creative_title)
                .outerjoin(Campaign, Campaign.id == Auction.campaign_id)
                .where(Auction.publisher_id == who.account_id)
                .order_by(Auction.created_at.desc(), Auction.id)
                .limit(limit)
                .offset(offset)
            ).all()
            total = int(
                s.scalar(select(func.count()).select_from(Auction).where(Auction.publisher_id == who.account_id)) or 0
            )
            items = [
                {**auction_out(who, a).model_dump(mode="json"), "ad_title": title if a.filled else None}
                for a, title in rows
            ]
        return {"total": total, "auctions": items}

    def accounts(self) -> dict[str, Any]:
        """Admin: advertisers and publishers with campaigns, auctions, spend or revenue, and ledger balance."""
        with self.store.read() as s:
            accs = s.execute(
                select(Account.id, Account.kind, Account.name, Account.created_at).order_by(
                    Account.created_at, Account.id
                )
            ).all()
            balance = {
                (k, o): int(v)
                for k, o, v in s.execute(
                    select(LedgerAccount.owner_kind, LedgerAccount.owner_id, func.sum(LedgerPosting.amount_micros))
                    .join(LedgerPosting, LedgerPosting.account_id == LedgerAccount.id)
                    .group_by(LedgerAccount.owner_kind, LedgerAccount.owner_id)
                )
            }
            camps = dict(
                s.execute(
                    select(Campaign.advertiser_id, func.count())
                    .where(Campaign.deleted_at.is_(None))
                    .group_by(Campaign.advertiser_id)
                )
                .tuples()
                .all()
            )
            runs = dict(
                s.execute(select(Auction.publisher_id, func.count()).group_by(Auction.publisher_id)).tuples().all()
            )
            wins = dict(
                s.execute(
                    select(Auction.advertiser_id, func.count())
                    .where(Auction.advertiser_id.is_not(None))
                    .group_by(Auction.advertiser_id)
                )
                .tuples()
                .all()
            )
        out = []
        for aid, kind, name, created in accs:
            row = {"id": aid, "kind": kind, "name": name, "created_at": as_utc(created).isoformat()}
            if kind == "advertiser":
                row.update(
                    campaigns=int(camps.get(aid, 0)),
                    wins=int(wins.get(aid, 0)),
                    balance_micros=balance.get((kind, aid), 0),
                )
            elif kind == "publisher":
                row.update(auctions=int(runs.get(aid, 0)), balance_micros=balance.get((kind, aid), 0))
            out.append(row)
        return {
            "accounts": out,
            "exchange_balance_micros": balance.get(("exchange", "exchange"), 0),
        }
