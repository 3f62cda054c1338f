"""Importing the listing of an older indexer: CSV or JSON Lines with at least ``path``, optionally
``project`` and ``source``.

Each record is attributed to a source (its ``source`` column, else the default given, else the first
source) and looked up in the catalog by its path relative to that source's root (an absolute path below a
local source's root works too). Every project a record names is made (origin ``import``) and the media of
the location put in it by hand, so the membership follows the content from then on. Re-importing the
same file changes nothing. The report says what matched and what did not, and why.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from mediamesh.backends import features_of
from mediamesh.catalog.schema import files, projects, sources
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, MediameshError
from mediamesh.projects.membership import insert_project
from mediamesh.scanning.names import name_key, path_key
from mediamesh.services.projects import add_by_hand, validate_project_name
from mediamesh.services.sources import find_source

MAX_UNMATCHED_SHOWN = 50


def read_records(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) pairs; the format from ``fmt`` or the file's extension."""
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt in ("jsonl", "ndjson", "json"):
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInput(f"{path}:{number}: not a JSON object: {exc.msg}") from exc
                if not isinstance(record, dict):
                    raise InvalidInput(f"{path}:{number}: each line must be a JSON object")
                yield number, record
    elif fmt in ("csv", "tsv"):
        with path.open(encoding="utf-8-sig", newline="") as fh:
            sample = fh.read(65536)
            fh.seek(0)
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t") if sample.strip() else csv.excel
            reader = csv.DictReader(fh, dialect=dialect)
            if reader.fieldnames is None or "path" not in [f.strip().lower() for f in reader.fieldnames]:
                raise InvalidInput(f"{path}: the CSV needs a header with a 'path' column")
            for number, row in enumerate(reader, 2):
                yield number, {(k or "").strip().lower(): v for k, v in row.items()}
    else:
        raise InvalidInput(f"{path}: unknown format {fmt!r}; use --format csv or jsonl")


class _Sources:
    """Source lookups for records: by id or name, the default, and absolute paths below local roots."""

    def __init__(self, conn: Connection, default: str | None) -> None:
        self.rows = {r.id: r for r in conn.execute(select(sources).order_by(sources.c.id))}
        if not self.rows:
            raise InvalidInput("there is no source yet: add the sources the listing comes from first")
        self.conn = conn
        self.default = find_source(conn, default) if default else next(iter(self.rows.values()))
        self._ci: dict[int, bool] = {}

    def case_insensitive(self, row: Any) -> bool:
        if row.id not in self._ci:
            self._ci[row.id] = features_of(row.kind, row.features).case_insensitive
        return self._ci[row.id]

    def resolve(self, record: dict[str, Any]) -> tuple[Any, str]:
        path = str(record.get("path") or "").strip()
        if not path:
            raise InvalidInput("no path")
        named = str(record.get("source") or "").strip()
        if named:
            row = find_source(self.conn, named)
        elif path.startswith("/"):
            row = next(
                (
                    r
                    for r in self.rows.values()
                    if features_of(r.kind).local_paths and path.startswith(r.location.rstrip("/") + "/")
                ),
                self.default,
            )
        else:
            row = self.default
        if (
            path.startswith("/")
            and features_of(row.kind).local_paths
            and path.startswith(row.location.rstrip("/") + "/")
        ):
            path = path[len(row.location.rstrip("/")) + 1 :]
        return row, path.strip("/")


def import_listing(
    ctx: Context, listing: Path, fmt: str | None = None, default_source: str | None = None
) -> dict[str, Any]:
    if not listing.is_file():
        raise InvalidInput(f"{listing} is not a file")
    report: Counter[str] = Counter()
    unmatched: list[dict[str, Any]] = []
    projects_made: list[str] = []
    with ctx.catalog.write() as conn:
        lookup = _Sources(conn, default_source)
        names = {r.name: r.id for r in conn.execute(select(projects.c.id, projects.c.name))}
        for number, record in read_records(listing, fmt):
            report["records"] += 1
            try:
                row, rel = lookup.resolve(record)
                ci = lookup.case_insensitive(row)
                key = path_key(rel, ci)
                dir_key, _, name = key.rpartition("/")
                media_id = conn.execute(
                    select(files.c.media_id).where(
                        files.c.source_id == row.id,
                        files.c.dir_key == dir_key,
                        files.c.name_key == name_key(name, ci),
                    )
                ).scalar_one_or_none()
            except MediameshError as exc:
                media_id, why = None, exc.message
            else:
                why = f"not in the catalog on source {row.name!r} (scanned?)"
            if media_id is None:
                report["unmatched"] += 1
                if len(unmatched) < MAX_UNMATCHED_SHOWN:
                    unmatched.append({"line": number, "path": record.get("path"), "why": why})
                continue
            report["matched"] += 1
            project = str(record.get("project") or "").strip()
            if not project:
                continue
            try:
                project = validate_project_name(project)
            except InvalidInput as exc:
                report["unmatched"] += 1
                unmatched.append({"line": number, "path": record.get("path"), "why": exc.message})
                continue
            if project not in names:
                names[project] = insert_project(conn, project, f"imported from {listing.name}", "import")
                projects_made.append(project)
            if add_by_hand(conn, names[project], media_id, over_exclusion=False):
                report["memberships_added"] += 1
    return {
        "records": report["records"],
        "matched": report["matched"],
        "unmatched": report["unmatched"],
        "projects_created": projects_made,
        "memberships_added": report["memberships_added"],
        "unmatched_examples": unmatched,
    }
