"""Stage 1, walk: list folders below the scan's top, pruning housekeeping and excluded folders.

It remembers which folders it listed, pruned or could not list, so that the end of the scan can tell a
folder that vanished from one it did not look into.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mediamesh.backends.base import Backend, BackendError, Entry, EntryKind, UnreachableError, join
from mediamesh.scanning.filters import PathFilter
from mediamesh.scanning.names import name_key, path_key


@dataclass(slots=True)
class Folder:
    path: str
    key: str
    #: Indexable files with the kind to index them as.
    files: list[tuple[Entry, str]]
    #: Keys of every name in the folder, indexable or not: a known file whose name is still here is not gone.
    names: set[str]


@dataclass
class Walker:
    backend: Backend
    top: str
    path_filter: PathFilter
    listed: set[str] = field(default_factory=set)
    #: Keys of folders not looked into (pruned or unlistable): their known files are left as they are.
    not_scanned: set[str] = field(default_factory=set)
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: A shallow scan (one folder, as a change notification names it): which sub-folders of the top to
    #: go into (those the catalog does not know yet). The others are left as they are, like pruned ones.
    descend: Callable[[str], bool] | None = None

    def __iter__(self) -> Iterator[Folder]:
        ci = self.backend.features.case_insensitive
        for folder, listing in self.backend.walk(self.top):
            key = path_key(folder, ci)
            if isinstance(listing, BackendError):
                if isinstance(listing, UnreachableError):
                    raise listing  # the whole source went away: the scan stops, nothing is concluded
                self.not_scanned.add(key)
                self.errors.append((folder, str(listing)))
                continue
            self.listed.add(key)
            files: list[tuple[Entry, str]] = []
            names: set[str] = set()
            keep: list[Entry] = []
            for entry in listing:
                names.add(name_key(entry.name, ci))
                rel = join(folder, entry.name)
                if entry.kind is EntryKind.DIR:
                    if self.path_filter.skip_dir(rel, entry.name):
                        self.not_scanned.add(path_key(rel, ci))
                    else:
                        keep.append(entry)
                elif entry.kind is EntryKind.FILE:
                    kind = self.path_filter.kind_for(rel, entry.name)
                    if kind is not None:
                        files.append((entry, kind))
            if self.descend is not None and folder == self.top:
                inside = []
                for entry in keep:
                    rel = join(folder, entry.name)
                    if self.descend(rel):
                        inside.append(entry)
                    else:
                        self.not_scanned.add(path_key(rel, ci))
                keep = inside
            listing[:] = keep  # the backend's walk descends only into what is left
            yield Folder(folder, key, files, names)

    def covered(self, dir_key: str) -> bool:
        """True when a folder (or one above it) was pruned or could not be listed."""
        if not self.not_scanned:
            return False
        parts = dir_key.split("/")
        return any("/".join(parts[:i]) in self.not_scanned for i in range(1, len(parts) + 1))
