"""The group-commit writer: concurrent requests' writes committed together, one transaction per batch.

A request hands its write to the writer as a function of a SQLAlchemy Core
:class:`~sqlalchemy.engine.Connection` (an *op*) and gets a :class:`~concurrent.futures.Future` that
resolves once the transaction that ran it has committed (:meth:`GroupCommitWriter.submit` waits for
it; an event loop awaits it with :func:`asyncio.wrap_future`, holding no thread). One writer thread
takes every op queued so far (up to ``max_batch``), runs them in order inside one transaction, commits
once, and answers each waiter with its op's result. Ops that arrive meanwhile form the next batch, so
under load one commit (one ``fsync`` on SQLite) serves many requests, and an op alone waits for nothing
but its own commit.

Guarantees, whatever the batching:

* **Acknowledged means committed.** A future resolves only after ``COMMIT`` returned; an op's result
  never reaches its caller from a transaction that was rolled back.
* **Ops are isolated from each other's failures.** An op signals an expected refusal by its return
  value (for example a conditional ``UPDATE`` that matched no row), which commits the others. If an op
  *raises* (an integrity error, a lost connection), the batch is rolled back and every op of it is run
  again in a transaction of its own, so the exception reaches only the op that raised it. Ops must
  therefore be functions of the database alone (no side effect before commit): the caller applies
  in-memory effects after its future resolves.
* **Order.** Ops run in submission order within a batch, and batches commit one after another.
* **Set-based runs.** An op may carry a ``many`` function (the same object on every op of its kind):
  consecutive ops of a batch that share it run as one call, ``many(conn, ops)``, which must have the
  effect of running them in order and return one result per op (billing charges do: fewer statements
  per notice). Each op stays callable alone: that is how the batch is re-run when something raises.
* **No deadlock stalls across processes** (PostgreSQL). Two processes' batches may lock the same
  campaign rows in different orders. A batch of several ops runs with ``lock_timeout`` =
  :data:`LOCK_TIMEOUT`, so instead of waiting out a deadlock (PostgreSQL's ``deadlock_timeout``,
  1 s) it fails fast and is re-run op by op as above; a lone op locks at most its campaigns in id
  order, and such transactions cannot deadlock with each other.

SQLite allows one writer at a time anyway (``BEGIN IMMEDIATE``; the ORM's rare write transactions
share ``lock`` with this writer); on PostgreSQL several processes each run their own writer, and the
row locks taken by the conditional updates serialise them per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

__all__ = ["AsyncWaiter", "GroupCommitWriter", "Op", "resolve_all", "run_ops"]

T = TypeVar("T")
Op = Callable[[Connection], Any]

#: PostgreSQL: how long a batch of several ops waits for a row lock before it is re-run op by op.
LOCK_TIMEOUT = "50ms"


class AsyncWaiter:
    """A waiter on an event loop: an :class:`asyncio.Future` of ``loop``, resolved from another thread.

    :func:`resolve_all` answers all the waiters of one loop with a single ``call_soon_threadsafe``
    (one wake-up of the loop per batch, not one per request as ``asyncio.wrap_future`` does).
    """

    __slots__ = ("loop", "future")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future = self.loop.create_future()

    def done(self) -> bool:
        return self.future.done()


def _deliver(items: list) -> None:
    """On the loop: set each waiter's result or exception (a cancelled waiter is skipped)."""
    for fut, ok, value in items:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def resolve_all(answers: list) -> None:
    """Answer waiters: ``answers`` holds ``(waiter, ok, value)`` with ``waiter`` a concurrent
    :class:`~concurrent.futures.Future` or an :class:`AsyncWaiter`; ``ok`` False means ``value`` is
    the exception to raise. The loops' waiters are answered in one callback per loop."""
    by_loop: dict[Any, list] = {}
    for w, ok, value in answers:
        if isinstance(w, AsyncWaiter):
            by_loop.setdefault(w.loop, []).append((w.future, ok, value))
        elif ok:
            w.set_result(value)
        else:
            w.set_exception(value)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, items)
        except RuntimeError:  # pragma: no cover - the loop is closed: nobody is waiting any more
            pass


def run_ops(conn: Connection, ops: list[Op]) -> list[Any]:
    """Run ``ops`` in order in ``conn``'s transaction; a run of consecutive ops sharing a ``many``
    function goes to it in one call (module docstring). One result per op."""
    out: list[Any] = []
    i, n = 0, len(ops)
    while i < n:
        many = getattr(ops[i], "many", None)
        j = i + 1
        if many is not None:
            while j < n and getattr(ops[j], "many", None) is many:
                j += 1
        if j - i > 1:
            got = many(conn, ops[i:j])
            if len(got) != j - i:
                raise RuntimeError(f"{many!r} returned {len(got)} results for {j - i} ops")
            out += got
        else:
            out.append(ops[i](conn))
        i = j
    return out


