"""The statements of the auction write path: a campaign's money columns, the budget hold, the auction row.

Built once with SQLAlchemy Core; the two that run inside the writer's transaction for every auction
(:data:`RAW_HOLD`, :data:`RAW_INSERT_AUCTION`) also come as :class:`~adspace.exchange.store.rawsql.RawStatement`,
run on the driver's cursor. Billing and the charges read the same money columns (:data:`MONEY_COLUMNS`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, case, insert, select, update

from adspace.exchange.store.rawsql import RawStatement
from adspace.exchange.store.tables import Auction, Campaign

__all__ = [
    "HOLD",
    "INSERT_AUCTION",
    "MONEY_COLUMNS",
    "RAW_HOLD",
    "RAW_INSERT_AUCTION",
    "READ_MONEY",
    "money_of",
]

_c = Campaign.__table__.c

#: The money columns of a campaign, in the order :func:`money_of` reads them.
MONEY_COLUMNS = (_c.spent_micros, _c.held_micros, _c.daily_day, _c.daily_used_micros, _c.money_version)

_USED_TODAY = case((_c.daily_day == bindparam("p_day"), _c.daily_used_micros), else_=0)

#: The budget hold: a conditional UPDATE (the budget and the daily cap re-checked by the database, under
#: its row lock) returning the campaign's committed money; no row when the condition fails.
#: Parameters: ``p_campaign``, ``p_bid`` (what must be left), ``p_price`` (what is held), ``p_day``.
HOLD = (
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

#: One auction's row (every column of ``auctions``).
INSERT_AUCTION = insert(Auction.__table__)

#: :data:`HOLD` and :data:`INSERT_AUCTION` on the driver's cursor, inside the writer's transaction.
RAW_HOLD = RawStatement(HOLD)
RAW_INSERT_AUCTION = RawStatement(INSERT_AUCTION, column_keys=tuple(c.name for c in Auction.__table__.c))

#: A campaign's committed money (parameter ``p_campaign``).
READ_MONEY = select(*MONEY_COLUMNS).where(_c.id == bindparam("p_campaign"))


def money_of(row) -> dict[str, Any]:
    """Keyword arguments of :meth:`LiveMarket.set_money
    <adspace.exchange.domain.live_market.LiveMarket.set_money>` from a row of :data:`MONEY_COLUMNS`."""
    return {"spent": row[0], "held": row[1], "daily_day": row[2], "daily_used": row[3], "version": row[4]}
