"""What a host offers, asked of that host only: its SMB shares (NetShareEnumAll, through libsmbclient:
smbprotocol has no share listing) and its NFS exports (the MOUNT protocol's EXPORT call, through nfs-rs).
Each question has a deadline; a host that does not answer in time is left with no list, never waited on.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class ListingError(Exception):
    """A host could not be asked (refused, timed out, needs a password, or no client library here)."""


@dataclass(frozen=True)
class Share:
    name: str
    comment: str = ""


def bounded(fn: Callable[[], T], seconds: float, what: str) -> T:
    """``fn()`` on a thread of its own, waited for at most ``seconds`` (a client library that hangs is left
    behind on its daemon thread; the caller goes on)."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(("ok", fn()))
        except Exception as exc:  # handed to the caller below
            result.append(("error", exc))

    worker = threading.Thread(target=run, name=f"mediamesh-discovery-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if not result:
        raise ListingError(f"{what}: no answer within {seconds:.0f} s")
    kind, value = result[0]
    if kind == "error":
        raise ListingError(f"{what}: {value}") from value
    return value  # type: ignore[no-any-return]


def smb_shares(
    host: str, port: int = 445, user: str | None = None, password: str | None = None, seconds: float = 5.0
) -> list[Share]:
    """The disk shares of an SMB server (not IPC$, printers or hidden admin shares ending in $)."""
    if importlib.util.find_spec("smbc") is None:
        raise ListingError("listing SMB shares needs libsmbclient (pysmbc, the smb-fast extra)")
    import smbc

    def auth(server: str, share: str, workgroup: str, username: str, pw: str) -> tuple[str, str, str]:
        return (workgroup, user or "", password or "")

    def listing() -> list[Share]:
        ctx = smbc.Context(auth_fn=auth)
        ctx.timeout = int(seconds * 1000)
        if not user:
            ctx.optionNoAutoAnonymousLogin = False
        address = f"[{host}]" if ":" in host else host
        entries = ctx.opendir(f"smb://{address}:{port}/" if port != 445 else f"smb://{address}/").getdents()
        return sorted(
            (
                Share(e.name, e.comment or "")
                for e in entries
                if e.smbc_type == smbc.FILE_SHARE and not e.name.endswith("$")
            ),
            key=lambda s: s.name.lower(),
        )

    return bounded(listing, seconds, f"SMB shares of {host}")


def nfs_exports(host: str, seconds: float = 5.0) -> list[str]:
    """The export paths an NFS server lists (MOUNT EXPORT, found through its portmapper)."""
    if importlib.util.find_spec("nfs_rs") is None:
        raise ListingError("listing NFS exports needs nfs-rs, built for Linux x86_64 only")
    import nfs_rs

    def listing() -> list[str]:
        entries = nfs_rs.list_exports(host, connect_timeout=seconds, operation_timeout=seconds)
        return sorted({e.path for e in entries if e.path.startswith("/")})

    return bounded(listing, seconds + 1, f"NFS exports of {host}")
