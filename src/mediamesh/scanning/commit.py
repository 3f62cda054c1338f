"""Stage 4, commit: write outcomes to the catalog in batches, each batch one short write transaction.

Every batch leaves the catalog consistent: a scan that stops between two batches has recorded true facts
about what it reached, and the next scan skips that work as unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ClauseElement

from mediamesh.catalog import Catalog
from mediamesh.catalog import events as event_log
from mediamesh.catalog.prepared import Prepared
from mediamesh.catalog.schema import files, media, replaced
from mediamesh.catalog.times import now_utc
from mediamesh.scanning.model import KnownFile, Outcome, Result


def _insert(dialect: str) -> Any:
    return (sqlite if dialect == "sqlite" else postgresql).insert


def _media_insert(dialect: str) -> ClauseElement:
    return _insert(dialect)(media).on_conflict_do_nothing()  # type: ignore[no-any-return]


def _files_upsert(dialect: str) -> ClauseElement:
    stmt = _insert(dialect)(files)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[files.c.source_id, files.c.dir_key, files.c.name_key],
        set_={
            "path": excluded.path,
            "size": excluded.size,
            "mtime_ns": excluded.mtime_ns,
            "file_id": excluded.file_id,
            "quick_fp": excluded.quick_fp,
            "media_id": excluded.media_id,
            "state": "present",
            "missing_since": None,
            "vanished_scan_id": None,
            "last_seen": excluded.last_seen,
            "changed_scan_id": excluded.changed_scan_id,
        },
    )


MEDIA_KEYS = ("id", "size", "kind", "first_seen")
FILE_KEYS = (
    "source_id",
    "path",
    "dir_key",
    "name_key",
    "size",
    "mtime_ns",
    "file_id",
    "quick_fp",
    "media_id",
    "state",
    "first_seen",
    "last_seen",
    "changed_scan_id",
)
INSERT_MEDIA = Prepared(_media_insert, MEDIA_KEYS)
UPSERT_FILES = Prepared(_files_upsert, FILE_KEYS)
UPDATE_CONTENT = Prepared(
    update(files)
    .where(files.c.id == bindparam("b_id"))
    .values(
        path=bindparam("b_path"),
        size=bindparam("b_size"),
        mtime_ns=bindparam("b_mtime"),
        file_id=bindparam("b_file_id"),
        quick_fp=bindparam("b_qfp"),
        media_id=bindparam("b_media"),
        state="present",
        missing_since=None,
        vanished_scan_id=None,
        last_seen=bindparam("b_now", type_=files.c.last_seen.type),
        changed_scan_id=bindparam("b_changed"),
    )
)
MOVE = Prepared(
    update(files)
    .where(
        and_(
            files.c.id == bindparam("b_id"),
            files.c.dir_key == bindparam("b_old_dir"),
            files.c.name_key == bindparam("b_old_name"),
        )
    )
    .values(
        path=bindparam("b_path"),
        dir_key=bindparam("b_dir"),
        name_key=bindparam("b_name"),
        size=bindparam("b_size"),
        mtime_ns=bindparam("b_mtime"),
        file_id=bindparam("b_file_id"),
        state="present",
        missing_since=None,
        vanished_scan_id=None,
        last_seen=bindparam("b_now", type_=files.c.last_seen.type),
        changed_scan_id=bindparam("b_changed"),
    )
)
TOUCH = Prepared(
    update(files)
    .where(files.c.id == bindparam("b_id"))
    .values(
        path=bindparam("b_path"),
        file_id=bindparam("b_file_id"),
        state="present",
        missing_since=None,
        vanished_scan_id=None,
        last_seen=bindparam("b_now", type_=files.c.last_seen.type),
    )
)
# Guarded by the old location: a row that a move took away in the meantime is not flagged.
VANISH = Prepared(
    update(files)
    .where(
        and_(
            files.c.id == bindparam("b_id"),
            files.c.dir_key == bindparam("b_dir"),
            files.c.name_key == bindparam("b_name"),
            files.c.state == "present",
        )
    )
    .values(vanished_scan_id=bindparam("b_scan"))
)


class CatalogWriter:
    def __init__(
        self, catalog: Catalog, source_id: int, scan_id: int, batch: int, source_name: str = ""
    ) -> None:
        self.catalog = catalog
        self.source_id = source_id
        self.source_name = source_name
        self.scan_id = scan_id
        self.batch = batch
        self._outcomes: list[Outcome] = []
        self._vanished: list[KnownFile] = []

    def add(self, outcome: Outcome) -> None:
        if outcome.result in (Result.DEFER, Result.ERROR):
            return
        self._outcomes.append(outcome)

    def vanish(self, rows: list[KnownFile]) -> None:
        self._vanished.extend(rows)

    @property
    def full(self) -> bool:
        return len(self._outcomes) + len(self._vanished) >= self.batch

    def flush(self) -> None:
        if not self._outcomes and not self._vanished:
            return
        now = now_utc()
        new_media: dict[str, dict[str, Any]] = {}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []  # content replaced at the same path
        moves: list[dict[str, Any]] = []
        touches: list[dict[str, Any]] = []
        # What the event log hears of this batch (catalog/events.py), written in the same transaction.
        added: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        restored: list[dict[str, Any]] = []
        for o in self._outcomes:
            w, e = o.work, o.work.entry
            if w.known is not None and w.known.state == "missing" and o.result is not Result.INSERT:
                restored.append({"media": o.media_id or w.known.media_id, "path": w.path})
            if (
                o.media_id is not None
                and o.result in (Result.INSERT, Result.UPDATE)
                and o.media_id not in new_media
            ):
                new_media[o.media_id] = {"id": o.media_id, "size": e.size, "kind": w.kind, "first_seen": now}
            if o.result is Result.INSERT:
                added.append({"media": o.media_id, "path": w.path})
                inserts.append(
                    {
                        "source_id": self.source_id,
                        "path": w.path,
                        "dir_key": w.dir_key,
                        "name_key": w.name_key,
                        "size": e.size,
                        "mtime_ns": e.mtime_ns,
                        "file_id": e.file_id,
                        "quick_fp": o.quick_fp,
                        "media_id": o.media_id,
                        "state": "present",
                        "first_seen": now,
                        "last_seen": now,
                        "changed_scan_id": self.scan_id,
                    }
                )
            elif o.result is Result.MOVE and o.moved is not None:
                moved.append({"media": o.media_id, "path": w.path, "from": o.moved.path})
                moves.append(
                    {
                        "b_id": o.moved.id,
                        "b_old_dir": o.moved.dir_key,
                        "b_old_name": o.moved.name_key,
                        "b_path": w.path,
                        "b_dir": w.dir_key,
                        "b_name": w.name_key,
                        "b_size": e.size,
                        "b_mtime": e.mtime_ns,
                        "b_file_id": e.file_id,
                        "b_now": now,
                        "b_changed": self.scan_id,
                    }
                )
            elif w.known is not None and o.result is Result.UPDATE:
                updates.append(self._content(o, now, self.scan_id))
                if o.media_id is not None and o.media_id != w.known.media_id:
                    changed.append({"media": o.media_id, "previous": w.known.media_id, "path": w.path})
                    history.append(
                        {
                            "media_id": w.known.media_id,
                            "source_id": self.source_id,
                            "path": w.known.path,
                            "by_media_id": o.media_id,
                            "replaced_at": now,
                            "scan_id": self.scan_id,
                        }
                    )
            elif w.known is not None and o.result is Result.TOUCH:
                if o.media_id is not None and (e.size, e.mtime_ns) != (w.known.size, w.known.mtime_ns):
                    updates.append(self._content(o, now, self.scan_id))  # same content, new mtime
                else:
                    touches.append(
                        {"b_id": w.known.id, "b_path": w.path, "b_file_id": e.file_id, "b_now": now}
                    )
        vanished = [
            {"b_id": r.id, "b_dir": r.dir_key, "b_name": r.name_key, "b_scan": self.scan_id}
            for r in self._vanished
        ]
        with self.catalog.write() as conn:
            INSERT_MEDIA.executemany(conn, list(new_media.values()))
            UPSERT_FILES.executemany(conn, inserts)
            # Vanish flags first: a move in the same batch then clears the flag of the row it takes.
            VANISH.executemany(conn, vanished)
            UPDATE_CONTENT.executemany(conn, updates)
            if history:
                conn.execute(insert(replaced), history)
            MOVE.executemany(conn, moves)
            TOUCH.executemany(conn, touches)
            base = {"source": self.source_name, "scan": self.scan_id}
            for type_, items in (
                ("media.added", added),
                ("media.changed", changed),
                ("media.moved", moved),
                ("media.restored", restored),
            ):
                event_log.append_items(conn, type_, base, items, self.source_id)
        self._outcomes.clear()
        self._vanished.clear()

    @staticmethod
    def _content(o: Outcome, now: datetime, scan_id: int) -> dict[str, Any]:
        assert o.work.known is not None
        e = o.work.entry
        return {
            "b_id": o.work.known.id,
            "b_path": o.work.path,
            "b_size": e.size,
            "b_mtime": e.mtime_ns,
            "b_file_id": e.file_id,
            "b_qfp": o.quick_fp,
            "b_media": o.media_id,
            "b_now": now,
            "b_changed": scan_id,
        }
