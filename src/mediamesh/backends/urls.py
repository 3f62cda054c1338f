"""What the network kinds' locations have in common: ``scheme://[user@]host[:port]/path``.

One place for the port, the host as shown (IPv6 in brackets) and the form's host and port fields, so that
every kind refuses the same bad input with the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import SplitResult, quote


def port_of(parts: SplitResult, default: int, url: str) -> int:
    try:
        return parts.port or default
    except ValueError as exc:
        raise ValueError(f"invalid port in {url!r}") from exc


def shown_host(host: str) -> str:
    """A host as it appears in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def authority(fields: Mapping[str, str], user: bool = True) -> str:
    """``[user@]host[:port]`` from a form's fields, refusing anything that would reshape the URL."""
    host = fields.get("host", "").strip()
    if any(c in host for c in "/@?#"):  # a host name or an address
        raise ValueError(f"invalid host {host!r}")
    port = fields.get("port", "").strip()
    if port and not port.isdecimal():
        raise ValueError(f"invalid port {port!r}")
    name = fields.get("user", "").strip() if user else ""
    at = f"{quote(name, safe='')}@" if name else ""
    return f"{at}{shown_host(host)}{':' + port if port else ''}"
