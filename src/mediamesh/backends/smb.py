"""``smb``: an SMB 2/3 share (a Synology or QNAP NAS, a Windows PC, Samba), read in the application.

No kernel mount and no privileged container: the share is read with smbprotocol, a maintained pure-Python
SMB 2/3 client. Facts that shaped this module (checked against Samba 4.17):

- One directory query returns size, write time and file id of every entry: a listing costs one round trip
  per folder, not one per file. ``SMBDirEntry.stat()`` ignores a non-default port, so the listing's own
  information is used.
- A hung server blocks a read for 10 minutes by default. The receive timeout is read when a connection is
  built, so this module builds its connections itself, with a bounded timeout, in a cache of its own.
- A connection hands out a limited number of credits and smbprotocol fails a request when none are left
  instead of waiting, so each thread gets a connection of its own (on a real network, its own TCP stream).
- After a dropped connection the next call reconnects; the credentials are passed with every call so that
  it reconnects as the same user. Files are opened read-only, letting others read, write and delete them
  meanwhile: a scan must never get in the way of the people using the share.
- Signing stays on (Samba requires it).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast
from urllib.parse import quote, unquote, urlsplit

import smbclient
from smbclient._io import SMBDirectoryIO, SMBFileTransaction, SMBRawIO, query_info
from smbprotocol.change_notify import ChangeNotifyFlags, CompletionFilter, FileSystemWatcher
from smbprotocol.connection import Connection
from smbprotocol.exceptions import (
    AccessDenied,
    BadNetworkName,
    LogonFailure,
    NoMoreFiles,
    NoSuchFile,
    SMBAuthenticationError,
    SMBConnectionClosed,
    SMBException,
    SMBOSError,
    SMBResponseException,
)
from smbprotocol.file_info import FileFsVolumeInformation, FileInformationClass
from smbprotocol.header import NtStatus
from smbprotocol.open import QueryDirectoryFlags, SMB2QueryDirectoryResponse
from smbprotocol.session import Session

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
    ProbeResult,
    ReadOnlyFile,
    UnreachableError,
    clean_relpath,
)
from mediamesh.backends.registry import BackendKind, Option, register
from mediamesh.backends.smb_fast import AVAILABLE as FAST_AVAILABLE
from mediamesh.backends.smb_fast import LibSmbFile, LibSmbReader
from mediamesh.backends.urls import authority, port_of, shown_host

log = logging.getLogger(__name__)
DEFAULT_PORT = 445
FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_REPARSE_POINT = 0x400  # symlinks and junctions: reported, never followed
FILE_OPEN_REPARSE_POINT = 0x00200000  # open a link itself instead of what it points to
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SmbOptions:
    """Where a share is: ``smb://[user@]host[:port]/share[/sub/path]`` (the password is kept apart)."""

    host: str
    share: str
    port: int = DEFAULT_PORT
    username: str | None = None
    subpath: str = ""
    #: Seconds without any answer before a request (and its keep-alive echo) gives up: a hung server is
    #: noticed within about twice this. A NAS whose disks spin up still answers the echo meanwhile.
    timeout: float = 8.0
    #: Seconds to set up a connection (TCP, negotiate, log-on); a LAN server does this in milliseconds.
    connect_timeout: float = 5.0
    #: Files at least this large are read with libsmbclient when the smb-fast extra is installed.
    fast_read_min: int = 8 << 20

    @classmethod
    def parse(cls, url: str) -> SmbOptions:
        parts = urlsplit(url)
        if parts.scheme != "smb" or not parts.hostname:
            raise ValueError("an SMB location looks like smb://[user@]host[:port]/share[/sub/path]")
        if parts.password is not None:
            raise ValueError("put no password in an SMB location; give it separately (--password-stdin)")
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if not segments:
            raise ValueError("an SMB location needs a share: smb://host/share")
        port = port_of(parts, DEFAULT_PORT, url)
        sub = clean_relpath("/".join(segments[1:]))
        if "\\" in sub:
            raise ValueError("an SMB location cannot contain '\\' (use '/' between folders)")
        return cls(
            parts.hostname, segments[0], port, unquote(parts.username) if parts.username else None, sub
        )

    @property
    def display(self) -> str:
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port != DEFAULT_PORT else ""
        sub = f"/{self.subpath}" if self.subpath else ""
        return f"smb://{user}{shown_host(self.host)}{port}/{self.share}{sub}"


