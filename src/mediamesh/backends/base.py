"""The storage interface every source kind implements, and its typed errors.

A backend reads one source below its root; paths are relative to that root, ``/``-separated, with no
leading ``/`` (``""`` is the root itself). Backends never write. Callers check :class:`Features`, never a
backend's type.
"""

from __future__ import annotations

import concurrent.futures as cf
import enum
import io
import os
import posixpath
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Self


class BackendError(Exception):
    """Base of backend errors; ``path`` is relative to the source root."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class NotFoundError(BackendError):
    """The path does not exist."""


class NotADirectoryError_(BackendError):
    """A folder was expected (listing) but the path is something else."""


class IsADirectoryError_(BackendError):
    """A file was expected (open) but the path is a folder."""


class PermissionDeniedError(BackendError):
    """The server or the OS refused access."""


class UnreachableError(BackendError):
    """The source as a whole cannot be reached (host down, share gone, timeout)."""


class InvalidPathError(BackendError):
    """The path would leave the source root (``..``, absolute, NUL) or is otherwise malformed."""


class EntryKind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    OTHER = "other"  # symlinks, devices, sockets: never followed or indexed


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a folder, with what a stat of it says."""

    name: str
    kind: EntryKind
    size: int
    mtime_ns: int
    #: A stable per-filesystem id (inode, SMB file id) when :attr:`Features.file_ids`, else None.
    file_id: str | None = None


class WatchUnsupported(Exception):
    """The source cannot report changes; the message says why in words a user can act on."""


#: ``changed(folder)``: a folder (relative to the root) whose entries changed; None: anything may have.
Changed = Callable[[str | None], None]


@dataclass(frozen=True, slots=True)
class Features:
    """Optional abilities of a backend."""

    file_ids: bool = False
    case_insensitive: bool = False
    #: ``local_path()`` gives a real path on this machine (enables mmap hashing in a worker process).
    local_paths: bool = False
    #: Each request waits on a network: read files on several threads at once. Without it, threads only
    #: fight over the GIL and files are hashed on the scan's own thread.
    slow_io: bool = False
    #: The resolution of the modification times the backend reports (1 ns local, 1 µs SMB): a change
    #: smaller than this cannot be seen, and the conformance suite checks list and stat agree to it.
    mtime_precision_ns: int = 1
    #: The backend reports changes as they happen (:meth:`Backend.watch`): inotify, SMB CHANGE_NOTIFY.
    #: Without it, the server polls folder signatures instead.
    notify: bool = False

    def public(self) -> dict[str, Any]:
        """What is stored with a source and shown by the API."""
        return {
            "file_ids": self.file_ids,
            "case_insensitive": self.case_insensitive,
            "mtime_precision_ns": self.mtime_precision_ns,
            "notify": self.notify,
        }


@dataclass(slots=True)
class ProbeResult:
    """What a health probe saw; ``reachable`` False means ``error`` says why."""

    reachable: bool
    latency_ms: float | None = None
    capacity_bytes: int | None = None
    free_bytes: int | None = None
    error: str | None = None
    #: What identifies the filesystem behind the root (see :meth:`Backend.identity`).
    identity: dict[str, str] = field(default_factory=dict)


# No empty, "." or ".." segment, no leading or trailing "/", no NUL.
_ALREADY_CLEAN = re.compile(r"(?!\.\.?(?:/|\Z))[^/\x00]+(?:/(?!\.\.?(?:/|\Z))[^/\x00]+)*\Z")


def clean_relpath(path: str) -> str:
    """Normalise a path relative to a source root, refusing anything that could leave it.

    >>> clean_relpath("a//b/./c/")
    'a/b/c'
    >>> clean_relpath("")
    ''
    """
    if _ALREADY_CLEAN.match(path):  # the common case, paths this program built itself
        return path
    if "\x00" in path:
        raise InvalidPathError("path contains a NUL byte", path)
    if path.startswith("/"):
        raise InvalidPathError("path must be relative to the source root", path)
    # "\" is a character of a name here (legal on Linux: "back\slash.jpg"); a backend whose protocol
    # takes it for a separator (SMB) refuses it itself.
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidPathError("path must not contain '..'", path)
    return "/".join(parts)


