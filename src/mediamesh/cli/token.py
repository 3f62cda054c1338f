"""``mediamesh token create|list|revoke``: works without the server running."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, out
from mediamesh.services import tokens as svc

app = typer.Typer(rich_markup_mode=None, help="API tokens (read < write < admin).", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="What the token is for."),
    scope: str = typer.Option(..., "--scope", help="read, write or admin."),
    sources: list[str] = typer.Option(
        [], "--source", help="Limit a read token to this source (repeat for more); it then opens WebDAV only."
    ),
    projects: list[str] = typer.Option(
        [],
        "--project",
        help="Limit a read token to this project (repeat for more); it then opens WebDAV only.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a token. It is shown once, as the last line of the output; only its hash is kept.

    A read token limited with --source or --project opens only the WebDAV view (/dav/), where it sees
    only those sources and projects: one for a TV or a guest's laptop."""
    with context() as ctx:
        token, value = svc.create_token(ctx, name, scope, source_names=sources, project_names=projects)

    def render(_: Any) -> None:
        limited = f", limited to {svc.describe_limits(token)}" if token["limits"] else ""
        out.print(
            f"created {token['scope']} token {token['id']} ({escape(token['name'])}{escape(limited)}); "
            "keep it, it is not shown again:"
        )
        print(value)

    emit({**token, "token": value}, as_json, render)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Every token (never its value)."""
    with context() as ctx:
        data = svc.list_tokens(ctx)

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("id", "name", "scope", "sees", "starts with", "last used", "revoked")
        for t in rows:
            table.add_row(
                str(t["id"]),
                escape(t["name"]),
                t["scope"],
                escape(svc.describe_limits(t)) if t["limits"] else "everything",
                t["prefix"],
                t["last_used_at"] or "-",
                "yes" if t["revoked"] else "",
            )
        out.print(table)

    emit(data, as_json, render)


@app.command("revoke")
def revoke(token_id: int, as_json: bool = JsonOption) -> None:
    """Revoke a token: it stops working at once."""
    with context() as ctx:
        data = svc.revoke_token(ctx, token_id)
    emit(data, as_json, lambda d: out.print(f"revoked token {d['id']} ({escape(d['name'])})"))