def _translate(exc: BaseException, path: str) -> BackendError:
    where = path or "/"
    if isinstance(exc, SMBOSError) and exc.ntstatus == NtStatus.STATUS_BAD_NETWORK_NAME:
        return UnreachableError("no such share on the server", path)
    if isinstance(exc, SMBOSError):
        code = exc.errno
        if code == errno.ENOENT:
            return NotFoundError(f"no such file or folder: {where}", path)
        if code == errno.ENOTDIR:
            return NotADirectoryError_(f"not a folder: {where}", path)
        if code == errno.EISDIR:
            return IsADirectoryError_(f"is a folder: {where}", path)
        if code in (errno.EACCES, errno.EPERM):
            return PermissionDeniedError(f"permission denied: {where}", path)
        return BackendError(f"{exc.strerror}: {where}", path)
    if isinstance(exc, LogonFailure | SMBAuthenticationError):
        return PermissionDeniedError("the server refused the user name or password", path)
    if isinstance(exc, AccessDenied):
        return PermissionDeniedError(f"access denied: {where}", path)
    if isinstance(exc, BadNetworkName):
        return UnreachableError("no such share on the server", path)
    if isinstance(exc, SMBConnectionClosed | ConnectionError | TimeoutError | OSError):
        return UnreachableError(f"cannot reach the server: {exc}", path)
    if isinstance(exc, SMBResponseException | SMBException):
        return BackendError(f"SMB error: {exc}", path)
    return UnreachableError(f"SMB failure: {exc.__class__.__name__}: {exc}", path)


