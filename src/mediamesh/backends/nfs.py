"""``nfs``: an NFSv4 export (Synology, TrueNAS, Unraid, a Linux server), read in the application.

No kernel mount and no privileges: the export is read with nfs-rs, a user-space NFS client in Rust (a
stable-ABI wheel, no system library). Facts that shaped this module (checked against nfs-ganesha 3.5):

- nfs-rs, not bindings of our own to libnfs: its blocking calls release the GIL, one client serves every
  thread (up to eight reads in flight per call), READDIR brings each entry's attributes, and it is
  maintained; Debian's libnfs 4.0 is not thread-safe and the PyPI ``libnfs`` package is abandoned. Read
  and hash rates against ``nfs-cat`` are in docs/benchmarks.md.
- The client connects at the server's NFSv4 pseudo-root and names every path in full: nfs-rs 0.8 fails
  any request on the root of the export it mounted (an empty name, which ganesha rejects as BADNAME).
- **No link is followed**, by the server: a path through a symbolic link answers NFS4ERR_SYMLINK.
- **AUTH_SYS**: the server believes the uid and gid the client sends. They are source options
  (``?uid=1000&gid=100``), for exports that map users; without them nfs-rs sends its defaults.
- **Privileged ports**: many exports (``secure``, the Linux default) only answer clients whose source
  port is below 1024, which needs root or CAP_NET_BIND_SERVICE. mediamesh uses one when it can, else an
  ordinary port, and says what to change on the server when that is refused (docs/sources.md).
- NFSv4 times carry nanoseconds, and file ids are the server's: moves and renames cost no read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit

import nfs_rs

from mediamesh.backends.base import (
    Backend,
    BackendError,
    Entry,
    EntryKind,
    Features,
    InvalidPathError,
    IsADirectoryError_,
    NotADirectoryError_,
    NotFoundError,
    PermissionDeniedError,
    ReadOnlyFile,
    UnreachableError,
    clean_relpath,
)
from mediamesh.backends.registry import BackendKind, Option, register
from mediamesh.backends.urls import authority, port_of, shown_host

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PORT = 2049
VERSIONS = ("4.1", "4.0")
FEATURES = Features(file_ids=True, case_insensitive=False, slow_io=True, mtime_precision_ns=1)
_PRIVILEGED_HINT = (
    "the export may only accept privileged source ports (below 1024): "
    "Mark the export 'insecure' (Linux /etc/exports), tick 'Allow connections from non-privileged ports' "
    "(Synology), or run mediamesh with CAP_NET_BIND_SERVICE"
)


@dataclass(frozen=True, slots=True)
class NfsOptions:
    """Where a folder is: ``nfs://host[:port]/export[/sub/path][?uid=N&gid=N&version=4.1]``."""

    host: str
    path: str  # the export and the folder in it, as one path of the server's NFSv4 namespace, no "/" around
    port: int = DEFAULT_PORT
    uid: int | None = None
    gid: int | None = None
    version: str = "4.1"
    timeout: float = 10.0
    connect_timeout: float = 8.0

    @classmethod
    def parse(cls, url: str) -> NfsOptions:
        parts = urlsplit(url)
        if parts.scheme != "nfs" or not parts.hostname:
            raise ValueError("an NFS location looks like nfs://host[:port]/export[/sub/path]")
        if parts.username is not None or parts.password is not None:
            raise ValueError("NFS takes no user name or password (AUTH_SYS: give ?uid=N&gid=N)")
        port = port_of(parts, DEFAULT_PORT, url)
        try:
            path = clean_relpath(unquote(parts.path).lstrip("/"))
        except InvalidPathError as exc:
            raise ValueError(str(exc)) from None
        if not path:
            raise ValueError("an NFS location needs the export's path: nfs://host/volume1/video")
        values: dict[str, Any] = {}
        for item in filter(None, parts.query.split("&")):
            key, _, value = item.partition("=")
            if key in ("uid", "gid"):  # numbers only: they are sent as they are (AUTH_SYS)
                if not value.isdecimal() or int(value) > 0xFFFFFFFF:
                    raise ValueError(f"{key} must be a number (the server's numeric user or group id)")
                values[key] = int(value)
            elif key == "version":
                if value not in VERSIONS:
                    raise ValueError(f"NFS version {value!r} is not offered: use {' or '.join(VERSIONS)}")
                values[key] = value
            else:
                raise ValueError(f"unknown NFS option {key!r} (the options are uid, gid and version)")
        return cls(parts.hostname, path, port, **values)

    @property
    def display(self) -> str:
        port = f":{self.port}" if self.port != DEFAULT_PORT else ""
        host = shown_host(self.host)
        query = [f"{k}={v}" for k, v in (("uid", self.uid), ("gid", self.gid)) if v is not None]
        if self.version != VERSIONS[0]:
            query.append(f"version={self.version}")
        return f"nfs://{host}{port}/{quote(self.path, safe='/')}" + ("?" + "&".join(query) if query else "")


