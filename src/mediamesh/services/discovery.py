"""Discovery for the add-source page, the API and ``mediamesh discover``: listen for hosts that announce
themselves (mDNS and WS-Discovery at once, for a few seconds), or take the host the user typed, then ask
each host for its SMB shares and NFS exports, and say which are registered already.

Off when ``MEDIAMESH_DISCOVERY=off``. Only listens, and asks only hosts that announced themselves or were
typed: no address range is ever swept. Results are kept a minute (a page that is opened again does not
browse again); a listing with a password is never kept.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from zeroconf import Error as ZeroconfError

from mediamesh.catalog.schema import sources
from mediamesh.catalog.times import iso, now_utc
from mediamesh.context import Context
from mediamesh.discovery import Announced, mdns, shares, wsd
from mediamesh.errors import Forbidden, InvalidInput

#: How long a browse listens, by default and at most.
SECONDS = 3.0
MAX_SECONDS = 15.0
#: How long one host may take to list its shares (each of SMB and NFS).
LIST_SECONDS = 5.0
TTL = 60.0
log = logging.getLogger(__name__)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]{2,45}\]?")
NOT_FOUND_HINT = (
    "Nothing announced itself. In Docker, a bridge network carries no multicast: run the container with "
    "network_mode: host, or type the NAS's address."
)


def _valid_host(text: str) -> str:
    host = text.strip()
    if not _HOST.fullmatch(host):
        raise InvalidInput(f"{text!r} is not a host name or address (give it without smb:// or a path)")
    return host.strip("[]")


def _typed(host: str) -> Announced:
    """A host the user typed, by its address: a name is resolved here (DNS, hosts file), so that the SMB
    client never falls back to NetBIOS broadcasts to find it."""
    try:
        ipaddress.ip_address(host)
        return Announced(host, via={"typed"})
    except ValueError:
        pass
    try:
        address = str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(f"{host!r} cannot be resolved to an address ({exc})") from None
    return Announced(address, names={host}, via={"typed"})


def _registered(ctx: Context) -> list[tuple[str, str, str]]:
    """(scheme, host, path) of every registered source's location, lower-cased, to match shares against."""
    with ctx.catalog.read() as conn:
        locations = conn.execute(select(sources.c.name, sources.c.location)).all()
    out = []
    for name, location in locations:
        parts = urlsplit(location)
        if parts.hostname:
            out.append((name, parts.scheme, f"{parts.hostname.lower()}|{parts.path.rstrip('/').lower()}"))
    return out


def _registered_as(known: list[tuple[str, str, str]], scheme: str, hosts: set[str], path: str) -> str | None:
    """The source already registered for this share (by the host's address or a name it announced)."""
    wanted = path.rstrip("/").lower()
    for name, known_scheme, key in known:
        known_host, _, known_path = key.partition("|")
        if (
            known_scheme == scheme
            and known_host in hosts
            and (known_path == wanted or known_path.startswith(wanted + "/"))
        ):
            return str(name)
    return None


