"""Values that flow between the scan stages."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mediamesh.backends.base import Entry

MAX_ERRORS_KEPT = 100


class Action(enum.Enum):
    NEW = "new"  # not in the catalog at this location: a move, or new content
    CHANGED = "changed"  # size or mtime differ from the values last seen: hash again
    VERIFY = "verify"  # size and mtime equal, file id differs (a remount): compare the quick fingerprint
    TOUCH = "touch"  # same file; only bookkeeping changes (seen again after missing, new spelling, file id)


class Result(enum.Enum):
    INSERT = "insert"
    UPDATE = "update"  # content changed: new media id on the same row
    MOVE = "move"  # an existing row moves to this location, media id kept
    TOUCH = "touch"
    DEFER = "defer"  # still being written: left for a later scan
    ERROR = "error"


@dataclass(slots=True)
class KnownFile:
    """The catalog's view of one location, as far as the scan needs it."""

    id: int
    path: str
    dir_key: str
    name_key: str
    size: int
    mtime_ns: int
    file_id: str | None
    quick_fp: str
    media_id: str
    state: str


@dataclass(slots=True)
class Work:
    action: Action
    path: str
    dir_key: str
    name_key: str
    entry: Entry
    kind: str
    known: KnownFile | None = None
    #: Known rows of this source with this entry's file id, size and mtime (a NEW entry may be one moved).
    candidates: list[KnownFile] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    result: Result
    work: Work
    media_id: str | None = None
    quick_fp: str | None = None
    moved: KnownFile | None = None
    bytes_hashed: int = 0
    bytes_read: int = 0
    error: str | None = None


@dataclass
class ScanStats:
    files_seen: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_moved: int = 0
    files_missing: int = 0
    files_unchanged: int = 0
    files_deferred: int = 0
    bytes_hashed: int = 0
    bytes_read: int = 0
    folders: int = 0
    errors_count: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    #: Folders holding files deferred as still being written (the follow-up scan looks at exactly these).
    deferred_folders: set[str] = field(default_factory=set)
    current_path: str = ""

    def add_error(self, path: str, message: str) -> None:
        self.errors_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"path": path, "message": message})

    def count(self, outcome: Outcome) -> None:
        self.bytes_hashed += outcome.bytes_hashed
        self.bytes_read += outcome.bytes_read
        match outcome.result:
            case Result.INSERT:
                self.files_new += 1
            case Result.UPDATE:
                self.files_changed += 1
            case Result.MOVE:
                self.files_moved += 1
            case Result.TOUCH:
                self.files_unchanged += 1
            case Result.DEFER:
                self.files_deferred += 1
            case Result.ERROR:
                self.add_error(outcome.work.path, outcome.error or "error")
