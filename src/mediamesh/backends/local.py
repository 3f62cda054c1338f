"""``local``: a folder on this machine, including a NAS share the host already mounts."""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from mediamesh.backends.base import (
    Backend,
    BackendError,
    Changed,
    Entry,
    EntryKind,
    Features,
    InvalidPathError,
    IsADirectoryError_,
    NotADirectoryError_,
    NotFoundError,
    PermissionDeniedError,
    UnreachableError,
    WatchUnsupported,
    clean_relpath,
)
from mediamesh.backends.registry import BackendKind, Option, register

#: Filesystems whose reads wait on a network (a NAS share the host mounts): hashed on several threads.
NETWORK_FS_TYPES = frozenset(
    {"cifs", "smb3", "smbfs", "nfs", "nfs4", "9p", "ceph", "glusterfs", "davfs", "afs"}
)

_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# Errors that mean the filesystem itself went away (a host mount that dropped), not one bad path.
_UNREACHABLE_ERRNOS = {
    errno.EIO,
    errno.ENOTCONN,
    errno.ESTALE,
    errno.EHOSTDOWN,
    errno.EHOSTUNREACH,
    errno.ETIMEDOUT,
    errno.ENODEV,
    errno.ENXIO,
    errno.ECONNABORTED,
    errno.ECONNRESET,
}


def _translate(exc: OSError, path: str, full: str) -> BackendError:
    message = f"{exc.strerror or exc}: {full}"
    if exc.errno == errno.ELOOP:
        return InvalidPathError(f"symbolic links are not followed: {full}", path)
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(message, path)
    if isinstance(exc, NotADirectoryError):
        return NotADirectoryError_(message, path)
    if isinstance(exc, IsADirectoryError):
        return IsADirectoryError_(message, path)
    if isinstance(exc, PermissionError):
        return PermissionDeniedError(message, path)
    if exc.errno in _UNREACHABLE_ERRNOS:
        return UnreachableError(message, path)
    return BackendError(message, path)


@dataclass(frozen=True, slots=True)
class MountInfo:
    mount_point: str
    fs_type: str
    mount_source: str


def mount_of(path: str) -> MountInfo:
    """The mount that holds ``path`` (longest mount point that is a prefix of it), from mountinfo."""
    best = MountInfo("/", "unknown", "unknown")
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")  # mountinfo escapes spaces as \040
        rest = right.split()
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best.mount_point):
            best = MountInfo(point, rest[0] if rest else "unknown", rest[1] if len(rest) > 1 else "unknown")
    return best


def is_mount_point(path: str) -> bool:
    """Something is mounted at ``path``: its device differs from its parent folder's, or mountinfo lists
    it (a bind mount of a folder on the same device has its parent's device)."""
    real = os.path.realpath(path)
    try:
        here, parent = os.stat(real), os.stat(os.path.dirname(real))
    except OSError:
        return False
    return here.st_dev != parent.st_dev or real == "/" or mount_of(real).mount_point == real


def expected_mount(location: str, expect: bool | None, mounts_dir: str | None) -> dict[str, str]:
    """The identity part of a folder that must be a mount point to be read: ``expect`` True, or (None)
    a folder that is a mount point now or sits directly in ``mounts_dir`` (MEDIAMESH_MOUNTS_DIR, where
    the host or mediamesh mounts shares). An unmounted share is then "not mounted", never an empty
    folder (scanning/safety.py: unmounted)."""
    real = os.path.realpath(location)
    if expect is None:
        parent = os.path.realpath(mounts_dir) if mounts_dir else None
        expect = is_mount_point(real) or (parent is not None and os.path.dirname(real) == parent)
    return {"mount_point": real} if expect else {}


def _max_user_watches() -> int | None:
    try:
        return int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
    except (OSError, ValueError):
        return None


def _count_folders(root: str, stop: threading.Event) -> int:
    count = 0
    for _dirpath, _dirs, _files in os.walk(root, followlinks=False):
        count += 1
        if stop.is_set():
            break
    return count