class GroupCommitWriter:
    """Runs ops of concurrent callers in shared transactions on one thread (see the module docstring).

    ``max_batch`` bounds how many ops one transaction carries (latency of the last op in a batch
    grows with it). Counters: ``batches`` (transactions committed), ``ops`` (ops committed),
    ``retried`` (batches rolled back and re-run op by op), ``seconds`` (time in transactions).
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256, lock: threading.Lock | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
        self.engine = engine
        self.max_batch = max_batch
        self._lock = lock  # taken around each transaction (SQLite: shared with the ORM writers)
        self._cond = threading.Condition()
        self._pending: list[tuple[Op, Future | AsyncWaiter]] = []
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None  # the writer thread's own (see _transaction)
        self._closed = False
        self.batches = 0
        self.ops = 0
        self.retried = 0
        self.seconds = 0.0
        self._lock_timeout = LOCK_TIMEOUT if engine.dialect.name == "postgresql" else None

    def submit_future(self, op: Callable[[Connection], T]) -> Future[T]:
        """Queue ``op``; the future resolves with its result (or exception) once its transaction committed."""
        return self._queue([op])[0]

    async def run_async(self, op: Callable[[Connection], T]) -> T:
        """Queue ``op`` from an event loop and wait (holding no thread) for its committed result."""
        w = AsyncWaiter()
        self._queue([op], [w])
        return await w.future

    def _queue(self, ops: list[Callable[[Connection], Any]], futs: list | None = None) -> list:
        if futs is None:
            futs = [Future() for _ in ops]
        with self._cond:
            if self._closed:
                raise RuntimeError("the writer is closed")
            self._pending.extend(zip(ops, futs, strict=True))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="adspace-writer", daemon=True)
                self._thread.start()
            self._cond.notify()
        return futs

    def submit(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in a committed transaction (shared with concurrent ops); return its result."""
        return self.submit_future(op).result()

    def submit_many(self, ops: list[Callable[[Connection], Any]]) -> list[Any]:
        """Run several ops (in order, normally in one transaction); return each one's result or exception.

        Used by the auction pipeline, which hands over a whole cleared batch at once. An op that raised
        has its exception in its place of the returned list; the others committed.
        """
        futs: list[Future] = self._queue(ops)  # queued together: one transaction unless the writer is mid-commit
        return [f.exception() or f.result() for f in futs]

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            t = self._thread
        if t is not None:
            t.join(timeout=30)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    self._thread = None
                    conn, self._conn = self._conn, None
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    return
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            if self._lock is None:
                self._commit(batch)
            else:
                with self._lock:
                    self._commit(batch)

    @contextlib.contextmanager
    def _transaction(self):
        """A transaction on the writer's own connection, kept open between batches (a connection from
        the pool per batch cost more than the batch's statements). After a failure the connection is
        closed, and the next transaction opens a fresh one."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.connect()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def _commit(self, batch: list[tuple[Op, Any]]) -> None:
        t0 = time.perf_counter()
        try:
            results = []
            with self._transaction() as conn:
                if self._lock_timeout and len(batch) > 1:
                    # Several processes' batches can lock the same campaign rows in different orders:
                    # a deadlock would wait PostgreSQL's deadlock_timeout (1 s) before one side fails.
                    # A batch instead gives up a lock wait after LOCK_TIMEOUT and is re-run op by op
                    # (below), and a lone op locks its campaigns in id order, so lone ops never deadlock.
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{self._lock_timeout}'")
                results = run_ops(conn, [op for op, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - rolled back; each op is re-run alone below
            if len(batch) == 1:
                self.seconds += time.perf_counter() - t0
                resolve_all([(batch[0][1], False, exc)])
                return
            self.retried += 1
            answers = []
            for op, fut in batch:
                try:
                    with self._transaction() as conn:
                        r = op(conn)
                except BaseException as e:  # noqa: BLE001 - handed to its own caller only
                    answers.append((fut, False, e))
                else:
                    self.ops += 1
                    answers.append((fut, True, r))
                self.batches += 1
            self.seconds += time.perf_counter() - t0
            resolve_all(answers)
            return
        self.batches += 1
        self.ops += len(batch)
        self.seconds += time.perf_counter() - t0
        resolve_all([(fut, True, r) for (_, fut), r in zip(batch, results, strict=True)])
