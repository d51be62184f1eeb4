"""A billing notice's charge, as an op of the group-commit writer: alone, or set-based for a batch.

One charge (:meth:`Charge.__call__`) is four statements: the auction flips ``held -> billed`` by a
conditional ``UPDATE ... RETURNING`` (so of two concurrent notices for one auction exactly one
matches), the hold moves to spend, and one balanced ledger transaction (advertiser −p, publisher
+share, exchange +rest) is inserted with its three postings. The ledger's unique
``(auction_id, kind)`` is a second line of defence against a double charge. A charge that finds
nothing to flip returns ``None`` (a repeat, or nothing of this publisher's to bill).

When the writer's batch holds several charges in a row, it runs them with :func:`charge_many`
(:data:`Charge.many`): the same effect as running them one after another, in four statements for the
whole run instead of four per notice (each statement releases and re-takes the GIL, and under load
the event loop holds it in between). Each notice keeps its own time (``billed_at``, and the expiry it
is checked against); of several notices with the same auction and publisher, the first charges and
the others find nothing, as in order (a repeat timed before the first makes the batch run in order
instead); the hold-to-spend moves are summed per campaign (the money
version goes up once per charge, and every charge of a campaign returns the campaign's money after
the batch, which is what :meth:`LiveMarket.set_money` keeps anyway). If anything in the batch raises,
the writer re-runs each charge alone (store/writer.py), so an error still reaches only its own caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, bindparam, column, insert, update, values
from sqlalchemy.engine import Connection

from adspace.exchange.core import schemas
from adspace.exchange.core.common import EXCHANGE_OWNER
from adspace.exchange.store.money_sql import MONEY_COLUMNS
from adspace.exchange.store.rawsql import RawStatement, cursor_of
from adspace.exchange.store.tables import Auction, Campaign, LedgerPosting, LedgerTransaction

__all__ = ["Charge", "charge_many"]

_a = Auction.__table__.c
_c = Campaign.__table__.c
_tx = LedgerTransaction.__table__
_posting = LedgerPosting.__table__
_TIME = DateTime(timezone=True)

_FLIP_BILLED = (
    update(Auction.__table__)
    .where(
        _a.id == bindparam("p_auction"),
        _a.publisher_id == bindparam("p_publisher"),
        _a.status == "held",
        _a.expires_at > bindparam("p_now"),
    )
    .values(status="billed", billed_at=bindparam("p_now"))
    .returning(_a.price_micros, _a.campaign_id, _a.advertiser_id)
)
_SPEND = (
    update(Campaign.__table__)
    .where(_c.id == bindparam("p_campaign"))
    .values(
        held_micros=_c.held_micros - bindparam("p_price"),
        spent_micros=_c.spent_micros + bindparam("p_price"),
        money_version=_c.money_version + 1,
    )
    .returning(*MONEY_COLUMNS)
)
_INSERT_TX = insert(_tx).returning(_tx.c.id)
_INSERT_POSTING = insert(_posting)
# The charge's statements, run on the driver's cursor inside the writer's transaction (store/rawsql.py).
_RAW_FLIP_BILLED = RawStatement(_FLIP_BILLED)
_RAW_SPEND = RawStatement(_SPEND)
_RAW_INSERT_TX = RawStatement(_INSERT_TX, column_keys=("kind", "auction_id", "created_at", "publisher_share_bps"))
_RAW_INSERT_POSTING = RawStatement(_INSERT_POSTING, column_keys=("transaction_id", "account_id", "amount_micros"))

#: Most charges in one set-based statement (a longer run is taken in parts of this size).
MANY_MAX = 64


def _publisher_part(price: int, share_bps: int) -> int:
    """The publisher's part of a charge (rounded down; the exchange keeps the rest)."""
    return price * share_bps // 10_000


def _postings(accounts, conn: Connection, publisher_id: str, advertiser_id: str, price: int, share: int):
    """The charge's three postings ``(ledger account id, amount)``: they sum to zero."""
    pub = _publisher_part(price, share)
    return (
        (accounts.ledger_account_id(conn, "advertiser", advertiser_id), -price),
        (accounts.ledger_account_id(conn, "publisher", publisher_id), pub),
        (accounts.ledger_account_id(conn, EXCHANGE_OWNER, EXCHANGE_OWNER), price - pub),
    )


