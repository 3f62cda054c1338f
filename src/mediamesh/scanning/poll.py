"""Changes of a source that cannot report them (NFS, SFTP, a network mount), found by polling folder
signatures: one ``stat`` per folder a round, a listing only for the folders whose modification time
moved.

A folder's modification time moves when a name in it is added, removed or renamed; it does not when a
file is rewritten in place, so the periodic full scan stays. A folder that changed, or whose time is
recent when it is listed, is listed again in the next round too (it is "hot"), and its listing compared
by names, sizes and times: a change within the granularity of the folder's time after it was listed
(SFTP: one second) and files still growing are both seen.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import threading
import time
from dataclasses import dataclass

from mediamesh.backends.base import (
    Backend,
    BackendError,
    Entry,
    EntryKind,
    NotFoundError,
    UnreachableError,
    join,
)
from mediamesh.scanning.filters import PathFilter


@dataclass(slots=True)
class Signature:
    mtime_ns: int
    digest: bytes
    hot: bool = False


def _digest(entries: list[Entry]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for e in sorted(entries, key=lambda e: e.name):
        h.update(f"{e.name}\0{e.kind.value}\0{e.size}\0{e.mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.digest()


#: A folder modified less than this before it was listed may change again within its time's granularity
#: without its time moving (whole seconds on SFTP); a few seconds more cover a NAS clock a little behind.
RECENT_NS = 3_000_000_000


def _recent(mtime_ns: int) -> bool:
    return time.time_ns() - mtime_ns < RECENT_NS


class FolderPoller:
    """Keeps the signature of every folder of a source; :meth:`poll` returns the folders that changed."""

    def __init__(self, backend: Backend, path_filter: PathFilter, threads: int = 8) -> None:
        self.backend = backend
        self.path_filter = path_filter
        self.threads = threads if backend.features.slow_io else 1
        self.sigs: dict[str, Signature] = {}
        #: Requests sent in the last round (what polling costs the source).
        self.requests = 0

    @property
    def folders(self) -> int:
        return len(self.sigs)

    def baseline(self, stop: threading.Event | None = None) -> None:
        """Every folder's signature as it is now (a walk of the source: as many listings as folders)."""
        self.sigs.clear()
        root = self.backend.stat("")
        self._take("", root.mtime_ns, stop)

    def _take(self, top: str, top_mtime: int, stop: threading.Event | None) -> None:
        """Record ``top`` and every folder below it (a new folder is read whole)."""
        mtimes = {top: top_mtime}
        for folder, listing in self.backend.walk(top):
            if stop is not None and stop.is_set():
                return
            if isinstance(listing, BackendError):
                if isinstance(listing, UnreachableError):
                    raise listing
                continue
            keep = []
            for e in listing:
                if e.kind is EntryKind.DIR:
                    rel = join(folder, e.name)
                    if not self.path_filter.skip_dir(rel, e.name):
                        keep.append(e)
                        mtimes[rel] = e.mtime_ns
            mtime = mtimes.get(folder, 0)
            if not mtime:  # a listing that gives no folder times (local folders): ask the folder itself
                try:
                    mtime = self.backend.stat(folder).mtime_ns
                except BackendError:
                    mtime = 0
            self.sigs[folder] = Signature(mtime, _digest(listing), hot=_recent(mtime))
            listing[:] = keep

    def poll(self, stop: threading.Event | None = None) -> list[str]:
        """One round: the folders whose entries changed since the last one (new and removed folders are
        reported as a change of the folder that holds them)."""
        self.requests = 0
        folders = list(self.sigs)
        with cf.ThreadPoolExecutor(self.threads, thread_name_prefix="mediamesh-poll") as pool:
            stats = dict(zip(folders, pool.map(self._stat, folders), strict=True))
        self.requests += len(folders)
        changed: set[str] = set()
        for folder, entry in stats.items():
            if stop is not None and stop.is_set():
                break
            sig = self.sigs.get(folder)
            if sig is None:  # below a folder removed earlier in this round
                continue
            if entry is None:  # gone: its parent says so; its subtree is forgotten
                self._forget(folder)
                if folder:
                    changed.add(folder.rpartition("/")[0])
                continue
            if entry.mtime_ns == sig.mtime_ns and not sig.hot:
                continue
            try:
                listing = self.backend.list_dir(folder)
            except NotFoundError:
                self._forget(folder)
                changed.add(folder.rpartition("/")[0])
                continue
            except UnreachableError:
                raise
            except BackendError:  # cannot list it now: looked at again next round, nothing concluded
                sig.hot = True
                continue
            self.requests += 1
            digest = _digest(listing)
            moved = digest != sig.digest
            self.sigs[folder] = Signature(entry.mtime_ns, digest, hot=moved or _recent(entry.mtime_ns))
            if not moved:
                continue
            changed.add(folder)
            for e in listing:
                rel = join(folder, e.name)
                if (
                    e.kind is EntryKind.DIR
                    and rel not in self.sigs
                    and not self.path_filter.skip_dir(rel, e.name)
                ):
                    self._take(rel, e.mtime_ns, stop)
        return sorted(changed)

    def _stat(self, folder: str) -> Entry | None:
        try:
            entry = self.backend.stat(folder)
        except NotFoundError:
            if not folder:
                raise UnreachableError("the source's root folder is gone") from None
            return None
        except UnreachableError:
            raise
        except BackendError:  # cannot look now (permissions changed): taken as unchanged this round
            sig = self.sigs.get(folder)
            return Entry(folder, EntryKind.DIR, 0, sig.mtime_ns if sig else 0)
        return entry if entry.kind is EntryKind.DIR else None

    def _forget(self, folder: str) -> None:
        prefix = folder + "/"
        for key in [k for k in self.sigs if k == folder or k.startswith(prefix)]:
            del self.sigs[key]
