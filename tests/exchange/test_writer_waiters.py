"""The group-commit writer answers event-loop waiters in bulk: each gets its own op's result or
exception, a cancelled waiter is skipped, and nothing is answered before its commit."""

from __future__ import annotations

import asyncio

from sqlalchemy import create_engine, text

from adspace.exchange.store.writer import GroupCommitWriter


def test_async_waiters_get_their_own_committed_results(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    writer = GroupCommitWriter(engine)

    def insert(k: int):
        def op(conn):
            conn.execute(text("INSERT INTO t (k) VALUES (:k)"), {"k": k})
            return k * 10

        return op

    async def main():
        ops = [writer.run_async(insert(k)) for k in range(40)]
        dup = writer.run_async(insert(3))  # violates the primary key: only this one fails
        cancelled = asyncio.ensure_future(writer.run_async(insert(100)))
        await asyncio.sleep(0)
        cancelled.cancel()  # its waiter is gone; the others must still be answered
        results = await asyncio.gather(*ops)
        try:
            await dup
        except Exception as exc:  # noqa: BLE001 - the driver's integrity error, whichever driver
            failed = exc
        else:  # pragma: no cover - would be a lost constraint
            failed = None
        return results, failed

    try:
        results, failed = asyncio.run(main())
    finally:
        writer.close()
    assert results == [k * 10 for k in range(40)]
    assert failed is not None and "UNIQUE" in str(failed).upper()
    with engine.connect() as conn:
        keys = [r[0] for r in conn.execute(text("SELECT k FROM t ORDER BY k"))]
    # Every acknowledged op committed; the cancelled op's write still committed (cancelling a waiter
    # does not undo a queued op), and the failing op left nothing.
    assert keys[:40] == list(range(40)) and set(keys) <= set(range(40)) | {100}