def _result(auction_id: str, campaign_id: str, price: int, share: int, now: datetime, tx_id: int):
    # Built from values the transaction produced (no validation pass needed).
    pub = _publisher_part(price, share)
    return schemas.BillingResult.model_construct(
        auction_id=auction_id,
        campaign_id=campaign_id,
        price_micros=price,
        publisher_micros=pub,
        exchange_micros=price - pub,
        billed_at=now,
        transaction_id=tx_id,
    )


class Charge:
    """Charge the winner of ``auction_id`` if ``publisher_id`` holds it: an op for the writer whose
    result is ``(BillingResult, campaign_id, committed money row)``, or ``None``."""

    __slots__ = ("publisher_id", "auction_id", "now", "share", "accounts")

    def __init__(self, publisher_id: str, auction_id: str, now: datetime, share_bps: int, accounts):
        self.publisher_id, self.auction_id, self.now = publisher_id, auction_id, now
        self.share, self.accounts = share_bps, accounts

    def __call__(self, conn: Connection):
        cur = cursor_of(conn)
        won = _RAW_FLIP_BILLED.first(
            conn, cur, {"p_auction": self.auction_id, "p_publisher": self.publisher_id, "p_now": self.now}
        )
        if won is None:
            return None
        price, campaign_id, advertiser_id = won
        money = _RAW_SPEND.first(conn, cur, {"p_campaign": campaign_id, "p_price": price})
        (tx_id,) = _RAW_INSERT_TX.first(
            conn,
            cur,
            {
                "kind": "charge",
                "auction_id": self.auction_id,
                "created_at": self.now,
                "publisher_share_bps": self.share,
            },
        )
        postings = _postings(self.accounts, conn, self.publisher_id, advertiser_id, price, self.share)
        _RAW_INSERT_POSTING.executemany(
            conn, cur, [{"transaction_id": tx_id, "account_id": acc, "amount_micros": amt} for acc, amt in postings]
        )
        return _result(self.auction_id, campaign_id, price, self.share, self.now, tx_id), campaign_id, money

    @staticmethod
    def many(conn: Connection, charges: Sequence[Charge]) -> list:
        """Several charges in one go, with the effect of running them in order (:func:`charge_many`)."""
        return charge_many(conn, charges)


# -- the set-based statements, compiled once per number of rows ---------------------------------------
def _flip_many(k: int):
    v = (
        values(column("v_id", String), column("v_pub", String), column("v_now", _TIME), name="v")
        .data(
            [
                (bindparam(f"a{j}", type_=String), bindparam(f"p{j}", type_=String), bindparam(f"t{j}", type_=_TIME))
                for j in range(k)
            ]
        )
        .cte("v")
    )
    return (
        update(Auction.__table__)
        .where(_a.id == v.c.v_id, _a.publisher_id == v.c.v_pub, _a.status == "held", _a.expires_at > v.c.v_now)
        .values(status="billed", billed_at=v.c.v_now)
        .returning(_a.id, _a.publisher_id, _a.price_micros, _a.campaign_id, _a.advertiser_id)
    )


def _spend_many(k: int):
    v = (
        values(column("v_id", String), column("v_price", BigInteger), column("v_n", Integer), name="v")
        .data(
            [
                (
                    bindparam(f"c{j}", type_=String),
                    bindparam(f"x{j}", type_=BigInteger),
                    bindparam(f"n{j}", type_=Integer),
                )
                for j in range(k)
            ]
        )
        .cte("v")
    )
    return (
        update(Campaign.__table__)
        .where(_c.id == v.c.v_id)
        .values(
            held_micros=_c.held_micros - v.c.v_price,
            spent_micros=_c.spent_micros + v.c.v_price,
            money_version=_c.money_version + v.c.v_n,
        )
        .returning(_c.id, *MONEY_COLUMNS)
    )


