"""``mediamesh catalog copy --to URL``: the whole catalog into another database (SQLite to PostgreSQL, on
the way to scale-out), verified row for row.

The target is migrated to the same revision first. Tables are copied in foreign-key order, each in
primary-key order and in batches, with ``INSERT ... ON CONFLICT DO NOTHING``: a copy stopped half-way
goes on where its committed batches end when run again (it starts after the highest key already there),
and a second run over a complete copy writes nothing. Then every row of every table is compared between
the two; any difference (a target that held other data) is reported and the command fails. PostgreSQL's
id sequences are moved past the copied ids. Only the catalog's own tables are copied: the task engine's
queue is rebuilt from the jobs table by the leader (catalog/engine.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from mediamesh.catalog import Catalog
from mediamesh.catalog.schema import metadata
from mediamesh.catalog.times import aware
from mediamesh.errors import Conflict, InvalidInput

#: Rows per read and per write transaction.
BATCH = 2000
#: Not the catalog's data: the live job runners, and the write counter that caches compare (each
#: database keeps its own).
SKIPPED = ("workers", "catalog_state")


@dataclass
class TableReport:
    name: str
    source_rows: int = 0
    copied: int = 0
    already: int = 0
    differing: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "rows": self.source_rows,
            "copied": self.copied,
            "already_there": self.already,
            "differing": len(self.differing),
            "examples": self.differing[:5],
        }


Progress = Callable[[str, int, int], None]


def copy_catalog(source: Catalog, to_url: str, progress: Progress | None = None) -> dict[str, Any]:
    """Copy ``source`` into the database at ``to_url`` and verify it; returns a report per table. Raises
    Conflict when the target differs after the copy (it held other data)."""
    try:
        target_url = make_url(to_url)
    except Exception as exc:
        raise InvalidInput(f"--to {to_url!r} is not a database URL ({exc})") from None
    if target_url.get_backend_name() not in ("postgresql", "sqlite"):
        raise InvalidInput("--to takes postgresql+psycopg://user:password@host/db (or sqlite:///path.db)")
    if target_url.render_as_string(hide_password=False) == source.url.render_as_string(hide_password=False):
        raise InvalidInput("--to is the catalog being copied")
    target = Catalog(to_url)
    try:
        target.migrate()
        reports = []
        for table in metadata.sorted_tables:
            if table.name in SKIPPED:
                continue
            report = TableReport(table.name)
            _copy_table(source, target, table, report, progress)
            _verify_table(source, target, table, report)
            reports.append(report)
        if not target.is_sqlite:
            _move_sequences(target)
    finally:
        target.close()
    out = {
        "to": target_url.render_as_string(hide_password=True),
        "tables": [r.public() for r in reports],
        "rows": sum(r.source_rows for r in reports),
        "copied": sum(r.copied for r in reports),
        "verified": not any(r.differing for r in reports),
    }
    bad = [r for r in reports if r.differing]
    if bad:
        detail = "; ".join(f"{r.name}: {len(r.differing)} (e.g. {r.differing[0]})" for r in bad)
        raise Conflict(
            f"the copy differs from the catalog in {sum(len(r.differing) for r in bad)} row(s): {detail}. "
            "The target held other data: copy into an empty database."
        )
    return out


def _pk(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


def _keys(catalog: Catalog, table: Table) -> list[Any]:
    """The primary key in byte order on both databases (PostgreSQL's text order follows its locale;
    SQLite's and Python's are by code point, as "C" is): resuming and comparing need the same order."""
    return [c.collate("C") if not catalog.is_sqlite and c.type.python_type is str else c for c in _pk(table)]


def _copy_table(
    source: Catalog, target: Catalog, table: Table, report: TableReport, progress: Progress | None
) -> None:
    pk = _pk(table)
    ordered = _keys(source, table)
    with source.read() as conn:
        report.source_rows = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
    with target.read() as conn:
        report.already = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        # Resume after the highest key there: batches are committed in key order.
        last = conn.execute(select(*pk).order_by(*(c.desc() for c in _keys(target, table))).limit(1)).first()
    insert = (postgresql.insert if not target.is_sqlite else sqlite.insert)(table).on_conflict_do_nothing()
    after: tuple[Any, ...] | None = tuple(last) if last is not None else None
    done = report.already
    while True:
        query = select(table).order_by(*ordered).limit(BATCH)
        if after is not None:
            query = (
                query.where(tuple_(*ordered) > tuple_(*after))
                if len(pk) > 1
                else query.where(ordered[0] > after[0])
            )
        with source.read() as conn:
            # Times with their zone: a naive one would be read in the target session's time zone.
            rows = [
                {k: aware(v) if isinstance(v, datetime) else v for k, v in r._mapping.items()}
                for r in conn.execute(query)
            ]
        if not rows:
            break
        with target.write(bump=False) as conn:
            conn.execute(insert, rows)
        after = tuple(rows[-1][c.name] for c in pk)
        done += len(rows)
        if progress is not None:
            progress(table.name, min(done, report.source_rows), report.source_rows)
    with target.read() as conn:  # (a driver's row count for a batch of ON CONFLICT inserts is no help)
        report.copied = (
            int(conn.execute(select(func.count()).select_from(table)).scalar_one()) - report.already
        )
    if progress is not None:
        progress(table.name, report.source_rows, report.source_rows)


def _rows(catalog: Catalog, conn: Connection, table: Table) -> Iterator[tuple[Any, ...]]:
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
        select(table).order_by(*_keys(catalog, table))
    )
    for row in result:
        yield tuple(_normal(v) for v in row)


def _normal(value: Any) -> Any:
    """One form for what the two databases hand back differently (naive UTC times, JSON key order)."""
    if isinstance(value, datetime):
        return aware(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _verify_table(source: Catalog, target: Catalog, table: Table, report: TableReport) -> None:
    """Row for row, in key order, both sides streamed."""
    keys = [c.name for c in _pk(table)]
    names = [c.name for c in table.columns]
    at = [names.index(k) for k in keys]
    with source.read() as a, target.read() as b:
        left, right = _rows(source, a, table), _rows(target, b, table)
        x, y = next(left, None), next(right, None)
        while x is not None or y is not None:
            kx = tuple(x[i] for i in at) if x is not None else None
            ky = tuple(y[i] for i in at) if y is not None else None
            if x is not None and y is not None and kx == ky:
                if x != y:
                    changed = [n for n, u, v in zip(names, x, y, strict=True) if u != v]
                    report.differing.append(f"key {kx}: {', '.join(changed)} differ")
                x, y = next(left, None), next(right, None)
            elif y is None or (x is not None and kx is not None and ky is not None and _before(kx, ky)):
                report.differing.append(f"key {kx}: missing from the copy")
                x = next(left, None)
            else:
                report.differing.append(f"key {ky}: in the copy only")
                y = next(right, None)


def _before(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    try:
        return bool(a < b)
    except TypeError:
        return str(a) < str(b)


def _move_sequences(target: Catalog) -> None:
    """After rows with explicit ids: each serial id's sequence continues after the highest one."""
    with target.write(bump=False) as conn:
        for table in metadata.sorted_tables:
            pk = _pk(table)
            if len(pk) != 1 or not pk[0].autoincrement or pk[0].type.python_type is not int:
                continue
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name}
            )
            name = seq.scalar()
            if name is not None:
                conn.execute(
                    text(
                        f"SELECT setval(:s, COALESCE((SELECT MAX({pk[0].name}) FROM {table.name}), 0) + 1, false)"
                    ),
                    {"s": name},
                )