def _with_registered(result: dict[str, Any], known: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A copy of a (maybe kept) answer, each offer saying which source it is registered as now."""
    hosts = []
    for host in result["hosts"]:
        spellings = {host["address"].lower(), *(n.lower() for n in host["names"])}
        spellings |= {f"{n}.local" for n in spellings}
        offers = [
            {**o, "registered": _registered_as(known, urlsplit(o["location"]).scheme, spellings, o["path"])}
            for o in host["offers"]
        ]
        hosts.append({**host, "offers": offers})
    return {**result, "hosts": hosts}


def _location_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _offers(host: Announced, user: str | None, password: str | None) -> dict[str, Any]:
    """What one host offers: its shares and exports as ready-made locations and form fields."""
    offered: list[dict[str, Any]] = []
    errors: list[str] = []
    at = _location_host(host.address)
    if "smb" in host.services or "typed" in host.via:
        port = host.services.get("smb", 445)
        try:
            for share in shares.smb_shares(host.address, port, user, password, LIST_SECONDS):
                fields = {
                    "host": host.address,
                    "share": share.name,
                    **({"port": str(port)} if port != 445 else {}),
                }
                offered.append(
                    {
                        "kind": "smb",
                        "name": share.name,
                        "comment": share.comment,
                        "location": f"smb://{at}{'' if port == 445 else f':{port}'}/{share.name}",
                        "fields": fields,
                        "path": "/" + share.name,
                    }
                )
        except shares.ListingError as exc:
            errors.append(str(exc))
    if "nfs" in host.services or "typed" in host.via:
        try:
            for export in shares.nfs_exports(host.address, LIST_SECONDS):
                offered.append(
                    {
                        "kind": "nfs",
                        "name": export,
                        "comment": "",
                        "location": f"nfs://{at}{export}",
                        "fields": {"host": host.address, "export": export},
                        "path": export,
                    }
                )
        except shares.ListingError as exc:
            errors.append(str(exc))
    if "sftp" in host.services:
        port = host.services["sftp"]
        offered.append(
            {
                "kind": "sftp",
                "name": "SSH (SFTP)",
                "comment": "log in to choose a folder",
                "location": f"sftp://{at}{'' if port == 22 else f':{port}'}/",
                "fields": {"host": host.address, **({"port": str(port)} if port != 22 else {})},
                "path": "",
            }
        )
    if "typed" in host.via and offered:
        errors = []  # a typed host need not speak both: what it does not speak is no error then
    return {
        "address": host.address,
        "names": sorted(host.names),
        "model": host.model,
        "via": sorted(host.via),
        "offers": offered,
        "errors": errors,
    }


class Discovery:
    """Browses and lists on demand; owned by the app (its cache) or made for one CLI call."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._kept: dict[tuple[str | None, float], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def find(
        self,
        host: str | None = None,
        seconds: float = SECONDS,
        user: str | None = None,
        password: str | None = None,
        fresh: bool = False,
    ) -> dict[str, Any]:
        """Hosts and what they offer: those that announce themselves within ``seconds``, or ``host`` only
        (kept a minute, unless ``fresh``)."""
        if self.ctx.settings.discovery == "off":
            raise Forbidden("discovery is off on this server (MEDIAMESH_DISCOVERY=off): type the location")
        if not 0.5 <= seconds <= MAX_SECONDS:
            raise InvalidInput(f"seconds must be between 0.5 and {MAX_SECONDS:.0f}")
        typed = _valid_host(host) if host is not None else None
        if typed is None and (user is not None or password is not None):
            raise InvalidInput("a user and password are for one host: name it (--host, host)")
        key = (typed, seconds)
        keep = user is None and password is None  # what one user is shown is never kept for the next
        if keep and not fresh:
            with self._lock:
                kept = self._kept.get(key)
            if kept is not None and time.monotonic() - kept[0] < TTL:
                return _with_registered(kept[1], _registered(self.ctx))
        problems: list[str] = []
        if typed is not None:
            heard = [_typed(typed)]
        else:
            with ThreadPoolExecutor(2, thread_name_prefix="mediamesh-discovery") as pool:
                heard_mdns = pool.submit(_listening, "mDNS", mdns.browse, seconds, problems)
                heard_wsd = pool.submit(_listening, "WS-Discovery", wsd.probe, seconds, problems)
                heard = _merge(heard_mdns.result(), heard_wsd.result())
        with ThreadPoolExecutor(8, thread_name_prefix="mediamesh-discovery") as pool:
            hosts = list(pool.map(lambda h: _offers(h, user, password), heard))
        hosts.sort(key=lambda h: (not h["offers"], (h["names"] or [h["address"]])[0].lower()))
        result = {
            "hosts": hosts,
            "host": typed,
            "seconds": seconds,
            "at": iso(now_utc()),
            "hint": NOT_FOUND_HINT if not hosts and typed is None else None,
            "problems": problems,
        }
        if keep:
            with self._lock:
                self._kept[key] = (time.monotonic(), result)
        return _with_registered(result, _registered(self.ctx))


def _listening(
    what: str, listen: Callable[[float], list[Announced]], seconds: float, problems: list[str]
) -> list[Announced]:
    """One way of listening; a network that does not allow it (no multicast route, no interface) is
    said, and the other way still answers."""
    try:
        return listen(seconds)
    except (OSError, RuntimeError, ZeroconfError) as exc:
        log.warning("discovery: %s could not listen: %s", what, exc)
        problems.append(f"{what} could not listen on this network: {exc}")
        return []


def _merge(*groups: list[Announced]) -> list[Announced]:
    """One entry per address, whatever announced it."""
    merged: dict[str, Announced] = {}
    for group in groups:
        for host in group:
            into = merged.setdefault(host.address, Announced(host.address))
            into.names |= host.names
            into.via |= host.via
            into.model = into.model or host.model
            for kind, port in host.services.items():
                into.services.setdefault(kind, port)
    return list(merged.values())
