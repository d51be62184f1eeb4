"""Billing: a won auction's charge, exactly once, and the OpenRTB notices that ask for it.

A charge is one op for the group-commit writer (:class:`~adspace.exchange.store.charges.Charge`:
the auction flips ``held -> billed`` by a conditional ``UPDATE ... RETURNING``, so of two concurrent
notices for one auction exactly one matches; the hold moves to spend; one balanced ledger transaction
is inserted), and the writer runs the charges of one batch set-based. A repeat finds nothing to flip
and reads back the first charge.

Beside it: clicks (:mod:`~adspace.exchange.services.clicks`), holds given back when their billing
window closes or a loss notice comes (:mod:`~adspace.exchange.services.hold_expiry`), and the
ledger's reads (:mod:`~adspace.exchange.services.ledger`).
"""

from __future__ import annotations

import hmac
from datetime import datetime

import anyio
from sqlalchemy import select

from adspace.exchange.core import schemas
from adspace.exchange.core.common import Conflict, Gone, NotFound, Principal, as_utc, utcnow
from adspace.exchange.core.config import Settings
from adspace.exchange.domain.live_market import LiveMarket
from adspace.exchange.services.accounts import AccountService
from adspace.exchange.services.hold_expiry import HoldExpiry
from adspace.exchange.services.holds import PublisherHolds
from adspace.exchange.store import Store
from adspace.exchange.store.charges import Charge
from adspace.exchange.store.money_sql import money_of
from adspace.exchange.store.rawsql import integrity_errors
from adspace.exchange.store.tables import Auction, LedgerAccount, LedgerPosting, LedgerTransaction

__all__ = ["BillingService"]


class BillingService:
    """Charges (billing requests and OpenRTB billing notices) and OpenRTB loss notices."""

    def __init__(
        self,
        store: Store,
        market: LiveMarket,
        settings: Settings,
        accounts: AccountService,
        holds: PublisherHolds,
        expiry: HoldExpiry,
    ):
        self.store = store
        self.market = market
        self.holds = holds
        self.settings = settings
        self.accounts = accounts
        self.expiry = expiry
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
        """The charge as an op for the writer (store/charges.py): ``None`` when the auction is not
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
            self.expiry.release(auction_id, expired_by=None)
        return None
