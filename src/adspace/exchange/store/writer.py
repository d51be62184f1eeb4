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

SQLite allows one writer at a time anyway (``BEGIN IMMEDIATE``; the ORM's rare write transactions
share ``lock`` with this writer); on PostgreSQL several processes each run their own writer, and the
row locks taken by the conditional updates serialise them per row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

__all__ = ["GroupCommitWriter", "Op"]

T = TypeVar("T")
Op = Callable[[Connection], Any]


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
        self._pending: list[tuple[Op, Future]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0
        self.ops = 0
        self.retried = 0
        self.seconds = 0.0

    def submit_future(self, op: Callable[[Connection], T]) -> Future[T]:
        """Queue ``op``; the future resolves with its result (or exception) once its transaction committed."""
        return self._queue([op])[0]

    def _queue(self, ops: list[Callable[[Connection], Any]]) -> list[Future]:
        futs: list[Future] = [Future() for _ in ops]
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
        futs = self._queue(ops)  # queued together: one transaction unless the writer is mid-commit
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
                    return
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            if self._lock is None:
                self._commit(batch)
            else:
                with self._lock:
                    self._commit(batch)

    def _commit(self, batch: list[tuple[Op, Future]]) -> None:
        t0 = time.perf_counter()
        try:
            results = []
            with self.engine.begin() as conn:
                for op, _ in batch:
                    results.append(op(conn))
        except BaseException as exc:  # noqa: BLE001 - rolled back; each op is re-run alone below
            if len(batch) == 1:
                self.seconds += time.perf_counter() - t0
                batch[0][1].set_exception(exc)
                return
            self.retried += 1
            for op, fut in batch:
                try:
                    with self.engine.begin() as conn:
                        r = op(conn)
                except BaseException as e:  # noqa: BLE001 - handed to its own caller only
                    fut.set_exception(e)
                else:
                    self.ops += 1
                    fut.set_result(r)
                self.batches += 1
            self.seconds += time.perf_counter() - t0
            return
        self.batches += 1
        self.ops += len(batch)
        self.seconds += time.perf_counter() - t0
        for (_, fut), r in zip(batch, results, strict=True):
            fut.set_result(r)