#: Folders of the operating system: never a source, whatever MEDIAMESH_LOCAL_ROOTS says.
SYSTEM_FOLDERS = (
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/boot",
    "/run",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr",
    "/opt",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/spool",
    "/var/cache",
    "/snap",
)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass(frozen=True, slots=True)
class LocalRoots:
    """Where local sources may point: below one of ``allowed``; never at, inside or above a ``protected``
    path (the data dir with its keys and catalog), never in a system folder. Paths are real paths."""

    allowed: tuple[str, ...]
    protected: tuple[str, ...] = ()

    def refusal(self, real: str) -> str | None:
        """Why a source may not be rooted at the real path ``real``, or None when it may."""
        if real == "/" or any(_inside(real, f) for f in SYSTEM_FOLDERS):
            return f"{real} is a system folder and cannot be a source"
        for path in self.protected:
            if _inside(real, path) or _inside(path, real):
                return f"{real} holds mediamesh's own data ({path}) and cannot be a source; pick a folder beside it"
        if not any(_inside(real, a) for a in self.allowed):
            allowed = ", ".join(self.allowed) or "none"
            return (
                f"{real} is outside the folders local sources may use ({allowed}); an admin can allow it "
                "with MEDIAMESH_LOCAL_ROOTS (for the server and the CLI alike)"
            )
        return None


