"""The double-entry ledger, read: a caller's postings with its balance, and the admin's invariant check.

Every charge is one balanced transaction (advertiser −p, publisher +share, exchange +rest), written by
:class:`~adspace.exchange.store.charges.Charge`; this service only reads.
"""

from __future__ import annotations

from sqlalchemy import and_, func, select

from adspace.exchange.core import schemas
from adspace.exchange.core.common import EXCHANGE_OWNER, Principal, as_utc
from adspace.exchange.store import Store
from adspace.exchange.store.tables import Auction, Campaign, LedgerAccount, LedgerPosting, LedgerTransaction

__all__ = ["LedgerService"]


class LedgerService:
    """Read-only views of the ledger (never a write)."""

    def __init__(self, store: Store):
        self.store = store

    def page(self, who: Principal, *, after: int, limit: int) -> schemas.LedgerPage:
        """The caller's postings after posting id ``after`` (at most ``limit``), and its balance: the
        exchange's account for the admin, the caller's own otherwise."""
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

    def check(self) -> dict:
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
