"""Stage 2, diff: compare one listed folder with what the catalog knows of it.

Change detection compares (size, mtime_ns, file id) with the values *last seen*, never with the time of
the last scan: a NAS clock that drifts cannot hide or invent changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mediamesh.backends.base import join
from mediamesh.scanning.model import Action, KnownFile, Work
from mediamesh.scanning.names import name_key
from mediamesh.scanning.walk import Folder


@dataclass(slots=True)
class FolderDiff:
    work: list[Work] = field(default_factory=list)
    unchanged: int = 0
    #: Known rows whose names are no longer in the folder.
    vanished: list[KnownFile] = field(default_factory=list)
    #: (path, message) for names that collide after normalisation.
    collisions: list[tuple[str, str]] = field(default_factory=list)


def diff_folder(folder: Folder, known: dict[str, KnownFile], case_insensitive: bool) -> FolderDiff:
    out = FolderDiff()
    taken: set[str] = set()
    for entry, kind in folder.files:
        key = name_key(entry.name, case_insensitive)
        path = join(folder.path, entry.name)
        if key in taken:
            out.collisions.append(
                (path, "another name in this folder is the same after Unicode/case folding")
            )
            continue
        taken.add(key)
        row = known.get(key)
        if row is None:
            out.work.append(Work(Action.NEW, path, folder.key, key, entry, kind))
            continue
        if row.size != entry.size or row.mtime_ns != entry.mtime_ns:
            out.work.append(Work(Action.CHANGED, path, folder.key, key, entry, kind, row))
        elif row.file_id is not None and entry.file_id is not None and row.file_id != entry.file_id:
            out.work.append(Work(Action.VERIFY, path, folder.key, key, entry, kind, row))
        elif row.state != "present" or row.path != path:
            out.work.append(Work(Action.TOUCH, path, folder.key, key, entry, kind, row))
        else:
            out.unchanged += 1
    out.vanished = [row for key, row in known.items() if key not in folder.names and row.state == "present"]
    return out
