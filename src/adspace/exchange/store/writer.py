"""The group-commit writer: concurrent requests' writes committed together, one transaction per batch.

A request hands its write to :meth:`GroupCommitWriter.submit` as a function of a SQLAlchemy Core
:class:`~sqlalchemy.engine.Connection` (an *op*) and blocks until the transaction that ran it has
committed. One writer runs at a time: whichever request finds the writer idle becomes it, takes
every op queued so far (up to ``max_batch``), runs them in order inside one transaction, commits once,
and answers each waiter with its op's result. Ops that arrive meanwhile form the next batch, so under
load one commit (one ``fsync`` on SQLite) serves many requests, and a request alone pays no wait at all.

Guarantees, whatever the batching:

* **Acknowledged means committed.** ``submit`` returns only after ``COMMIT`` returned; an op's
  result never reaches its caller from a transaction that was rolled back.
* **Ops are isolated from each other's failures.** An op signals an expected refusal by its return
  value (for example a conditional ``UPDATE`` that matched no row), which commits the others. If an op
  *raises* (an integrity error, a lost connection), the batch is rolled back and every op of it is run
  again in a transaction of its own, so the exception reaches only the op that raised it. Ops must
  therefore be functions of the database alone (no side effect before commit): the caller applies
  in-memory effects after ``submit`` returns.
* **Order.** Ops run in submission order within a batch, and batches commit one after another.

SQLite allows one writer at a time anyway (``BEGIN IMMEDIATE``); on PostgreSQL several processes
each run their own writer, and row locks taken by the conditional updates serialise them per row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

__all__ = ["GroupCommitWriter", "Op"]

T = TypeVar("T")
Op = Callable[[Connection], Any]


class _Waiter:
    __slots__ = ("op", "result", "error", "done")

    def __init__(self, op: Op):
        self.op = op
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommitWriter:
    """Runs ops of concurrent callers in shared transactions (see the module docstring).

    ``max_batch`` bounds how many ops one transaction carries (latency of the last op in a batch
    grows with it). Counters: ``batches`` (transactions committed), ``ops`` (ops committed),
    ``retried`` (batches rolled back and re-run op by op).
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256, lock: threading.Lock | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch: must be >= 1, got {max_batch}")
        self.engine = engine
        self.max_batch = max_batch
        self._lock = lock  # taken around each transaction (SQLite: shared with the ORM writers)
        self._cond = threading.Condition()
        self._pending: list[_Waiter] = []
        self._busy = False
        self.batches = 0
        self.ops = 0
        self.retried = 0
        self.seconds = 0.0

    def submit(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` in a committed transaction (shared with concurrent ops); return its result."""
        w = _Waiter(op)
        with self._cond:
            self._pending.append(w)
            while not w.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if w.error is not None:
            raise w.error
        return w.result

    def _commit(self, batch: list[_Waiter]) -> None:
        if self._lock is None:
            return self._commit_unlocked(batch)
        with self._lock:
            return self._commit_unlocked(batch)

    def _commit_unlocked(self, batch: list[_Waiter]) -> None:
        t0 = time.perf_counter()
        try:
            try:
                results = []
                with self.engine.begin() as conn:
                    for w in batch:
                        results.append(w.op(conn))
            except BaseException:  # noqa: BLE001 - rolled back; each op is re-run alone below
                if len(batch) == 1:
                    raise
                self.retried += 1
                for w in batch:
                    try:
                        with self.engine.begin() as conn:
                            w.result = w.op(conn)
                    except BaseException as exc:  # noqa: BLE001 - handed to its own caller only
                        w.error = exc
                    self.batches += 1
                    self.ops += w.error is None
                return
            for w, r in zip(batch, results, strict=True):
                w.result = r
            self.batches += 1
            self.ops += len(batch)
        except BaseException as exc:  # noqa: BLE001 - a batch of one: its caller gets the error
            for w in batch:
                w.error = exc
        finally:
            self.seconds += time.perf_counter() - t0
            for w in batch:
                w.done = True
