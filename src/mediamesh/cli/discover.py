"""``mediamesh discover``: NAS, PCs and their shares on this network (see services/discovery.py)."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, out
from mediamesh.services import discovery as svc


def discover(
    host: str | None = typer.Option(
        None, "--host", help="Ask this host (name or address) for its shares instead of listening."
    ),
    seconds: float = typer.Option(svc.SECONDS, "--seconds", help="How long to listen for announcements."),
    user: str | None = typer.Option(None, "--user", help="List the SMB shares as this user (with --host)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read that user's password from stdin."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Hosts that announce themselves (mDNS, WS-Discovery) and the SMB shares and NFS exports they offer.

    Only listens, and asks only the hosts that answered (or the one given with --host): no address range
    is scanned. Off with MEDIAMESH_DISCOVERY=off. Then add one with 'mediamesh source add NAME LOCATION'."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with context() as ctx:
        found = svc.Discovery(ctx).find(host, seconds, user, password)

    def render(data: dict[str, Any]) -> None:
        if not data["hosts"]:
            out.print(data["hint"] or "no answer from that host")
            return
        table = Table("host", "address", "offers", "location", "registered as")
        for h in data["hosts"]:
            label = ", ".join(h["names"]) or "-"
            if h["model"]:
                label += f" ({h['model']})"
            offers = h["offers"] or [{"kind": "-", "name": "; ".join(h["errors"]) or "nothing listed"}]
            for i, o in enumerate(offers):
                table.add_row(
                    escape(label) if i == 0 else "",
                    h["address"] if i == 0 else "",
                    escape(f"{o['kind']} {o['name']}"),
                    escape(o.get("location", "")),
                    escape(o.get("registered") or ""),
                )
        out.print(table)

    emit(found, as_json, render)