def _ns(value: datetime | int) -> int:
    if isinstance(value, int):  # a raw FILETIME (100 ns since 1601)
        return (value - 116444736000000000) * 100
    delta = value - _EPOCH if value.tzinfo else value.replace(tzinfo=UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


#: Samba hands out times in microseconds (Windows keeps 100 ns): the coarser is what an SMB source promises.
FEATURES = Features(file_ids=True, case_insensitive=True, slow_io=True, mtime_precision_ns=1000, notify=True)
#: What a watch asks to hear of: names (files and folders) added, removed or renamed, and writes.
_NOTIFY_FILTER = (
    CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME
    | CompletionFilter.FILE_NOTIFY_CHANGE_DIR_NAME
    | CompletionFilter.FILE_NOTIFY_CHANGE_SIZE
    | CompletionFilter.FILE_NOTIFY_CHANGE_LAST_WRITE
)
_FILE_LIST_DIRECTORY = 0x00000001
_SYNCHRONIZE = 0x00100000


class SmbBackend(Backend):
    features = FEATURES

    def __init__(self, options: SmbOptions, password: str | None = None) -> None:
        self.options = options
        self._password = password
        self._fast = (
            LibSmbReader(
                options.host, options.port, options.share, options.username, password, options.timeout
            )
            if FAST_AVAILABLE
            else None
        )
        self._local = threading.local()
        self._caches: list[dict[str, Connection]] = []
        self._lock = threading.Lock()
        #: When each thread's connection was last used (by id of its cache), and the caches a watch holds.
        self._used: dict[int, float] = {}
        self._pinned: set[int] = set()

    @property
    def _cache(self) -> dict[str, Connection]:
        """This thread's connection cache (see the module docstring)."""
        cache: dict[str, Connection] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = {}
            with self._lock:
                self._caches.append(cache)
        return cache

    # -- connection --------------------------------------------------------------------------------------
    def _connect(self) -> None:
        """Build (or rebuild) the connection with a bounded receive timeout, then a session on it."""
        o = self.options
        key = f"{o.host.lower()}:{o.port}"
        cache = self._cache
        conn = cache.get(key)
        if conn is not None and conn.transport.connected:
            return
        conn = Connection(uuid.uuid4(), o.host, o.port, require_signing=True)
        conn._receive_timeout = max(1, int(o.timeout))  # read by the connection's receiver thread
        conn.connect(timeout=o.connect_timeout)
        try:
            Session(conn, username=o.username, password=self._password).connect()
        except BaseException:
            conn.disconnect()
            raise
        cache[key] = conn

    def _kw(self) -> dict[str, Any]:
        return {
            "port": self.options.port,
            "username": self.options.username,
            "password": self._password,
            "connection_cache": self._cache,
            "connection_timeout": self.options.connect_timeout,
        }

    def _unc(self, path: str) -> str:
        clean = clean_relpath(path)
        if "\\" in clean:  # SMB's separator: a\..\b would climb out of the source's folder
            raise InvalidPathError("an SMB path cannot contain '\\'", path)
        rel = "/".join(p for p in (self.options.subpath, clean) if p)
        base = rf"\\{self.options.host}\{self.options.share}"
        return base + ("\\" + rel.replace("/", "\\") if rel else "")

    def _call(self, path: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._used[id(self._cache)] = time.monotonic()
        try:
            self._connect()
        except (LogonFailure, SMBAuthenticationError) as exc:
            raise _translate(exc, path) from exc
        except (SMBException, OSError, ValueError) as exc:
            # One message whatever went wrong (refused, timed out, not SMB): a source test must not tell
            # a LAN client which ports of which hosts are open. The detail goes to the server's log.
            log.info("SMB connection to %s:%s failed: %s", self.options.host, self.options.port, exc)
            raise UnreachableError(
                f"no SMB server answered at {self.options.host}:{self.options.port}"
            ) from exc
        try:
            return fn(*args, **kwargs, **self._kw())
        except (SMBException, OSError, ValueError) as exc:
            error = _translate(exc, path)
            if isinstance(error, NotFoundError) and not clean_relpath(path):
                # Samba answers "not found" when the share (or the folder a source starts in) does not exist.
                if not self.options.subpath:
                    raise UnreachableError(f"no such share on the server: {self.options.share}") from exc
                raise NotFoundError(
                    f"no folder {self.options.subpath!r} on share {self.options.share!r}"
                ) from exc
            raise error from exc

    # -- the interface -----------------------------------------------------------------------------------
    def list_dir(self, path: str) -> list[Entry]:
        unc = self._unc(path)

        def listing(**kw: Any) -> list[Entry]:
            out: list[Entry] = []
            with SMBDirectoryIO(unc, share_access="rwd", **kw) as dir_io:
                fd = dir_io.fd
                flags = QueryDirectoryFlags.SMB2_RESTART_SCANS
                while True:
                    query, _ = fd.query_directory("*", _ID_FULL_DIR_INFO, flags=flags, send=False)
                    session, tree = fd.tree_connect.session.session_id, fd.tree_connect.tree_connect_id
                    request = fd.connection.send(query, session, tree)
                    try:
                        response = fd.connection.receive(request)
                    except (NoMoreFiles, NoSuchFile):
                        return out
                    flags = 0
                    reply = SMB2QueryDirectoryResponse()
                    reply.unpack(response["data"].get_value())
                    out.extend(parse_directory_entries(reply["buffer"].get_value()))

        entries: list[Entry] = self._call(path, listing)
        return entries

    def stat(self, path: str) -> Entry:
        unc = self._unc(path)
        st = self._call(path, smbclient.stat, unc, follow_symlinks=False)
        name = clean_relpath(path).rpartition("/")[2]
        attrs = st.st_file_attributes
        kind = _kind(attrs)
        # Listings carry µs (a datetime); stat carries 100 ns. Both are cut to µs, so they compare equal.
        mtime_ns = st.st_mtime_ns // 1_000 * 1_000
        return Entry(name, kind, st.st_size if kind is EntryKind.FILE else 0, mtime_ns, str(st.st_ino))

    def open(self, path: str) -> BinaryIO:
        """One CREATE (a link is opened as itself, and refused), then READs; see _SmbFile.close_and_stat."""
        unc = self._unc(path)
        raw: SMBRawIO = self._call(
            path,
            smbclient.open_file,
            unc,
            mode="rb",
            buffering=0,
            share_access="rwd",
            create_options=FILE_OPEN_REPARSE_POINT,
        )
        if raw.fd.file_attributes & FILE_ATTRIBUTE_REPARSE_POINT:
            raw.close()
            raise InvalidPathError(f"symbolic links are not followed: {path}", path)
        if self._fast is not None and raw.fd.end_of_file >= self.options.fast_read_min:
            raw.close()  # checked and measured; the bytes come through libsmbclient
            share_path = "/".join(p for p in (self.options.subpath, clean_relpath(path)) if p)
            fast = self._fast.open(share_path, int(raw.fd.end_of_file))
            return cast(BinaryIO, _FastSmbFile(fast, self, path))
        return cast(BinaryIO, _SmbFile(raw, path))

    def identity(self) -> dict[str, str]:
        """The volume's serial number and label, as the server reports them, and the share's name."""

        def volume(**kw: Any) -> dict[str, str]:
            raw = SMBRawIO(self._unc(""), mode="r", share_access="rwd", desired_access=0x80, **kw)
            with SMBFileTransaction(raw) as transaction:
                query_info(transaction, FileFsVolumeInformation, output_buffer_length=1024)
            info = transaction.results[0]
            return {
                "share": self.options.share.lower(),
                "volume_serial": f"{info['volume_serial_number'].get_value():08x}",
                "volume_label": str(info["volume_label"].get_value()),
            }

        identity: dict[str, str] = self._call("", volume)
        return identity

    def usage(self) -> tuple[int | None, int | None]:
        result = self._call("", smbclient.stat_volume, self._unc(""))
        return int(result.total_size), int(result.caller_available_size)

    def close_and_stat(self, fh: BinaryIO, path: str) -> tuple[int, int]:
        # Both file classes below close the handle and report the size and write time the server has.
        return cast("_SmbFile | _FastSmbFile", fh).close_and_stat()

    def watch(self, stop: threading.Event, changed: Changed, ready: Callable[[dict[str, Any]], None]) -> None:
        """SMB2 CHANGE_NOTIFY on the root with WATCH_TREE: one request outstanding for the whole share,
        answered by the server when something changes and sent again after each answer. An answer with
        no detail (STATUS_NOTIFY_ENUM_DIR: the server's buffer overflowed) means "look at everything".
        Runs on its own thread, hence on its own connection (see the module docstring); the connection's
        keep-alive notices a server that went away within about twice the timeout."""
        unc = self._unc("")

        def run(**kw: Any) -> None:
            self._pinned.add(id(self._cache))  # this connection waits on purpose: never closed as idle
            try:
                watch_on(**kw)
            finally:
                self._pinned.discard(id(self._cache))

        def watch_on(**kw: Any) -> None:
            with SMBDirectoryIO(
                unc, share_access="rwd", desired_access=_FILE_LIST_DIRECTORY | _SYNCHRONIZE, **kw
            ) as dir_io:
                ready({"via": "SMB change notify"})
                while not stop.is_set():
                    watcher = FileSystemWatcher(dir_io.fd)
                    watcher.start(
                        _NOTIFY_FILTER, flags=ChangeNotifyFlags.SMB2_WATCH_TREE, output_buffer_length=65536
                    )
                    while not watcher.response_event.wait(0.5):
                        if stop.is_set():
                            with contextlib.suppress(Exception):
                                watcher.cancel()
                            return
                    actions = watcher.result
                    if actions is None:
                        if stop.is_set() or watcher.cancelled:
                            return
                        # No answer, yet the request ended: the connection went away under it.
                        raise UnreachableError("the share stopped answering change notifications")
                    if not actions:
                        changed(None)
                        continue
                    for info in actions:
                        name = str(info["file_name"].get_value()).replace("\\", "/")
                        changed(name.rpartition("/")[0])

        self._call("", run)

    #: A thread's connection unused this long is closed: the threads of a finished scan would otherwise
    #: keep theirs open, each sending a keep-alive every few seconds to the NAS for as long as we run.
    IDLE_CLOSE = 120.0

    def probe(self) -> ProbeResult:
        self.close_idle()
        return super().probe()

    def close_idle(self, older: float | None = None) -> int:
        """Close the connections of threads that have not used them for ``older`` seconds (a watch's is
        kept); they reconnect when used again. Returns how many were closed."""
        limit = self.IDLE_CLOSE if older is None else older
        now, mine, closed = time.monotonic(), id(self._cache), 0
        with self._lock:
            for cache in self._caches:
                key = id(cache)
                if cache and key != mine and key not in self._pinned and now - self._used.get(key, 0) > limit:
                    for name in list(cache):
                        conn = cache.pop(name)
                        if conn.transport.connected:  # one the server closed already has nothing to say
                            with contextlib.suppress(Exception):
                                conn.disconnect()
                    closed += 1
        return closed

    def close(self) -> None:
        with self._lock:
            for cache in self._caches:
                smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)


# [MS-FSCC] 2.4.18 FileIdFullDirectoryInformation: next offset, index, 4 times, end of file, allocation,
# attributes, name length, EA size, reserved, file id; then the name in UTF-16LE.
_ID_FULL_DIR = struct.Struct("<II6qIIIIQ")
_ID_FULL_DIR_INFO = FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION
_FILETIME_EPOCH = 116444736000000000  # 1601-01-01 to 1970-01-01 in 100 ns


def parse_directory_entries(buffer: bytes) -> list[Entry]:
    """The entries of one QUERY_DIRECTORY reply, read with ``struct``: smbprotocol's field-by-field
    unpacking costs more than the network round trip. Times are cut to µs like every other SMB time here."""
    out: list[Entry] = []
    offset, size = 0, len(buffer)
    while offset + _ID_FULL_DIR.size <= size:
        (nxt, _, _, _, mtime, _, eof, _, attrs, name_len, _, _, file_id) = _ID_FULL_DIR.unpack_from(
            buffer, offset
        )
        start = offset + _ID_FULL_DIR.size
        name = buffer[start : start + name_len].decode("utf-16-le")
        if name not in (".", ".."):
            kind = _kind(attrs)
            mtime_ns = (mtime - _FILETIME_EPOCH) * 100 // 1_000 * 1_000
            out.append(
                Entry(name, kind, eof if kind is EntryKind.FILE else 0, mtime_ns, str(file_id) or None)
            )
        if not nxt:
            break
        offset += nxt
    return out


def _kind(attributes: int) -> EntryKind:
    if attributes & FILE_ATTRIBUTE_REPARSE_POINT:
        return EntryKind.OTHER
    return EntryKind.DIR if attributes & FILE_ATTRIBUTE_DIRECTORY else EntryKind.FILE


class _SmbFile(ReadOnlyFile):
    """An open SMB file: read-only, SMB errors turned into backend errors."""

    def __init__(self, raw: SMBRawIO, path: str) -> None:
        self._raw = raw
        self._path = path

    def close_and_stat(self) -> tuple[int, int]:
        """Close the file, asking the server for its size and write time as they are now (in the CLOSE
        response: no extra round trip). A scan compares them with the listing to catch a file that
        changed while it was read."""
        fd = self._raw.fd
        try:
            fd.close(get_attributes=True)
        except (SMBException, OSError, ValueError) as exc:
            raise _translate(exc, self._path) from exc
        self._raw.close()
        return int(fd.end_of_file), _ns(fd.last_write_time)

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self._raw.read(size))
        except (SMBException, OSError, ValueError) as exc:
            raise _translate(exc, self._path) from exc

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())

    def close(self) -> None:
        with contextlib.suppress(SMBException, OSError, ValueError):
            self._raw.close()  # a handle gone with its connection has nothing left to release