def _translate(exc: BaseException, path: str) -> BackendError:
    where = path or "/"
    if isinstance(exc, BackendError):
        return exc
    code = getattr(exc, "code_name", None)
    if code == "NFS4ERR_SYMLINK":
        return InvalidPathError(f"symbolic links are not followed: {where}", path)
    if isinstance(exc, nfs_rs.NfsNotFoundError):
        return NotFoundError(f"no such file or folder: {where}", path)
    if isinstance(exc, nfs_rs.NfsNotADirectoryError):
        return NotADirectoryError_(f"not a folder: {where}", path)
    if isinstance(exc, nfs_rs.NfsIsADirectoryError):
        return IsADirectoryError_(f"is a folder: {where}", path)
    if isinstance(exc, nfs_rs.NfsPermissionError):
        return PermissionDeniedError(f"permission denied: {where} (for the uid and gid sent)", path)
    if isinstance(exc, nfs_rs.NfsTimeoutError | TimeoutError):
        return UnreachableError("the NFS server stopped answering", path)
    if isinstance(exc, nfs_rs.NfsConnectionError | ConnectionError | nfs_rs.NfsClosedResourceError):
        return UnreachableError(f"the connection to the NFS server was lost: {exc}", path)
    if isinstance(exc, nfs_rs.NfsMountError):
        return UnreachableError(f"the NFS server refused the export: {exc}", path)
    if code in ("NFS4ERR_PERM", "NFS4ERR_WRONGSEC") or "AUTH" in str(exc).upper():
        return PermissionDeniedError(f"the server refused this client: {_PRIVILEGED_HINT}", path)
    if isinstance(exc, nfs_rs.NfsError):
        return BackendError(f"NFS error: {exc}: {where}", path)
    return UnreachableError(f"NFS failure: {exc.__class__.__name__}: {exc}", path)


def _entry(name: str, info: Any) -> Entry:
    kind = {
        nfs_rs.FileType.FILE: EntryKind.FILE,
        nfs_rs.FileType.DIRECTORY: EntryKind.DIR,
    }.get(info.type, EntryKind.OTHER)
    size = int(info.size) if kind is EntryKind.FILE else 0
    return Entry(name, kind, size, int(info.mtime), str(info.fileid))