def is_single_name(name: str) -> bool:
    """A name a listing may hold: one path component (not empty, ``.``, ``..``, no ``/`` or NUL). A
    network server is a stranger: a name like ``a/b`` or ``..`` would alias or climb out of a path."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def parent_of(path: str) -> str:
    return posixpath.dirname(path)


class ReadOnlyFile:
    """What every backend's open file shares: no writing, a context manager, ``readinto`` from ``read``
    (a subclass with a cheaper one overrides it). Subclasses give ``read``, ``seek``, ``tell``, ``close``."""

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, _: bytes) -> int:
        raise PermissionError("sources are read-only")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(ABC):
    """A read-only view of one source. Implementations must be safe to use from several threads."""

    features: Features = Features()
    #: Bytes asked for in one read of a large file being hashed. A client that splits a read into
    #: parallel requests (NFS: eight at a time) keeps more of them in flight with more.
    read_size: int = 4 << 20

    @abstractmethod
    def list_dir(self, path: str) -> list[Entry]:
        """The entries of a folder (not ``.``/``..``), in no particular order.

        Raises NotFoundError, NotADirectoryError_, PermissionDeniedError, UnreachableError.
        """

    @abstractmethod
    def stat(self, path: str) -> Entry:
        """One entry; symlinks are reported as OTHER, not followed. Raises NotFoundError, ..."""

    @abstractmethod
    def open(self, path: str) -> BinaryIO:
        """A seekable binary file opened for reading only. Raises IsADirectoryError_, NotFoundError, ..."""

    @abstractmethod
    def identity(self) -> dict[str, str]:
        """What identifies the filesystem behind the root, recorded at registration and compared before
        every scan (a share that is no longer mounted shows a different identity)."""

    @abstractmethod
    def usage(self) -> tuple[int | None, int | None]:
        """(capacity, free) in bytes, or None where the backend cannot tell."""

    def local_path(self, path: str) -> str | None:
        """A real path on this machine for ``path``, if the backend has one (see Features.local_paths)."""
        return None

    def content_hash(self, path: str, size: int) -> str | None:
        """The BLAKE3 hex digest of a file computed where the file is (an SFTP server's ``b3sum``), so that
        its bytes need not cross the link; None when the backend cannot (then the caller reads the file).
        ``size`` is the size listed: a backend declines files too small to be worth a remote command."""
        return None

    def close_and_stat(self, fh: BinaryIO, path: str) -> tuple[int, int]:
        """(size, mtime_ns) of an open file of this backend, asked as its last use: after a file was read,
        to see that it did not change meanwhile. Closes ``fh``. The default asks the open file (fstat),
        else the path; a backend whose files can tell cheaper overrides it."""
        try:
            try:
                st = os.fstat(fh.fileno())
                return st.st_size, st.st_mtime_ns
            except (AttributeError, OSError, io.UnsupportedOperation):
                pass
        finally:
            fh.close()
        now = self.stat(path)
        return now.size, now.mtime_ns

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the backend may be used again afterwards (it reconnects)."""

    def watch(self, stop: threading.Event, changed: Changed, ready: Callable[[dict[str, Any]], None]) -> None:
        """Report changes until ``stop`` is set: ``changed(folder)`` for a folder whose entries changed
        (a file added, removed, renamed or written in it), ``changed(None)`` when the backend lost track
        (an overflow: anything may have changed). ``ready(info)`` is called once watching has started,
        with what to show (``{"via": "inotify", "folders": 120}``).

        Raises WatchUnsupported when this backend or this location cannot report changes (the server
        then polls), UnreachableError when the source went away (the server tries again later)."""
        raise WatchUnsupported("this kind of source does not report changes")

    def probe(self) -> ProbeResult:
        """Is the root reachable and readable now? Never raises for an unreachable source."""
        start = time.perf_counter()
        try:
            root = self.stat("")
            if root.kind is not EntryKind.DIR:
                raise NotADirectoryError_("the source root is not a folder")
            self.list_dir("")
            capacity, free = self.usage()
            identity = self.identity()
        except BackendError as exc:
            return ProbeResult(reachable=False, error=str(exc))
        latency = (time.perf_counter() - start) * 1000
        return ProbeResult(True, round(latency, 2), capacity, free, None, identity)

    def walk(self, top: str = "") -> Iterator[tuple[str, list[Entry] | BackendError]]:
        """(folder, entries) pairs below ``top``; a folder that cannot be listed yields its error instead,
        and its subtree is skipped. Callers may prune by removing DIR entries before asking for the next
        pair. Depth first on fast storage; on storage with latency (``Features.slow_io``) several folders
        are listed at once, in no particular order."""
        if self.features.slow_io:
            yield from self._walk_concurrently(clean_relpath(top))
            return
        stack = [clean_relpath(top)]
        while stack:
            folder = stack.pop()
            try:
                entries = _named(self.list_dir(folder))
            except BackendError as exc:
                yield folder, exc
                continue
            yield folder, entries
            stack.extend(
                join(folder, e.name)
                for e in sorted(entries, key=lambda e: e.name, reverse=True)
                if e.kind is EntryKind.DIR
            )

    #: Folders listed at once on storage with latency.
    walk_concurrency = 8

    def _walk_concurrently(self, top: str) -> Iterator[tuple[str, list[Entry] | BackendError]]:
        def listing(folder: str) -> tuple[str, list[Entry] | BackendError]:
            try:
                return folder, _named(self.list_dir(folder))
            except UnreachableError:
                raise  # the whole source is gone: the caller must hear it, not a folder error
            except BackendError as exc:
                return folder, exc

        pending: list[str] = [top]
        running: set[cf.Future[tuple[str, list[Entry] | BackendError]]] = set()
        with cf.ThreadPoolExecutor(self.walk_concurrency, thread_name_prefix="mediamesh-list") as pool:
            try:
                while pending or running:
                    while pending and len(running) < self.walk_concurrency:
                        running.add(pool.submit(listing, pending.pop()))
                    done, running = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        folder, entries = future.result()
                        yield folder, entries  # the caller prunes here
                        if not isinstance(entries, BackendError):
                            pending.extend(join(folder, e.name) for e in entries if e.kind is EntryKind.DIR)
            finally:
                for future in running:
                    future.cancel()


def _named(entries: list[Entry]) -> list[Entry]:
    """A listing without the names no folder can hold (see is_single_name); the common case is untouched."""
    if all(is_single_name(e.name) for e in entries):
        return entries
    return [e for e in entries if is_single_name(e.name)]
