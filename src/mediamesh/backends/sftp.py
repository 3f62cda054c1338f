"""``sftp``: a folder on any machine that speaks SSH (Linux and macOS machines, most NAS), read in the
application with asyncssh.

Facts that shaped this module (measured against OpenSSH 9.2 on loopback, see docs/benchmarks.md):

- asyncssh, not paramiko: reading and hashing 512 MiB ran at 234 MB/s with asyncssh (AES-GCM, pipelined
  reads) against 98 MB/s with paramiko, whatever its cipher, and 271 MB/s for OpenSSH's own ``sftp``.
  asyncssh is asynchronous; each backend runs one event loop on a thread of its own, and the blocking
  interface below hands every request to it with a deadline. One connection and one SFTP session carry
  every thread's requests at once.
- **The server's host key is pinned.** A location carries the SHA-256 fingerprint of the key it trusts
  (``?fingerprint=SHA256:...``, what ``ssh-keygen -lf`` prints). A location without one trusts the key
  seen at its first successful connection (trust on first use), and the source is stored with that
  fingerprint from then on; the key is fetched before logging on, so no password or key signature is
  ever sent to a server whose key is not the trusted one. A changed key is refused, never accepted.
- **No link is followed.** SFTP servers resolve links themselves, so every request below the root is
  checked against the server's ``realpath`` of its folder, sent alongside the request (no extra round
  trip): a folder or file reached through a link is refused.
- **Hashing near the data.** Where the account may run commands and the server has ``b3sum`` (checked
  once per connection by hashing empty input, as rclone does), large files are hashed on the server and
  only the 64-character answer crosses the link; otherwise the bytes are read.
- SFTP version 3 (OpenSSH) reports times in whole seconds: that is the precision an SFTP source promises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import logging
import posixpath
import re
import shlex
import stat as stat_mod
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit

import asyncssh

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

DEFAULT_PORT = 22
#: BLAKE3 of no input: a server whose ``b3sum`` prints this for empty input hashes files for us.
EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
_HEX64 = re.compile(r"\\?([0-9a-f]{64})(?:\s|\Z)")
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}\Z")
#: AES-GCM first: OpenSSL's AES-NI makes it three times as fast as ChaCha20 in asyncssh.
_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
#: SFTP v3 carries whole seconds; file ids do not exist in the protocol.
FEATURES = Features(file_ids=False, case_insensitive=False, slow_io=True, mtime_precision_ns=1_000_000_000)


@dataclass(frozen=True, slots=True)
class SftpOptions:
    """Where a folder is: ``sftp://[user@]host[:port]/abs/path[?fingerprint=SHA256:...]``."""

    host: str
    path: str  # absolute, normalised, "/" for the root
    port: int = DEFAULT_PORT
    username: str | None = None
    #: The host key trusted for this source; None: trust the first one seen (and store it).
    fingerprint: str | None = None
    #: Seconds without an answer before a request gives up and the source counts as unreachable.
    timeout: float = 10.0
    connect_timeout: float = 8.0
    #: Files at least this large are hashed on the server when it can (one command per file costs a few
    #: round trips: below this, reading is as quick).
    remote_hash_min: int = 4 << 20

    @classmethod
    def parse(cls, url: str) -> SftpOptions:
        parts = urlsplit(url)
        if parts.scheme != "sftp" or not parts.hostname:
            raise ValueError("an SFTP location looks like sftp://[user@]host[:port]/absolute/path")
        if parts.password is not None:
            raise ValueError("put no password in an SFTP location; give it separately (--password-stdin)")
        port = port_of(parts, DEFAULT_PORT, url)
        raw = unquote(parts.path)
        if not raw:
            raise ValueError("an SFTP location needs the folder's absolute path: sftp://host/volume1/video")
        if raw.startswith("/~"):
            raise ValueError("give the folder's absolute path (sftp://host/home/ana/Videos, not ~/Videos)")
        try:
            path = "/" + clean_relpath(raw.lstrip("/"))
        except InvalidPathError as exc:
            raise ValueError(str(exc)) from None
        fingerprint = None
        for item in filter(None, parts.query.split("&")):
            key, _, value = item.partition("=")
            if key != "fingerprint":
                raise ValueError(f"unknown SFTP option {key!r} (the only one is fingerprint=SHA256:...)")
            fingerprint = check_fingerprint(unquote(value))
        return cls(
            parts.hostname, path, port, unquote(parts.username) if parts.username else None, fingerprint
        )

    @property
    def display(self) -> str:
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        port = f":{self.port}" if self.port != DEFAULT_PORT else ""
        pin = f"?fingerprint={self.fingerprint}" if self.fingerprint else ""
        return f"sftp://{user}{shown_host(self.host)}{port}{quote(self.path, safe='/')}{pin}"


