"""How the CLI speaks: one JSON document with ``--json``, tables and one-line errors otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mediamesh.config import Settings
from mediamesh.context import Context, create_context
from mediamesh.errors import MediameshError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def exit_code_for(error: MediameshError) -> int:
    """2 for bad input (unknown names, invalid values, conflicts), 1 when an operation could not be done."""
    return 2 if 400 <= error.status < 500 else 1


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    else:
        render(data)


@contextmanager
def context(worker_name: str | None = None) -> Iterator[Context]:
    """Open the catalog for one command; turns user-facing errors into a message and an exit code."""
    ctx: Context | None = None
    try:
        ctx = create_context(Settings(), worker_name=worker_name)
        yield ctx
    except MediameshError as exc:
        raise fail(exc.message, exit_code_for(exc)) from None
    except ValueError as exc:  # settings that do not validate
        raise fail(str(exc).splitlines()[0] if str(exc) else repr(exc), 2) from None
    finally:
        if ctx is not None:
            ctx.close()


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