class _FastSmbFile(ReadOnlyFile):
    """A large file read through libsmbclient; its final state is asked of smbprotocol (one stat)."""

    def __init__(self, handle: LibSmbFile, backend: SmbBackend, path: str) -> None:
        self._handle = handle
        self._backend = backend
        self._path = path

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)

    def readinto(self, buffer: Any) -> int:
        return self._handle.readinto(buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def close_and_stat(self) -> tuple[int, int]:
        self._handle.close()
        entry = self._backend.stat(self._path)
        return entry.size, entry.mtime_ns

    def close(self) -> None:
        self._handle.close()


# -- registration -------------------------------------------------------------------------------------------
def _parse(text: str) -> str:
    try:
        return SmbOptions.parse(text).display
    except InvalidPathError as exc:
        raise ValueError(str(exc)) from None


def _fields(location: str) -> dict[str, str]:
    o = SmbOptions.parse(location)
    return {
        "host": o.host,
        "port": "" if o.port == DEFAULT_PORT else str(o.port),
        "share": o.share,
        "folder": o.subpath,
        "user": o.username or "",
    }


def _compose(fields: Mapping[str, str]) -> str:
    host, share = fields.get("host", "").strip(), fields.get("share", "").strip()
    if not host or not share:
        raise ValueError("an SMB share needs a host and a share name")
    folder = [s for s in fields.get("folder", "").strip().split("/") if s]
    path = "/".join(quote(s, safe="") for s in [share, *folder])
    return f"smb://{authority(fields)}/{path}"


def _scope(location: str) -> tuple[Any, ...]:
    o = SmbOptions.parse(location)
    return (o.host.lower(), o.port, o.share.lower(), (o.username or "").lower())


def _extent(location: str) -> tuple[tuple[Any, ...], str]:
    o = SmbOptions.parse(location)  # shares and their paths compare case-insensitively, like the server
    return (o.host.lower(), o.port, o.share.lower()), o.subpath.lower()


def _open(location: str, secret: Mapping[str, Any] | None, _roots: Any) -> Backend:
    return SmbBackend(SmbOptions.parse(location), (secret or {}).get("password"))


register(
    BackendKind(
        name="smb",
        title="SMB share (NAS, Windows PC)",
        schemes=("smb",),
        example="smb://[user@]host[:port]/share[/sub/path]",
        options=(
            Option("host", "Host", required=True, placeholder="192.168.0.19 or nas.local", row=1),
            Option("port", "Port", placeholder="445", numeric=True, row=1),
            Option("share", "Share", required=True, placeholder="video", row=2),
            Option("folder", "Folder in the share", placeholder="Projects", row=2),
            Option("user", "User", row=3),
            Option("password", "Password", secret=True, help="Stored encrypted; never shown again.", row=3),
        ),
        features=FEATURES,
        parse=_parse,
        fields=_fields,
        compose=_compose,
        factory=_open,
        credential_scope=_scope,
        extent=_extent,
    )
)