def check_fingerprint(text: str) -> str:
    text = text.strip()
    if not _FINGERPRINT.match(text):
        raise ValueError(
            f"invalid host key fingerprint {text!r}: give what 'ssh-keygen -lf <host key>.pub' prints "
            "(SHA256: and 43 characters)"
        )
    return text


class _PinnedClient(asyncssh.SSHClient):
    """Accepts exactly the pinned host key, remembering what the server showed (for the error)."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.seen: str | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.seen = key.get_fingerprint("sha256")
        return self.seen == self.fingerprint


class HostKeyChangedError(PermissionDeniedError):
    """The server showed another host key than the one trusted for this source."""


def _translate(exc: BaseException, path: str) -> BackendError:
    where = path or "/"
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath):
        return NotFoundError(f"no such file or folder: {where}", path)
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return PermissionDeniedError(f"permission denied: {where}", path)
    if isinstance(exc, asyncssh.SFTPNotADirectory):
        return NotADirectoryError_(f"not a folder: {where}", path)
    if isinstance(exc, asyncssh.SFTPFileIsADirectory):
        return IsADirectoryError_(f"is a folder: {where}", path)
    if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
        return UnreachableError(f"the connection to the SFTP server was lost: {where}", path)
    if isinstance(exc, asyncssh.SFTPError):
        return BackendError(f"SFTP error: {exc.reason}: {where}", path)
    if isinstance(exc, asyncssh.PermissionDenied):
        return PermissionDeniedError("the server refused the user name, password or key", path)
    if isinstance(exc, asyncssh.KeyImportError | asyncssh.KeyEncryptionError):
        return PermissionDeniedError(f"the private key cannot be used: {exc}", path)
    if isinstance(exc, TimeoutError | cf.TimeoutError):
        return UnreachableError("the SFTP server stopped answering", path)
    return UnreachableError(f"cannot reach the SFTP server: {exc.__class__.__name__}: {exc}", path)


def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _entry(name: str, attrs: asyncssh.SFTPAttrs) -> Entry:
    mode = attrs.permissions or 0
    if stat_mod.S_ISDIR(mode):
        kind = EntryKind.DIR
    elif stat_mod.S_ISREG(mode):
        kind = EntryKind.FILE
    else:
        kind = EntryKind.OTHER  # links, devices, sockets: never followed
    mtime_ns = (attrs.mtime or 0) * 1_000_000_000 + (attrs.mtime_ns or 0)
    return Entry(name, kind, (attrs.size or 0) if kind is EntryKind.FILE else 0, mtime_ns)


class SftpBackend(Backend):
    features = FEATURES

    def __init__(self, options: SftpOptions, secret: Mapping[str, Any] | None = None) -> None:
        self.options = options
        secret = secret or {}
        self._password: str | None = secret.get("password")
        self._private_key: str | None = secret.get("private_key")
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._connecting: asyncio.Lock | None = None
        self._real_root = b"/"
        #: The fingerprint of the key the server showed (the pinned one, or the one trusted on first use).
        self.host_key: str | None = options.fingerprint
        self._b3sum: bool | None = None  # None: not asked on this connection yet

    # -- the event loop --------------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"mediamesh-sftp-{self.options.host}", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, path: str, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
        """Run a request on the backend's loop, within ``timeout`` seconds (else unreachable)."""
        loop = self._ensure_loop()
        limit = timeout or self.options.timeout
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(make(), limit), loop)
        try:
            return future.result(limit + 5)
        except BackendError:
            raise
        except (
            asyncssh.Error,
            asyncssh.KeyImportError,
            OSError,
            TimeoutError,
            cf.TimeoutError,
            EOFError,
        ) as exc:
            future.cancel()
            error = _translate(exc, path)
            if isinstance(error, UnreachableError):
                self._drop()  # the next request connects afresh
            raise error from exc

    async def _session(self) -> asyncssh.SFTPClient:
        """The SFTP session, connecting first where there is none (one connection at a time)."""
        if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
            return self._sftp
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
                return self._sftp
            await self._connect()
            assert self._sftp is not None
            return self._sftp

    async def _connect(self) -> None:
        o = self.options
        common: dict[str, Any] = {
            "config": None,  # never ~/.ssh/config: a source is what its location says
            "agent_path": None,
            "gss_host": None,
            "host_based_auth": False,
            "x509_trusted_certs": None,
            "encryption_algs": _CIPHERS,
            "connect_timeout": o.connect_timeout,
        }
        try:
            pinned = o.fingerprint or self.host_key
            if pinned is None:  # trust on first use: fetch the key before logging on
                key = await asyncio.wait_for(
                    asyncssh.get_server_host_key(o.host, o.port, config=None), o.connect_timeout
                )
                if key is None:
                    raise UnreachableError("the SFTP server showed no host key")
                pinned = key.get_fingerprint("sha256")
            client = _PinnedClient(pinned)
            keys = None
            if self._private_key:
                keys = [asyncssh.import_private_key(self._private_key, self._password)]
            conn = await asyncssh.connect(
                o.host,
                o.port,
                username=o.username or (),
                password=self._password if not self._private_key else None,
                client_keys=keys,
                known_hosts=([], [], []),  # every key is checked by _PinnedClient
                client_factory=lambda: client,
                keepalive_interval=max(2.0, o.timeout / 2),
                keepalive_count_max=2,
                login_timeout=o.connect_timeout * 2,
                **common,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            seen = client.seen or "another key"
            raise HostKeyChangedError(
                f"the server's host key is {seen}, not {client.fingerprint} trusted for this source: "
                "another machine may be answering in its place. If the server was reinstalled, check its "
                "key ('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' on it) and edit the source's "
                "fingerprint, typing the password again"
            ) from exc
        except (asyncssh.PermissionDenied, asyncssh.KeyImportError, asyncssh.KeyEncryptionError):
            raise
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            # One message whatever went wrong (refused, timed out, not SSH): a test must not tell a LAN
            # client which ports of which hosts are open. The detail goes to the server's log.
            log.info("SFTP connection to %s:%s failed: %s", o.host, o.port, exc)
            raise UnreachableError(f"no SFTP server answered at {o.host}:{o.port}") from exc
        try:
            sftp = await conn.start_sftp_client(path_encoding=None)
            real = await sftp.realpath(_bytes(o.path))
        except BaseException:
            conn.close()
            raise
        self.host_key = pinned
        self._conn, self._sftp, self._real_root, self._b3sum = conn, sftp, bytes(real), None

    def _drop(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(conn.abort)

    # -- paths -------------------------------------------------------------------------------------------
    def _abs(self, path: str) -> tuple[str, bytes]:
        clean = clean_relpath(path)
        return clean, posixpath.join(_bytes(self.options.path), _bytes(clean)) if clean else _bytes(
            self.options.path
        )

    async def _inside(self, sftp: asyncssh.SFTPClient, clean: str, folder: bytes) -> None:
        """``folder`` (of ``clean``) must be where it seems below the root, not reached through a link."""
        expected = self._real_root.rstrip(b"/") + (b"/" + _bytes(clean) if clean else b"")
        real = await sftp.realpath(folder)
        if bytes(real) != (expected or b"/"):
            raise NotADirectoryError_(f"not a folder (a symbolic link, not followed): {clean}", clean)

    async def _checked(self, sftp: asyncssh.SFTPClient, clean: str, full: bytes, what: Awaitable[T]) -> T:
        """``what`` on ``full``, with the check that its parent folder is a real folder below the root."""
        parent = posixpath.dirname(clean)
        if not parent:
            return await what  # the root itself, or a name in it: nothing in between can be a link
        parent_full = posixpath.dirname(full)
        check = asyncio.ensure_future(self._inside(sftp, parent, parent_full))
        try:
            result = await what
        except BaseException:
            check.cancel()
            raise
        await check
        return result

    # -- the interface -----------------------------------------------------------------------------------
    def list_dir(self, path: str) -> list[Entry]:
        clean, full = self._abs(path)

        async def listing() -> list[Entry]:
            sftp = await self._session()
            check = asyncio.ensure_future(self._inside(sftp, clean, full)) if clean else None
            try:
                names = await sftp.readdir(full)
            except asyncssh.SFTPError:
                # OpenSSH answers "no such file" for a file listed as a folder (ENOTDIR): ask what it is.
                if check is not None:
                    await check  # a link: say so
                attrs = await sftp.lstat(full)
                if not stat_mod.S_ISDIR(attrs.permissions or 0):
                    raise NotADirectoryError_(f"not a folder: {clean}", clean) from None
                raise
            except BaseException:
                if check is not None:
                    check.cancel()
                raise
            if check is not None:
                await check
            # path_encoding=None: names are bytes (a name that is not UTF-8 survives the round trip).
            raw = [(cast(bytes, n.filename), n.attrs) for n in names]
            return [_entry(_name(name), attrs) for name, attrs in raw if name not in (b".", b"..")]

        return self._run(clean, listing)

    def stat(self, path: str) -> Entry:
        clean, full = self._abs(path)

        async def one() -> Entry:
            sftp = await self._session()
            attrs = await self._checked(sftp, clean, full, sftp.lstat(full))
            return _entry(clean.rpartition("/")[2], attrs)

        return self._run(clean, one)

    async def _open_checked(self, clean: str, full: bytes) -> tuple[asyncssh.SFTPClient, Entry]:
        sftp = await self._session()
        entry = _entry(clean.rpartition("/")[2], await self._checked(sftp, clean, full, sftp.lstat(full)))
        if entry.kind is EntryKind.DIR:
            raise IsADirectoryError_(f"is a folder: {clean}", clean)
        if entry.kind is not EntryKind.FILE:
            raise InvalidPathError(f"symbolic links are not followed: {clean}", clean)
        return sftp, entry

    def open(self, path: str) -> BinaryIO:
        clean, full = self._abs(path)

        async def opened() -> tuple[asyncssh.SFTPClientFile, int]:
            sftp, entry = await self._open_checked(clean, full)
            return await sftp.open(full, "rb"), entry.size

        handle, size = self._run(clean, opened)
        return cast(BinaryIO, _SftpFile(self, handle, clean, size))

    def content_hash(self, path: str, size: int) -> str | None:
        """The file's BLAKE3 hex digest computed by the server's ``b3sum``, or None (read it instead)."""
        if size < self.options.remote_hash_min or self._b3sum is False:
            return None
        clean, full = self._abs(path)
        try:
            command = "b3sum -- " + shlex.quote(full.decode("utf-8")) + " </dev/null"
        except UnicodeDecodeError:
            return None  # a name the remote shell could not be given intact

        async def hashed() -> str | None:
            await self._open_checked(clean, full)
            conn = self._conn
            assert conn is not None
            if self._b3sum is None:
                probe = await conn.run("b3sum </dev/null", check=False)
                self._b3sum = str(probe.stdout or "").startswith(EMPTY_BLAKE3)
                log.info("b3sum on %s: %s", self.options.host, "used" if self._b3sum else "not available")
            if not self._b3sum:
                return None
            result = await conn.run(command, check=False)
            found = _HEX64.match(str(result.stdout or ""))
            if result.exit_status != 0 or found is None:
                log.info("b3sum on %s failed for %s: %s", self.options.host, clean, result.stderr)
                return None
            return found.group(1)

        # The server reads at disk speed; allow for a slow disk (20 MB/s) on top of the usual deadline.
        return self._run(clean, hashed, self.options.timeout + size / 20e6)

    def identity(self) -> dict[str, str]:
        """The host key, the real path of the root, and the filesystem id behind it where the server tells
        (OpenSSH's statvfs extension): another disk mounted there, or none, shows a different id."""

        async def ident() -> dict[str, str]:
            sftp = await self._session()
            out = {"host_key": str(self.host_key), "root": _name(self._real_root)}
            try:
                vfs = await sftp.statvfs(self._real_root)
                out["fsid"] = f"{vfs.fsid:x}"
            except asyncssh.SFTPError:
                pass  # a server without the extension: the key and path must do
            return out

        return self._run("", ident)

    def usage(self) -> tuple[int | None, int | None]:
        async def vfs() -> tuple[int | None, int | None]:
            sftp = await self._session()
            try:
                v = await sftp.statvfs(self._real_root)
            except asyncssh.SFTPError:
                return None, None
            return v.blocks * v.frsize, v.bavail * v.frsize

        return self._run("", vfs)

    def close_and_stat(self, fh: BinaryIO, path: str) -> tuple[int, int]:
        return cast(_SftpFile, fh).close_and_stat()

    def close(self) -> None:
        """Say goodbye to the server, then stop the backend's event loop and its thread (a later use
        starts both again)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
            conn, self._conn, self._sftp, self._connecting = self._conn, None, None, None
        if loop is None:
            return
        if conn is not None:

            async def bye() -> None:
                conn.close()
                await conn.wait_closed()

            future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(bye(), self.options.timeout), loop)
            try:
                future.result(self.options.timeout + 1)
            except (asyncssh.Error, OSError, TimeoutError, cf.TimeoutError):
                loop.call_soon_threadsafe(conn.abort)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(self.options.timeout)
        if not loop.is_running():
            loop.close()


class _SftpFile(ReadOnlyFile):
    """An open remote file: read-only, the offset kept here (every READ names its offset)."""

    def __init__(self, backend: SftpBackend, handle: asyncssh.SFTPClientFile, path: str, size: int) -> None:
        self._backend = backend
        self._handle = handle
        self._path = path
        self._size = size
        self._offset = 0
        self._closed = False

    #: A read to the end goes in pieces of this size, each with its own deadline: the size a server
    #: lists is its word, and must not stretch one request's deadline (or buffer) without bound.
    WHOLE_READ_PIECE = 8 << 20

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while piece := self.read(self.WHOLE_READ_PIECE):
                parts.append(piece)
                if len(piece) < self.WHOLE_READ_PIECE:
                    break
            return b"".join(parts)
        if size == 0:
            return b""
        offset = self._offset

        async def chunk() -> bytes:
            return cast(bytes, await self._handle.read(size, offset))  # binary mode: bytes

        # A large read is many requests in flight: allow for them on a slow link (10 MB/s).
        data = self._backend._run(self._path, chunk, self._backend.options.timeout + size / 10e6)
        self._offset += len(data)
        return data

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

    def close_and_stat(self) -> tuple[int, int]:
        """Close the file, asking the server first for its size and time as they are now (FSTAT)."""

        async def finish() -> asyncssh.SFTPAttrs:
            try:
                return await self._handle.stat()
            finally:
                self._closed = True
                await self._handle.close()

        attrs = self._backend._run(self._path, finish)
        entry = _entry("", attrs)
        return entry.size, entry.mtime_ns

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = self._backend._loop
        if loop is None or loop.is_closed():
            return

        async def shut() -> None:
            # A handle gone with its connection has nothing left to release.
            with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                await asyncio.wait_for(self._handle.close(), self._backend.options.timeout)

        asyncio.run_coroutine_threadsafe(shut(), loop)  # never waits on a hung server


# -- registration -------------------------------------------------------------------------------------------
def _parse(text: str) -> str:
    return SftpOptions.parse(text).display


def _fields(location: str) -> dict[str, str]:
    o = SftpOptions.parse(location)
    return {
        "host": o.host,
        "port": "" if o.port == DEFAULT_PORT else str(o.port),
        "folder": o.path,
        "user": o.username or "",
        "fingerprint": o.fingerprint or "",
    }


def _compose(fields: Mapping[str, str]) -> str:
    host = fields.get("host", "").strip()
    folder = fields.get("folder", "").strip()
    if not host or not folder:
        raise ValueError("an SFTP folder needs a host and the folder's absolute path")
    if not folder.startswith("/"):
        raise ValueError(f"give the folder's absolute path (/home/ana/Videos), not {folder!r}")
    fingerprint = fields.get("fingerprint", "").strip()
    pin = f"?fingerprint={check_fingerprint(fingerprint)}" if fingerprint else ""
    return f"sftp://{authority(fields)}{quote(folder, safe='/')}{pin}"


def _scope(location: str) -> tuple[Any, ...]:
    # The trusted key belongs to the scope: trusting another key needs the password typed again.
    o = SftpOptions.parse(location)
    return (o.host.lower(), o.port, o.username or "", o.fingerprint)


def _extent(location: str) -> tuple[tuple[Any, ...], str]:
    o = SftpOptions.parse(location)
    return (o.host.lower(), o.port), o.path.strip("/")


def _pin(location: str, identity: Mapping[str, str]) -> str:
    """A location trusted on first use keeps the key it was first seen with."""
    o = SftpOptions.parse(location)
    if o.fingerprint is None and identity.get("host_key", "").startswith("SHA256:"):
        return replace(o, fingerprint=identity["host_key"]).display
    return location


def _open(location: str, secret: Mapping[str, Any] | None, _roots: Any) -> Backend:
    return SftpBackend(SftpOptions.parse(location), secret)


register(
    BackendKind(
        name="sftp",
        title="SFTP folder (any SSH server)",
        schemes=("sftp",),
        example="sftp://[user@]host[:port]/absolute/path",
        options=(
            Option("host", "Host", required=True, placeholder="192.168.0.25 or nas.local", row=1),
            Option("port", "Port", placeholder="22", numeric=True, row=1),
            Option("folder", "Folder", required=True, placeholder="/volume1/video", row=2),
            Option("user", "User", row=3),
            Option(
                "password",
                "Password",
                secret=True,
                help="Stored encrypted; never shown again. With a private key: its passphrase, if any.",
                row=3,
            ),
            Option(
                "private_key",
                "Private key",
                secret=True,
                multiline=True,
                help="Paste an OpenSSH private key instead of a password (stored encrypted).",
                row=4,
            ),
            Option(
                "fingerprint",
                "Host key fingerprint",
                placeholder="SHA256:… (empty: trust the key seen first)",
                help="What 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' prints on the server.",
                row=5,
            ),
        ),
        features=FEATURES,
        parse=_parse,
        fields=_fields,
        compose=_compose,
        factory=_open,
        credential_scope=_scope,
        extent=_extent,
        pin=_pin,
    )
)
