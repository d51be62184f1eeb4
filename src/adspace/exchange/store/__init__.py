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
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()
