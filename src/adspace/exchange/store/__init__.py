"""Persistence of the exchange: engine, tables, migrations and the group-commit writer.

:class:`Store` is the one unit of work every service shares: ``read()`` for snapshot reads (on
SQLite they never wait for the writer), ``tx()`` for an ORM write transaction (rare paths: accounts,
campaigns), and ``writer.submit(op)`` for the hot paths (auctions, billing notices), whose writes are
group-committed. The store knows tables, not auctions' economics.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adspace.exchange.store.engine import make_engine, make_sessionmaker, run_migrations
from adspace.exchange.store.writer import GroupCommitWriter

__all__ = ["Store", "GroupCommitWriter"]


class Store:
    """Engines, sessions and the writer for one database URL (one per process)."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", max_batch: int = 256):
        self.engine: Engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.Session: sessionmaker[Session] = make_sessionmaker(self.engine)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            self._read_engine: Engine | None = make_engine(url, immediate=False, sqlite_synchronous=sqlite_synchronous)
            self.ReadSession = make_sessionmaker(self._read_engine)
        else:
            self._read_engine, self.ReadSession = None, self.Session
        self.read_engine: Engine = self._read_engine or self.engine
        # SQLite has one writer at a time: queue ORM writers on a fair in-process lock rather than on
        # SQLite's busy handler (which sleeps and polls). The group-commit writer takes the same lock.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self.writer = GroupCommitWriter(self.engine, max_batch=max_batch, lock=self._write_lock)
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.is_sqlite and self.engine.url.database not in (None, "", ":memory:"):
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="adspace-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoint_loop(self, every: float = 1.0) -> None:
        """SQLite: copy the write-ahead log into the database file off the commit path.

        Writers run with ``wal_autocheckpoint=0``, so no commit ever pays for a checkpoint (a page copy
        and an ``fsync`` of the database file: the worst latencies under load). A PASSIVE checkpoint
        waits for no reader or writer. Committed data is durable in the log either way.
        """
        import sqlite3

        conn = sqlite3.connect(self.engine.url.database, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stop.wait(every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # pragma: no cover - busy: the next tick tries again
                    pass
        finally:
            conn.close()

    def read(self) -> Session:
        """A session for reads (on SQLite it never waits for the writer)."""
        return self.ReadSession()

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """One ORM write transaction (committed on success, rolled back on error)."""
        if self._write_lock is None:
            with self.Session.begin() as s:
                yield s
            return
        with self._write_lock, self.Session.begin() as s:
            yield s

    def migrate(self) -> None:
        run_migrations(self.engine)

    def close(self) -> None:
        self.writer.close()
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()
