"""Engine, sessions and migrations.

SQLite runs in WAL mode with ``synchronous=FULL`` and every transaction opened with
``BEGIN IMMEDIATE`` (one writer at a time, no lock upgrades that could fail mid-transaction), so a
committed charge survives the process being killed. PostgreSQL runs through psycopg 3.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_sessionmaker", "run_migrations"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str, *, immediate: bool = True, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for ``url`` (``sqlite:///file`` or ``postgresql+psycopg://...``).

    For SQLite, ``immediate=False`` gives an engine for read-only sessions: its transactions begin
    deferred, so in WAL mode they read a snapshot and never wait for the writer.
    ``sqlite_synchronous``: ``FULL`` (default) makes every commit durable, power loss included;
    ``NORMAL`` survives a killed process but may lose the last commits on power loss.
    """
    if sqlite_synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"sqlite_synchronous: must be FULL or NORMAL, got {sqlite_synchronous!r}")
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=20,
            max_overflow=40,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            if immediate:  # writers never checkpoint inside a commit: the Store's checkpointer thread does
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # pragma: no cover
            # On the driver's connection: SQLAlchemy's statement machinery costs more than the BEGIN.
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_size=20, max_overflow=40, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def run_migrations(engine: Engine) -> None:
    """Upgrade the database to the newest Alembic revision (creates the schema on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
