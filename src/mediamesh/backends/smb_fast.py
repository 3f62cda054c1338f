"""Bulk reads of SMB files through Samba's own client library (libsmbclient, via pysmbc).

smbprotocol is pure Python: a fine client for listings and metadata, but it reads at a quarter of
``smbclient``'s speed. libsmbclient reads as fast as Samba's tools. It is optional (the ``smb-fast``
extra, which builds against Debian's ``libsmbclient-dev``). Without it, every read goes through smbprotocol.
Only large files are read here; listing, stat, identity and small files stay with smbprotocol.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Any
from urllib.parse import quote

from mediamesh.backends.base import (
    BackendError,
    NotFoundError,
    PermissionDeniedError,
    UnreachableError,
)

try:
    import smbc
except ImportError:  # the smb-fast extra is not installed
    smbc = None

AVAILABLE = smbc is not None

#: Our client settings, so that libsmbclient's connections hold to what smbprotocol's do: signed, SMB2 or
#: newer. libsmbclient takes no configuration file as an argument: it reads ``$HOME/.smb/smb.conf`` (else the
#: system's smb.conf) each time a context is set up (checked: a setting there changes what the next
#: context does, and does nothing once HOME is back). So every context is made with HOME pointing, for that
#: moment, at a private folder holding this file.
CLIENT_CONF = """[global]
client signing = required
client ipc signing = required
client min protocol = SMB2_02
"""
_context_lock = threading.Lock()
_home: str | None = None  # the private folder with .smb/smb.conf, made once per process


def _new_context(auth: Any) -> Any:
    """A libsmbclient context set up from CLIENT_CONF (see above). HOME changes only for the instant the
    context is made, under a lock; contexts are made once per thread and reader."""
    global _home  # noqa: PLW0603 - one private folder per process, as libsmbclient's own state is
    assert smbc is not None
    with _context_lock:
        if _home is None:
            home = tempfile.mkdtemp(prefix="mediamesh-smbc-")
            os.makedirs(os.path.join(home, ".smb"), mode=0o700)
            with open(os.path.join(home, ".smb", "smb.conf"), "w") as fh:
                fh.write(CLIENT_CONF)
            _home = home
        before = os.environ.get("HOME")
        os.environ["HOME"] = _home
        try:
            return smbc.Context(auth_fn=auth)
        finally:
            if before is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = before


def _translate(exc: BaseException, path: str) -> BackendError:
    if smbc is not None:
        if isinstance(exc, smbc.NoEntryError):
            return NotFoundError(f"no such file: {path}", path)
        if isinstance(exc, smbc.PermissionError):
            return PermissionDeniedError(f"permission denied: {path}", path)
        if isinstance(exc, smbc.TimedOutError | smbc.ConnectionRefusedError):
            return UnreachableError("no SMB server answered", path)
    return UnreachableError(f"SMB read failed: {exc}", path)


class LibSmbReader:
    """Opens files for reading with libsmbclient; one client context per thread (they are not shared)."""

    def __init__(
        self, host: str, port: int, share: str, username: str | None, password: str | None, timeout: float
    ):
        self._base = f"smb://{f'[{host}]' if ':' in host else host}:{port}/{quote(share)}"
        self._username = username or ""
        self._password = password or ""
        self._timeout_ms = int(timeout * 1000)
        self._local = threading.local()

    def _context(self) -> Any:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            ctx = _new_context(lambda *_: ("WORKGROUP", self._username, self._password))
            ctx.timeout = self._timeout_ms
            ctx.optionNoAutoAnonymousLogin = True
            self._local.ctx = ctx
        return ctx

    def open(self, share_path: str, size: int) -> LibSmbFile:
        """``share_path`` is relative to the share, ``/``-separated and already checked; ``size`` is the
        file's size as the server just reported it."""
        try:
            handle = self._context().open(f"{self._base}/{quote(share_path)}")
        except Exception as exc:  # pysmbc raises its own errors, RuntimeError and ValueError
            raise _translate(exc, share_path) from exc
        return LibSmbFile(handle, share_path, size)


#: The largest single read asked of libsmbclient (it allocates the whole buffer up front).
MAX_READ = 8 << 20


class LibSmbFile:
    """Never reads past the end: pysmbc fails a read at the end of a file (EINVAL), and the handle is not
    safe to use after that."""

    def __init__(self, handle: Any, path: str, size: int) -> None:
        self._handle = handle
        self._path = path
        self._size = size
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        left = self._size - self._pos
        want = left if size < 0 else min(size, left)
        if want <= 0:
            return b""
        try:
            data = bytes(self._handle.read(min(want, MAX_READ)))
        except Exception as exc:
            raise _translate(exc, self._path) from exc
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        target = {0: offset, 1: self._pos + offset, 2: self._size + offset}[whence]
        if target < 0:
            raise ValueError("negative seek position")
        try:
            self._handle.seek(min(target, self._size), 0)
        except Exception as exc:
            raise _translate(exc, self._path) from exc
        self._pos = target
        return target

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._handle.close()
