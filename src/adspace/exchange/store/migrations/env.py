"""Alembic environment: runs on the connection the exchange hands it (see ``db.run_migrations``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from adspace.exchange.store.tables import Base

try:
    config = context.config
except AttributeError:  # imported outside an Alembic command (e.g. by doctest collection): nothing to run
    config = None
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as c:
        context.configure(connection=c, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if config is not None:
    run()
