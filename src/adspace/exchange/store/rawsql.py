"""Hot statements run on the DB-API cursor: compiled once per dialect, executed without SQLAlchemy.

The group-commit writer runs a handful of statements per auction and per billing notice. Through a
SQLAlchemy ``Connection`` each costs its execution machinery (context, events, result wrapping, type
processing of every row): tens of microseconds, more than the database's own work. A
:class:`RawStatement` is a SQLAlchemy Core statement compiled once for the engine's dialect (so the
SQL text, the parameter order and the bind types are SQLAlchemy's own, identical to what the ORM path
sends), then executed directly on the driver's cursor (``sqlite3`` or ``psycopg``) of the connection
whose transaction the writer holds. Nothing changes in what the database sees or in the
transaction: the cursor belongs to that same connection.

Only parameters with a type that needs a bind conversion (``DateTime`` and ``Boolean`` on SQLite) are
converted, with the dialect's own processor; result rows come back as the driver's tuples, so use
these statements only for columns the driver returns as Python values already (strings, integers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ClauseElement

__all__ = ["RawStatement", "cursor_of", "integrity_errors"]


class RawStatement:
    """A Core statement compiled per dialect, run on the DB-API cursor (see the module docstring)."""

    def __init__(self, stmt: ClauseElement, *, column_keys: Sequence[str] | None = None):
        self.stmt = stmt
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._by_dialect: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {}

    def _compiled(self, dialect: Dialect) -> tuple[str, Callable[[dict[str, Any]], Any]]:
        got = self._by_dialect.get(dialect.name)
        if got is not None:
            return got
        kw: dict[str, Any] = {}
        if self.column_keys is not None:
            kw["column_keys"] = self.column_keys
        c = self.stmt.compile(dialect=dialect, **kw)
        procs: dict[str, Callable[[Any], Any]] = {}
        consts: dict[str, Any] = {}  # binds SQLAlchemy made for literals in the statement ('held', 1, ...)
        for name, bp in c.binds.items():
            proc = bp.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                procs[name] = _last_value_memo(proc)
            if not bp.required and bp.callable is None:
                consts[name] = bp.value if proc is None else proc(bp.value)
        if c.positional:
            # per position: (name, converter) for a caller's parameter, or a constant
            slots = tuple((n, procs.get(n), n in consts, consts.get(n)) for n in (c.positiontup or ()))

            def params(p: dict[str, Any]) -> tuple:
                return tuple(v if const else (p[n] if f is None else f(p[n])) for n, f, const, v in slots)

        else:
            items = tuple((n, f) for n, f in procs.items() if n not in consts)

            def params(p: dict[str, Any]) -> dict[str, Any]:
                q = {**consts, **p} if consts else dict(p)
                for n, f in items:
                    q[n] = f(q[n])
                return q

        got = (c.string, params)
        self._by_dialect[dialect.name] = got
        return got

    def execute(self, conn: Connection, cur, params: dict[str, Any]):
        """Execute once with ``params`` (by bind name) on ``cur``; returns the cursor."""
        sql, conv = self._compiled(conn.dialect)
        cur.execute(sql, conv(params))
        return cur

    def first(self, conn: Connection, cur, params: dict[str, Any]) -> tuple | None:
        """Execute and return the first row (``UPDATE ... RETURNING``: the row it changed, or ``None``)."""
        self.execute(conn, cur, params)
        row = cur.fetchone()
        if row is not None:
            cur.fetchall()  # drain (a RETURNING statement is finished only once read to the end)
        return row

    def first_each(self, conn: Connection, cur, params: Sequence[dict[str, Any]]) -> list[tuple | None]:
        """Execute once per parameter set, in order, in the transaction; each execution's first row
        (``None`` where it returned none). The same statements as calling :meth:`first` in a loop; on
        psycopg they go out as one pipeline (one round trip to the server instead of one each)."""
        if not params:
            return []
        if conn.dialect.driver != "psycopg":
            return [self.first(conn, cur, p) for p in params]
        sql, conv = self._compiled(conn.dialect)
        cur.executemany(sql, [conv(p) for p in params], returning=True)
        out = []
        while True:
            out.append(cur.fetchone())
            if not cur.nextset():
                break
        return out

    def executemany(self, conn: Connection, cur, rows: Sequence[dict[str, Any]]) -> None:
        """Execute once per row (one driver call: ``executemany``)."""
        if not rows:
            return
        sql, conv = self._compiled(conn.dialect)
        cur.executemany(sql, [conv(r) for r in rows])


def _last_value_memo(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``proc`` remembering its last input and output: a batch's rows share their times (one ``now``,
    one expiry), so SQLite's date formatting runs once per batch rather than once per row."""
    memo: list[tuple[Any, Any]] = [(object(), None)]  # one (input, output) pair, replaced whole

    def convert(value):
        seen, out = memo[0]
        if value is seen:
            return out
        out = proc(value)
        memo[0] = (value, out)
        return out

    return convert


def cursor_of(conn: Connection):
    """A DB-API cursor on the driver connection under ``conn`` (inside ``conn``'s transaction)."""
    return conn.connection.driver_connection.cursor()


def integrity_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    """The exceptions a constraint violation raises: SQLAlchemy's, and the driver's own (raised by
    statements run on the cursor, which SQLAlchemy does not wrap)."""
    return (IntegrityError, engine.dialect.dbapi.IntegrityError)
