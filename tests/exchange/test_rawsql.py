"""Statements run on the driver's cursor write exactly what SQLAlchemy writes (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from adspace.exchange.store import Store
from adspace.exchange.store.charges import _FLIP_BILLED, _RAW_FLIP_BILLED, _RAW_INSERT_TX
from adspace.exchange.store.money_sql import RAW_INSERT_AUCTION
from adspace.exchange.store.rawsql import cursor_of
from adspace.exchange.store.tables import Account, Auction, LedgerTransaction

from .conftest import Database


def _row(i: int, now: datetime) -> dict:
    return {
        "id": f"auc_raw{i}",
        "publisher_id": "pub_raw",
        "source": "rest",
        "created_at": now,
        "expires_at": now + timedelta(seconds=60),
        "day": now.strftime("%Y-%m-%d"),
        "filled": True,
        "campaign_id": None,
        "advertiser_id": None,
        "price_micros": 1234,
        "status": "held",
        "keyword": None,
        "notice_token": None,
        "explain": "{}",
        "billed_at": None,
        "clicked_at": None,
    }


def test_raw_statements_match_sqlalchemy(backend, tmp_path):
    db = Database(backend, tmp_path)
    store = Store(db.url)
    try:
        store.migrate()
        now = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
        with store.tx() as s:
            s.add(Account(id="pub_raw", kind="publisher", name="p", created_at=now))
        # Inserted on the cursor (dates and booleans through the dialect's own bind processors) ...
        with store.engine.begin() as conn:
            RAW_INSERT_AUCTION.executemany(conn, cursor_of(conn), [_row(0, now), _row(1, now)])
        with store.read() as s:
            a = s.get(Auction, "auc_raw0")
            assert a.filled is True and a.price_micros == 1234 and a.status == "held"
            assert a.created_at.replace(tzinfo=UTC) == now
        # ... and compared by the database the same way SQLAlchemy's statement compares them.
        later = now + timedelta(seconds=30)
        params = {"p_auction": "auc_raw0", "p_publisher": "pub_raw", "p_now": later}
        with store.engine.begin() as conn:
            got = _RAW_FLIP_BILLED.first(conn, cursor_of(conn), params)
            assert got is not None and got[0] == 1234
            assert _RAW_FLIP_BILLED.first(conn, cursor_of(conn), params) is None  # flipped once
            expired = {"p_auction": "auc_raw1", "p_publisher": "pub_raw", "p_now": now + timedelta(seconds=61)}
            assert _RAW_FLIP_BILLED.first(conn, cursor_of(conn), expired) is None  # past its expiry
            assert conn.execute(_FLIP_BILLED, expired).first() is None  # SQLAlchemy agrees
            ok = {"p_auction": "auc_raw1", "p_publisher": "pub_raw", "p_now": now + timedelta(seconds=59)}
            assert conn.execute(_FLIP_BILLED, ok).first() is not None
        with store.read() as s:
            rows = s.execute(select(Auction.id, Auction.status).order_by(Auction.id)).all()
        assert [tuple(r) for r in rows] == [("auc_raw0", "billed"), ("auc_raw1", "billed")]
        # Several executions at once (one pipeline on psycopg): each one's row, in order, None where
        # nothing matched -- and each sees the ones before it (the second flip of auc_raw2 finds it billed).
        with store.engine.begin() as conn:
            RAW_INSERT_AUCTION.executemany(conn, cursor_of(conn), [_row(2, now), _row(3, now)])
        p = {"p_publisher": "pub_raw", "p_now": later}
        with store.engine.begin() as conn:
            got = _RAW_FLIP_BILLED.first_each(
                conn,
                cursor_of(conn),
                [
                    {**p, "p_auction": "auc_raw2"},
                    {**p, "p_auction": "auc_nope"},
                    {**p, "p_auction": "auc_raw2"},
                    {**p, "p_auction": "auc_raw3"},
                ],
            )
        assert [None if r is None else r[0] for r in got] == [1234, None, None, 1234]
        # An insert's RETURNING id on the cursor is the row's id.
        with store.engine.begin() as conn:
            ids = [
                _RAW_INSERT_TX.first(
                    conn,
                    cursor_of(conn),
                    {"kind": "charge", "auction_id": a, "created_at": now, "publisher_share_bps": 8000},
                )[0]
                for a in ("auc_raw2", "auc_raw3")
            ]
        with store.read() as s:
            rows = s.execute(
                select(LedgerTransaction.id, LedgerTransaction.auction_id).order_by(LedgerTransaction.id)
            ).all()
        assert [tuple(r) for r in rows] == [(ids[0], "auc_raw2"), (ids[1], "auc_raw3")] and ids[0] != ids[1]
        assert _RAW_FLIP_BILLED.first_each(None, None, []) == []
    finally:
        store.close()
        db.close()