class LocalBackend(Backend):
    """Reads a folder below ``root``; symbolic links are reported, never followed.

    With ``roots``, the root must be allowed by them: checked on the real path that the kernel opened
    each time (``/proc/self/fd``), so a folder swapped for a symbolic link after registration is refused
    rather than followed out of the allowed roots.
    """

    def __init__(self, root: str, roots: LocalRoots | None = None) -> None:
        if not os.path.isabs(root):
            raise InvalidPathError(f"a local source needs an absolute path, not {root!r}")
        self.root = os.path.normpath(root)
        self.roots = roots
        self._allowed_real: str | None = None  # the last real root path the policy allowed
        fs_type = mount_of(os.path.realpath(self.root)).fs_type
        network = fs_type in NETWORK_FS_TYPES or fs_type.startswith("fuse")
        self._fs_type = fs_type
        self.features = Features(
            file_ids=True, case_insensitive=False, local_paths=True, slow_io=network, notify=not network
        )

    def watch(self, stop: threading.Event, changed: Changed, ready: Callable[[dict[str, Any]], None]) -> None:
        """inotify, through watchfiles (the Rust notify crate): one watch per folder, so the folders are
        counted first against the kernel's ``max_user_watches``; past it, the server polls instead."""
        if not self.features.notify:
            raise WatchUnsupported(
                f"{self.root} is on a network file system ({self._fs_type}): the kernel hears only of changes "
                "made from this machine, not of those made on the NAS or other computers"
            )
        import watchfiles  # only a server that watches pays for it

        folders = _count_folders(self.root, stop)
        limit = _max_user_watches()
        if limit is not None and folders > limit * 0.9:
            raise WatchUnsupported(
                f"{folders} folders would take {folders} of the kernel's {limit} inotify watches "
                "(fs.inotify.max_user_watches); raise it with sysctl, or polling is used"
            )
        ready({"via": "inotify", "folders": folders})
        root = os.path.realpath(self.root)
        try:
            for batch in watchfiles.watch(
                root,
                watch_filter=None,
                debounce=400,
                step=50,
                stop_event=stop,
                rust_timeout=1000,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                for _, path in batch:
                    rel = os.path.relpath(path, root)
                    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
                        continue  # the root itself, or something reached through a link: not ours
                    changed(os.path.dirname(rel).replace(os.sep, "/"))
        except OSError as exc:
            if not os.path.isdir(self.root):
                raise UnreachableError(f"{self.root} is gone: {exc}") from exc
            raise WatchUnsupported(f"the kernel refused to watch {self.root}: {exc}") from exc
        except RuntimeError as exc:  # watchfiles' own errors (a watch limit reached meanwhile)
            raise WatchUnsupported(f"watching {self.root} stopped: {exc}") from exc

    def _abs(self, path: str) -> str:
        rel = clean_relpath(path)
        return os.path.join(self.root, rel) if rel else self.root

    @contextmanager
    def _parent_fd(self, rel: str) -> Iterator[tuple[int, str]]:
        """An fd of the folder holding ``rel`` and the last name, reached one component at a time with
        O_NOFOLLOW: no symbolic link below the root is ever followed, so nothing outside it can be reached
        (the kernel enforces it; no check-then-use race)."""
        parts = rel.split("/") if rel else []
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._check_root(fd)
            for part in parts[:-1]:
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except NotADirectoryError:
                    if stat_mod.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        raise OSError(errno.ELOOP, "symbolic link") from None
                    raise
                os.close(fd)
                fd = nfd
            yield fd, parts[-1] if parts else "."
        finally:
            os.close(fd)

    def _check_root(self, fd: int) -> None:
        if self.roots is None:
            return
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: the path as resolved now
            real = os.path.realpath(self.root)
        if real == self._allowed_real:
            return
        reason = self.roots.refusal(real)
        if reason is not None:
            raise PermissionError(errno.EACCES, reason)
        self._allowed_real = real

    def _open_fd(self, path: str, flags: int) -> int:
        rel = clean_relpath(path)
        try:
            with self._parent_fd(rel) as (parent, name):
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError as exc:
            raise _translate(exc, path, self._abs(rel)) from exc

    def list_dir(self, path: str) -> list[Entry]:
        fd = self._open_fd(path, os.O_RDONLY | os.O_DIRECTORY)
        entries: list[Entry] = []
        try:
            with os.scandir(fd) as it:
                for de in it:
                    if de.is_symlink():
                        entries.append(Entry(de.name, EntryKind.OTHER, 0, 0, None))
                    elif de.is_dir(follow_symlinks=False):
                        entries.append(Entry(de.name, EntryKind.DIR, 0, 0, str(de.inode())))
                    elif de.is_file(follow_symlinks=False):
                        try:
                            st = de.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue  # deleted between the listing and the stat: not there any more
                        entries.append(
                            Entry(de.name, EntryKind.FILE, st.st_size, st.st_mtime_ns, str(st.st_ino))
                        )
                    else:
                        entries.append(Entry(de.name, EntryKind.OTHER, 0, 0, None))
        except OSError as exc:
            raise _translate(exc, path, self._abs(path)) from exc
        finally:
            os.close(fd)
        return entries

    def stat(self, path: str) -> Entry:
        rel = clean_relpath(path)
        try:
            with self._parent_fd(rel) as (parent, name):
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise _translate(exc, path, self._abs(rel)) from exc
        return _entry_from_stat(os.path.basename(rel), st)

    def open(self, path: str) -> BinaryIO:
        fd = self._open_fd(path, os.O_RDONLY)
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectoryError_(f"is a folder: {path}", path)
            raise InvalidPathError(f"not a regular file: {path}", path)
        return open(fd, "rb", buffering=0)

    def local_path(self, path: str) -> str | None:
        return self._abs(path)

    def identity(self) -> dict[str, str]:
        info = mount_of(os.path.realpath(self.root))
        return {"mount_point": info.mount_point, "fs_type": info.fs_type}

    def usage(self) -> tuple[int | None, int | None]:
        full = self._abs("")
        try:
            with self._parent_fd("") as (fd, _):
                vfs = os.statvfs(fd)
        except OSError as exc:
            raise _translate(exc, "", full) from exc
        return vfs.f_blocks * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize


def _entry_from_stat(name: str, st: os.stat_result) -> Entry:
    if stat_mod.S_ISREG(st.st_mode):
        return Entry(name, EntryKind.FILE, st.st_size, st.st_mtime_ns, str(st.st_ino))
    if stat_mod.S_ISDIR(st.st_mode):
        return Entry(name, EntryKind.DIR, 0, st.st_mtime_ns, str(st.st_ino))
    return Entry(name, EntryKind.OTHER, 0, st.st_mtime_ns, None)


# -- registration -------------------------------------------------------------------------------------------
def _parse(text: str) -> str:
    """A plain absolute path or ``file:///abs/path`` (on this machine)."""
    if text.startswith("/"):
        return os.path.normpath(text)
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file:// locations must be on this machine, not {parts.netloc!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"a local location needs an absolute path: {text!r}")
    return os.path.normpath(path)


def _open(location: str, _secret: Mapping[str, Any] | None, roots: LocalRoots | None) -> Backend:
    return LocalBackend(location, roots)


register(
    BackendKind(
        name="local",
        title="Local or host-mounted folder",
        schemes=("file",),
        example="/abs/path or file:///abs/path",
        options=(
            Option(
                "path",
                "Folder",
                required=True,
                placeholder="/mnt/media",
                help="An absolute path on the server. A folder the host mounts (a NAS via NFS or SMB) is "
                "fine: an empty or unmounted mount point is detected and never indexed.",
            ),
        ),
        # slow_io is decided per folder when the backend is built (a network mount or a local disk).
        features=Features(file_ids=True, case_insensitive=False, local_paths=True, notify=True),
        parse=_parse,
        fields=lambda location: {"path": location},
        extent=lambda location: ((), os.path.realpath(location)),
        compose=lambda fields: _parse(fields.get("path", "").strip()),
        factory=_open,
        expected_mount=expected_mount,
    )
)
