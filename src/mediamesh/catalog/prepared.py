"""Statements compiled once per dialect and run on the DBAPI cursor.

A scan writes hundreds of thousands of rows; SQLAlchemy Core spends tens of microseconds per row on
parameter processing, more than SQLite spends storing it. These statements keep Core's dialect-correct SQL
and bind processors (so datetimes are stored exactly as Core would store them) without that cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class _Memo:
    """A bind processor that remembers its last value: a batch stamps every row with the same datetime,
    and formatting it costs more than storing the row."""

    __slots__ = ("_fn", "_in", "_out")

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self._fn = fn
        self._in: Any = object()
        self._out: Any = None

    def __call__(self, value: Any) -> Any:
        if value is not self._in:
            self._in, self._out = value, self._fn(value)
        return self._out


class _Compiled:
    def __init__(self, stmt: ClauseElement, dialect: Dialect, keys: Sequence[str] | None) -> None:
        compiled = cast(
            SQLCompiler, stmt.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        )
        self.sql = str(compiled)
        self.defaults: dict[str, Any] = dict(compiled.params)
        self.positions: list[str] | None = list(compiled.positiontup or ()) if compiled.positional else None
        processors = cast(dict[str, Callable[[Any], Any] | None], dict(compiled._bind_processors))
        self.processors = {k: _Memo(p) for k, p in processors.items() if p is not None}

        names = (
            self.positions
            if self.positions is not None
            else list(dict.fromkeys(compiled.bind_names.values()))
        )
        #: (name, default, processor) in parameter order: one tight loop per row.
        self.plan = [(k, self.defaults.get(k), self.processors.get(k)) for k in names]

    def params(self, row: dict[str, Any]) -> Any:
        get = row.get
        values = [
            (proc(v) if proc is not None and v is not None else v)
            for k, default, proc in self.plan
            for v in (get(k, default),)
        ]
        if self.positions is not None:
            return tuple(values)
        named = dict(row)
        named.update(zip((k for k, _, _ in self.plan), values, strict=True))
        return named


class Prepared:
    """One statement (or a function of the dialect's name that builds it, for dialect-specific upserts);
    ``keys`` limits an INSERT to the columns the rows carry."""

    def __init__(
        self, stmt: ClauseElement | Callable[[str], ClauseElement], keys: Sequence[str] | None = None
    ) -> None:
        self.stmt = stmt
        self.keys = keys
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        name = conn.dialect.name
        compiled = self._by_dialect.get(name)
        if compiled is None:
            stmt = self.stmt if isinstance(self.stmt, ClauseElement) else self.stmt(name)
            compiled = self._by_dialect[name] = _Compiled(stmt, conn.dialect, self.keys)
        return compiled

    def executemany(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        compiled = self._compiled(conn)
        conn.exec_driver_sql(compiled.sql, [compiled.params(r) for r in rows])

    def fetch(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        compiled = self._compiled(conn)
        result = conn.exec_driver_sql(compiled.sql, compiled.params(params))
        return [
            tuple(r) for r in result.cursor.fetchall()
        ]  # the DBAPI's own fetch: one call, not one per row