class NfsBackend(Backend):
    features = FEATURES
    #: nfs-rs reads eight chunks of up to 1 MiB at once: 8 MiB per call was its best (760 MB/s against
    #: 472 with 4 MiB, on loopback ganesha).
    read_size = 8 << 20

    def __init__(self, options: NfsOptions) -> None:
        self.options = options
        self._client: nfs_rs.Client | None = None
        self._lock = threading.Lock()
        #: One NFSv4 OPEN per file, shared by every reader of it (full path -> [handle, readers]): a
        #: second OPEN by the same client moves the file's state id on, and reads still holding the old
        #: one fail (NFS4ERR_OLD_STATEID). Readers read at their own offsets.
        self._open_files: dict[str, list[Any]] = {}
        self._file_locks = [threading.Lock() for _ in range(64)]

    # -- connection --------------------------------------------------------------------------------------
    def _connected(self) -> nfs_rs.Client:
        client = self._client
        if client is not None and not client.closed:
            return client
        with self._lock:
            if self._client is not None and not self._client.closed:
                return self._client
            self._client = self._connect("")  # the pseudo-root: see the module docstring
            return self._client

    def _connect(self, mount: str) -> nfs_rs.Client:
        o = self.options
        try:
            return nfs_rs.Client.connect(
                f"nfs://{shown_host(o.host)}:{o.port}/{quote(mount, safe='/')}",
                versions=[o.version],
                uid=o.uid,
                gid=o.gid,
                noresvport=not _may_bind_privileged(),
                connect_timeout=o.connect_timeout,
                operation_timeout=o.timeout,
            )
        except (nfs_rs.NfsConnectionError, nfs_rs.NfsTimeoutError, OSError) as exc:
            # One message whatever went wrong (refused, timed out, not NFS): a test must not tell a LAN
            # client which ports of which hosts are open. The detail goes to the server's log.
            log.info("NFS connection to %s:%s failed: %s", o.host, o.port, exc)
            raise UnreachableError(f"no NFS server answered at {o.host}:{o.port}") from exc
        except nfs_rs.NfsError as exc:
            log.info("NFS connection to %s:%s refused: %s", o.host, o.port, exc)
            error = _translate(exc, "")
            if isinstance(error, PermissionDeniedError):
                raise error from exc
            raise UnreachableError(f"the NFS server at {o.host}:{o.port} refused: {exc}") from exc

    def _call(self, path: str, fn: Callable[[nfs_rs.Client], T]) -> T:
        try:
            return _retrying(lambda: fn(self._connected()))
        except BackendError:
            raise
        except (nfs_rs.NfsError, OSError) as exc:
            error = _translate(exc, path)
            if isinstance(error, UnreachableError):
                self._reset()
            if isinstance(error, NotFoundError) and not path:
                # A server hides an export from a client it would refuse (ganesha does, for the port).
                hint = "" if _may_bind_privileged() else f"; if it is there, {_PRIVILEGED_HINT}"
                raise NotFoundError(f"no folder {self.options.path!r} on the server{hint}") from exc
            raise error from exc

    def _reset(self) -> None:
        """Drop the client: the next request connects afresh. Saying goodbye to a hung server waits for
        the request timeout, so it happens on a thread of its own, never on the caller's."""
        with self._lock:
            client, self._client = self._client, None
            self._open_files.clear()  # gone with the client
        if client is not None:
            threading.Thread(
                target=_close_client, args=(client,), name="mediamesh-nfs-close", daemon=True
            ).start()

    def _full(self, path: str) -> tuple[str, str]:
        clean = clean_relpath(path)
        return clean, f"{self.options.path}/{clean}" if clean else self.options.path

    # -- the interface -----------------------------------------------------------------------------------
    def list_dir(self, path: str) -> list[Entry]:
        clean, full = self._full(path)
        return self._call(
            clean,
            lambda c: [_entry(e.name, e.info) for e in c.scandir(full) if e.name not in (".", "..")],
        )

    def stat(self, path: str) -> Entry:
        clean, full = self._full(path)
        info = self._call(clean, lambda c: c.stat(full))
        return _entry(clean.rpartition("/")[2], info)

    def open(self, path: str) -> BinaryIO:
        clean, full = self._full(path)
        entry = self.stat(clean)  # a link or a device is refused before anything is opened
        if entry.kind is EntryKind.DIR:
            raise IsADirectoryError_(f"is a folder: {clean}", clean)
        if entry.kind is not EntryKind.FILE:
            raise InvalidPathError(f"symbolic links are not followed: {clean}", clean)
        with self._file_lock(full):  # OPEN and CLOSE of one file never cross (they share server state)
            shared = self._open_files.get(full)
            if shared is None:
                handle = self._call(clean, lambda c: c.open(full, "rb"))
                shared = self._open_files[full] = [handle, 0]
            shared[1] += 1
            return cast(BinaryIO, _NfsFile(self, full, shared[0], clean, entry.size))

    def _file_lock(self, full: str) -> threading.Lock:
        return self._file_locks[hash(full) % len(self._file_locks)]

    def _release(self, full: str, handle: Any) -> None:
        """One reader less of an open file; the last one closes it."""
        with self._file_lock(full):
            shared = self._open_files.get(full)
            if shared is None or shared[0] is not handle:
                return  # gone with a lost connection
            shared[1] -= 1
            if shared[1] > 0:
                return
            del self._open_files[full]
            _close_quietly(handle)

    def identity(self) -> dict[str, str]:
        """The filesystem id and the root folder's file id: another disk mounted under the export, or
        another export at the same address, shows different ones."""
        info = self._call("", lambda c: c.stat(self.options.path))
        return {"fsid": f"{int(info.fsid):x}", "root_fileid": str(info.fileid), "export": self.options.path}

    def usage(self) -> tuple[int | None, int | None]:
        """Asked of a client mounted at the source's folder: the pseudo-root's own answer is zero."""

        def fs_stat(_: nfs_rs.Client) -> Any:
            client = self._connect(self.options.path)
            try:
                return client.fs_stat()
            finally:
                client.close()

        st = self._call("", fs_stat)
        return int(st.total_bytes), int(st.available_bytes)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._open_files.clear()
        if client is not None:
            _close_client(client)


#: Pauses before the retries of a request that nfs-rs says is safe to retry: ganesha answers a few
#: concurrent NFSv4.1 requests with NFS4ERR_RETRY_UNCACHED_REP (its session reply cache); about 1.5 s in
#: all, far below the request timeout.
RETRY_PAUSES = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)


