"""Billing: charges (exactly once), clicks, hold expiry and OpenRTB notices, and the double-entry ledger.

A charge is one op for the group-commit writer (:class:`~adspace.exchange.store.charges.Charge`:
the auction flips ``held -> billed`` by a conditional ``UPDATE ... RETURNING``, so of two concurrent
notices for one auction exactly one matches; the hold moves to spend; one balanced ledger transaction
is inserted), and the writer runs the charges of one batch set-based. A repeat finds nothing to flip
and reads back the first charge.
"""

from __future__ import annotations

import hmac
import logging
import threading
from datetime import datetime

import anyio
from sqlalchemy import and_, bindparam, case, func, select, update
from sqlalchemy.engine import Connection

from adspace.exchange.core.config import Settings
from adspace.exchange.domain.live_market import LiveMarket
from adspace.exchange.http import schemas
from adspace.exchange.services.accounts import AccountService
from adspace.exchange.services.auctions import MONEY_COLUMNS, money_of
from adspace.exchange.services.common import (
    EXCHANGE_OWNER,
    Conflict,
    Gone,
    NotFound,
    Principal,
    as_utc,
    utcnow,
)
from adspace.exchange.services.holds import PublisherHolds
from adspace.exchange.store import Store
from adspace.exchange.store.charges import Charge
from adspace.exchange.store.rawsql import integrity_errors
from adspace.exchange.store.tables import Auction, Campaign, LedgerAccount, LedgerPosting, LedgerTransaction

__all__ = ["BillingService"]

log = logging.getLogger("adspace.exchange")

_a = Auction.__table__.c
_c = Campaign.__table__.c

_FLIP_EXPIRED = (
    update(Auction.__table__)
    .where(_a.id == bindparam("p_auction"), _a.status == "held", _a.expires_at <= bindparam("p_by"))
    .values(status="expired")
    .returning(_a.price_micros, _a.campaign_id, _a.day)
)
_FLIP_LOST = (
    update(Auction.__table__)
    .where(_a.id == bindparam("p_auction"), _a.status == "held")
    .values(status="expired")
    .returning(_a.price_micros, _a.campaign_id, _a.day)
)
_UNHOLD = (
    update(Campaign.__table__)
    .where(_c.id == bindparam("p_campaign"))
    .values(
        held_micros=_c.held_micros - bindparam("p_price"),
        daily_used_micros=case(
            (_c.daily_day == bindparam("p_day"), _c.daily_used_micros - bindparam("p_price")),
            else_=_c.daily_used_micros,
        ),
        money_version=_c.money_version + 1,
    )
    .returning(*MONEY_COLUMNS)
)
_CLICK = (
    update(Auction.__table__)
    .where(
        _a.id == bindparam("p_auction"),
        _a.publisher_id == bindparam("p_publisher"),
        _a.status == "billed",
        _a.clicked_at.is_(None),
    )
    .values(clicked_at=bindparam("p_now"))
)