def _tx_many(k: int):
    rows = [
        {
            "kind": "charge",
            "auction_id": bindparam(f"a{j}", type_=String),
            "created_at": bindparam(f"t{j}", type_=_TIME),
            "publisher_share_bps": bindparam(f"s{j}", type_=Integer),
        }
        for j in range(k)
    ]
    return insert(_tx).values(rows).returning(_tx.c.id, _tx.c.auction_id)


def _postings_many(k: int):
    rows = [
        {
            "transaction_id": bindparam(f"x{j}", type_=BigInteger),
            "account_id": bindparam(f"c{j}", type_=Integer),
            "amount_micros": bindparam(f"m{j}", type_=BigInteger),
        }
        for j in range(k)
    ]
    return insert(_posting).values(rows)


_BUILD = {"flip": _flip_many, "spend": _spend_many, "tx": _tx_many, "postings": _postings_many}
_SIZED: dict[tuple[str, int], RawStatement] = {}


def _sized(kind: str, k: int) -> RawStatement:
    got = _SIZED.get((kind, k))
    if got is None:
        got = _SIZED[(kind, k)] = RawStatement(_BUILD[kind](k))
    return got


def _rows(kind: str, conn: Connection, cur, params: dict[str, Any], k: int) -> list[tuple]:
    _sized(kind, k).execute(conn, cur, params)
    return cur.fetchall() if cur.description is not None else []


def charge_many(conn: Connection, charges: Sequence[Charge]) -> list:
    """The results of ``charges``, as if each had run alone, in order (in parts of :data:`MANY_MAX`)."""
    if len(charges) > MANY_MAX:
        return [r for lo in range(0, len(charges), MANY_MAX) for r in charge_many(conn, charges[lo : lo + MANY_MAX])]
    cur = cursor_of(conn)
    first: dict[tuple[str, str], int] = {}  # (auction, publisher) -> the first charge of it
    for i, ch in enumerate(charges):
        j = first.setdefault((ch.auction_id, ch.publisher_id), i)
        if ch.now < charges[j].now:
            # A repeat timed before the first notice: in order, it could charge where the first found
            # its hold expired. Rare (notices of one auction taken on different threads); run in order.
            return [ch(conn) for ch in charges]
    params: dict[str, Any] = {}
    for j, i in enumerate(first.values()):
        ch = charges[i]
        params[f"a{j}"], params[f"p{j}"], params[f"t{j}"] = ch.auction_id, ch.publisher_id, ch.now
    flipped = {
        (aid, pub): (price, cid, adv) for aid, pub, price, cid, adv in _rows("flip", conn, cur, params, len(first))
    }
    out: list = [None] * len(charges)
    if not flipped:
        return out
    won = sorted(first[key] for key in flipped)  # the charging notices, in order
    per_campaign: dict[str, list[int]] = {}
    for i in won:
        price, cid, _ = flipped[(charges[i].auction_id, charges[i].publisher_id)]
        total = per_campaign.setdefault(cid, [0, 0])
        total[0] += price
        total[1] += 1
    params = {}
    for j, (cid, (price, n)) in enumerate(per_campaign.items()):
        params[f"c{j}"], params[f"x{j}"], params[f"n{j}"] = cid, price, n
    money = {row[0]: row[1:] for row in _rows("spend", conn, cur, params, len(per_campaign))}
    params = {}
    for j, i in enumerate(won):
        ch = charges[i]
        params[f"a{j}"], params[f"t{j}"], params[f"s{j}"] = ch.auction_id, ch.now, ch.share
    tx_of = {aid: tx_id for tx_id, aid in _rows("tx", conn, cur, params, len(won))}
    params = {}
    j = 0
    for i in won:
        ch = charges[i]
        price, cid, adv = flipped[(ch.auction_id, ch.publisher_id)]
        tx_id = tx_of[ch.auction_id]
        for acc, amount in _postings(ch.accounts, conn, ch.publisher_id, adv, price, ch.share):
            params[f"x{j}"], params[f"c{j}"], params[f"m{j}"] = tx_id, acc, amount
            j += 1
        out[i] = _result(ch.auction_id, cid, price, ch.share, ch.now, tx_id), cid, money[cid]
    _rows("postings", conn, cur, params, j)
    return out