def _retrying(fn: Callable[[], T]) -> T:
    """``fn()``, again after a pause while nfs-rs says the failure is safe to retry (read-only requests)."""
    for pause in RETRY_PAUSES:
        try:
            return fn()
        except nfs_rs.NfsError as exc:
            if getattr(exc, "recovery_action", None) != nfs_rs.RecoveryAction.RETRY:
                raise
            log.debug("NFS request to retry (%s): %s", getattr(exc, "code_name", None), exc)
            time.sleep(pause)
    return fn()


def _may_bind_privileged() -> bool:
    """Root (or CAP_NET_BIND_SERVICE) may use a source port below 1024, which ``secure`` exports ask for."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as fh:
            caps = next((line.split()[1] for line in fh if line.startswith("CapEff:")), "0")
        return bool(int(caps, 16) & (1 << 10))  # CAP_NET_BIND_SERVICE
    except (OSError, ValueError):
        return False


def _close_client(client: nfs_rs.Client) -> None:
    try:
        client.close()
    except (nfs_rs.NfsError, OSError):
        log.debug("closing an NFS client failed", exc_info=True)


def _close_quietly(handle: Any) -> None:
    with contextlib.suppress(nfs_rs.NfsError, OSError):  # a handle gone with its connection: nothing to do
        handle.close()


class _NfsFile(ReadOnlyFile):
    """A reader of an open NFS file (shared with other readers): read-only, at its own offset, NFS errors
    turned into backend errors."""

    def __init__(self, backend: NfsBackend, full: str, handle: Any, path: str, size: int) -> None:
        self._backend = backend
        self._full = full
        self._handle = handle
        self._path = path
        self._size = size
        self._offset = 0
        self._closed = False

    def _do(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise ValueError("read of a closed file")
        try:
            return _retrying(fn)
        except (nfs_rs.NfsError, OSError) as exc:
            raise _translate(exc, self._path) from exc

    def read(self, size: int = -1) -> bytes:
        offset = self._offset
        data = cast(bytes, self._do(lambda: self._handle.read_at(offset, size)))
        self._offset += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        offset = self._offset
        count = cast(int, self._do(lambda: self._handle.readinto_at(buffer, offset)))
        self._offset += count
        return count

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._offset = offset
        elif whence == 1:
            self._offset += offset
        else:
            self._offset = self._size + offset
        return self._offset

    def tell(self) -> int:
        return self._offset

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend._release(self._full, self._handle)


# -- registration -------------------------------------------------------------------------------------------
def _parse(text: str) -> str:
    return NfsOptions.parse(text).display


def _fields(location: str) -> dict[str, str]:
    o = NfsOptions.parse(location)
    return {
        "host": o.host,
        "port": "" if o.port == DEFAULT_PORT else str(o.port),
        "export": "/" + o.path,
        "uid": "" if o.uid is None else str(o.uid),
        "gid": "" if o.gid is None else str(o.gid),
    }


def _compose(fields: Mapping[str, str]) -> str:
    host = fields.get("host", "").strip()
    export = fields.get("export", "").strip().strip("/")
    if not host or not export:
        raise ValueError("an NFS export needs a host and the export's path")
    query = [f"{k}={fields[k].strip()}" for k in ("uid", "gid") if fields.get(k, "").strip()]
    location = f"nfs://{authority(fields, user=False)}/{quote(export, safe='/')}"
    return location + ("?" + "&".join(query) if query else "")


def _extent(location: str) -> tuple[tuple[Any, ...], str]:
    o = NfsOptions.parse(location)
    return (o.host.lower(), o.port), o.path


def _open(location: str, _secret: Mapping[str, Any] | None, _roots: Any) -> Backend:
    return NfsBackend(NfsOptions.parse(location))


register(
    BackendKind(
        name="nfs",
        title="NFS export (NAS, Linux server)",
        schemes=("nfs",),
        example="nfs://host[:port]/export[/sub/path]",
        options=(
            Option("host", "Host", required=True, placeholder="192.168.0.19 or nas.local", row=1),
            Option("port", "Port", placeholder="2049", numeric=True, row=1),
            Option("export", "Export and folder", required=True, placeholder="/volume1/video", row=2),
            Option(
                "uid",
                "User id",
                numeric=True,
                placeholder="1000",
                help="AUTH_SYS: the numeric user id.",
                row=3,
            ),
            Option("gid", "Group id", numeric=True, placeholder="100", row=3),
        ),
        features=FEATURES,
        parse=_parse,
        fields=_fields,
        compose=_compose,
        factory=_open,
        extent=_extent,
    )
)