class BillingService:
    """Charges, clicks, expiry, notices and the ledger."""

    def __init__(
        self, store: Store, market: LiveMarket, settings: Settings, accounts: AccountService, holds: PublisherHolds
    ):
        self.store = store
        self.market = market
        self.holds = holds
        self.settings = settings
        self.accounts = accounts
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._integrity = integrity_errors(store.engine)  # a concurrent charge won the ledger's unique key

    # -- charges -------------------------------------------------------------------------------------
    def bill(self, who: Principal, auction_id: str) -> schemas.BillingResult:
        """Charge the winner of ``auction_id`` exactly once; a repeat returns the same result."""
        now = utcnow()
        try:
            charged = self.store.writer.submit(self._charge_op(who, auction_id, now))
        except self._integrity:  # a concurrent charge won the unique (auction_id, kind); report it
            charged = None
        return self._settle(who, auction_id, now, charged)

    async def bill_async(self, who: Principal, auction_id: str) -> schemas.BillingResult:
        """:meth:`bill` for an event loop: waits for the group commit without holding a thread."""
        now = utcnow()
        try:
            charged = await self.store.writer.run_async(self._charge_op(who, auction_id, now))
        except self._integrity:
            charged = None
        if charged is not None:
            return self._settle(who, auction_id, now, charged)
        return await anyio.to_thread.run_sync(self._billing_result, who, auction_id, now)

    def _settle(self, who: Principal, auction_id: str, now: datetime, charged) -> schemas.BillingResult:
        if charged is None:  # not held by this publisher (any more): a repeat, or nothing to bill
            return self._billing_result(who, auction_id, now)
        result, campaign_id, money = charged
        self.market.set_money(campaign_id, **money_of(money))
        self.holds.release(auction_id)
        return result

    def _charge_op(self, who: Principal, auction_id: str, now: datetime) -> Charge:
        """The charge as an op for the writer (services/charges.py): ``None`` when the auction is not
        held by ``who``."""
        return Charge(who.account_id, auction_id, now, self.settings.publisher_share_bps, self.accounts)

    def _billing_result(self, who: Principal, auction_id: str, now: datetime) -> schemas.BillingResult:
        with self.store.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            if a.status == "no_fill":
                raise Conflict("auction_id: the auction was not filled; there is nothing to bill")
            if a.status == "expired" or (a.status == "held" and as_utc(a.expires_at) <= now):
                raise Gone("auction_id: the auction expired unbilled; its hold was released")
            tx = s.scalars(
                select(LedgerTransaction).where(
                    LedgerTransaction.auction_id == a.id, LedgerTransaction.kind == "charge"
                )
            ).first()
            if a.status != "billed" or tx is None:  # pragma: no cover - would be a broken invariant
                raise Conflict(f"auction_id: auction {auction_id!r} is {a.status}")
            pub = s.scalars(
                select(LedgerPosting.amount_micros)
                .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
                .where(LedgerPosting.transaction_id == tx.id, LedgerAccount.owner_kind == "publisher")
            ).one()
            return schemas.BillingResult(
                auction_id=a.id,
                campaign_id=a.campaign_id,
                price_micros=a.price_micros,
                publisher_micros=pub,
                exchange_micros=a.price_micros - pub,
                billed_at=as_utc(a.billed_at),
                transaction_id=tx.id,
            )

    def click(self, who: Principal, auction_id: str) -> schemas.ClickResult:
        """Record a click on a billed (shown) ad, once; a repeat returns the first click's time."""
        now = utcnow()
        params = {"p_auction": auction_id, "p_publisher": who.account_id, "p_now": now}
        self.store.writer.submit(lambda conn: conn.execute(_CLICK, params).rowcount)
        with self.store.read() as s:
            a = s.get(Auction, auction_id)
            if a is None or a.publisher_id != who.account_id:
                raise NotFound(f"auction_id: no auction {auction_id!r} of yours")
            if a.clicked_at is None:
                raise Conflict(f"auction_id: auction is {a.status}; a click needs a billed impression (bill it first)")
            return schemas.ClickResult(auction_id=a.id, clicked_at=as_utc(a.clicked_at))

    # -- expiry --------------------------------------------------------------------------------------
    def release_expired(self, *, limit: int = 500) -> int:
        """Release the holds of auctions whose billing window closed. Returns how many were released."""
        now = utcnow()
        with self.store.read() as s:
            ids = s.scalars(
                select(Auction.id).where(Auction.status == "held", Auction.expires_at <= now).limit(limit)
            ).all()
        return sum(self.release(auction_id, expired_by=now) for auction_id in ids)

    def release(self, auction_id: str, *, expired_by: datetime | None) -> bool:
        """Move a held auction to ``expired`` and give its hold back (only if still held)."""

        def op(conn: Connection):
            if expired_by is None:
                got = conn.execute(_FLIP_LOST, {"p_auction": auction_id}).first()
            else:
                got = conn.execute(_FLIP_EXPIRED, {"p_auction": auction_id, "p_by": expired_by}).first()
            if got is None:
                return None
            price, campaign_id, day = got
            money = conn.execute(_UNHOLD, {"p_campaign": campaign_id, "p_price": price, "p_day": day}).first()
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

    # -- OpenRTB notices -----------------------------------------------------------------------------
    def notice(self, kind: str, auction_id: str, token: str) -> schemas.BillingResult | None:
        """A nurl/burl/lurl fired by an ad server: authenticated by the auction's capability token."""
        with self.store.read() as s:
            a = s.get(Auction, auction_id)
            ok = a is not None and a.notice_token is not None and hmac.compare_digest(a.notice_token, token)
            publisher = a.publisher_id if ok else None
        if not ok:
            raise NotFound(f"auction_id: no OpenRTB auction {auction_id!r} with this token")
        if kind == "billing":
            return self.bill(self.accounts.principal(publisher), auction_id)
        if kind == "loss":
            self.release(auction_id, expired_by=None)
        return None

    def start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="adspace-sweeper", daemon=True)
            self._sweeper.start()

    def stop_sweeper(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.sweep_seconds):
            try:
                self.release_expired()
            except Exception:  # pragma: no cover - logged and retried on the next tick
                log.exception("releasing expired holds failed")

    # -- the ledger ----------------------------------------------------------------------------------
    def ledger(self, who: Principal, *, after: int, limit: int) -> schemas.LedgerPage:
        with self.store.read() as s:
            if who.kind == "admin":
                owner = and_(LedgerAccount.owner_kind == EXCHANGE_OWNER)
            else:
                owner = and_(LedgerAccount.owner_kind == who.kind, LedgerAccount.owner_id == who.account_id)
            base = (
                select(LedgerPosting, LedgerTransaction, LedgerAccount)
                .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
                .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
                .where(owner)
            )
            rows = s.execute(base.where(LedgerPosting.id > after).order_by(LedgerPosting.id).limit(limit)).all()
            balance = s.scalar(
                select(func.coalesce(func.sum(LedgerPosting.amount_micros), 0))
                .join(LedgerAccount, LedgerAccount.id == LedgerPosting.account_id)
                .where(owner)
            )
            entries = [
                schemas.LedgerEntry(
                    transaction_id=t.id,
                    kind=t.kind,
                    auction_id=t.auction_id,
                    created_at=as_utc(t.created_at),
                    account=EXCHANGE_OWNER if acc.owner_kind == EXCHANGE_OWNER else f"{acc.owner_kind}:{acc.owner_id}",
                    amount_micros=p.amount_micros,
                )
                for p, t, acc in rows
            ]
            nxt = rows[-1][0].id if len(rows) == limit else None
            return schemas.LedgerPage(balance_micros=int(balance), entries=entries, next_after=nxt)

    def ledger_check(self) -> dict:
        """Admin: the ledger's invariants, computed by the database."""
        with self.store.read() as s:
            total = s.scalar(select(func.coalesce(func.sum(LedgerPosting.amount_micros), 0)))
            unbalanced = s.scalar(
                select(func.count()).select_from(
                    select(LedgerPosting.transaction_id)
                    .group_by(LedgerPosting.transaction_id)
                    .having(func.sum(LedgerPosting.amount_micros) != 0)
                    .subquery()
                )
            )
            txs = s.scalar(select(func.count()).select_from(LedgerTransaction))
            billed = s.scalar(select(func.count()).select_from(Auction).where(Auction.status == "billed"))
            spent = s.scalar(select(func.coalesce(func.sum(Campaign.spent_micros), 0)))
            billed_sum = s.scalar(
                select(func.coalesce(func.sum(Auction.price_micros), 0)).where(Auction.status == "billed")
            )
        return {
            "postings_sum_micros": int(total),
            "unbalanced_transactions": int(unbalanced),
            "transactions": int(txs),
            "billed_auctions": int(billed),
            "campaign_spent_micros": int(spent),
            "billed_price_micros": int(billed_sum),
            "balanced": int(total) == 0 and int(unbalanced) == 0 and int(txs) == int(billed) and spent == billed_sum,
        }
