"""Every setting and every CLI command is documented (a test that fails when one is added silently)."""

from __future__ import annotations

from pathlib import Path

import typer

from mediamesh.cli.main import app
from mediamesh.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [
        f"MEDIAMESH_{name.upper()}"
        for name in Settings.model_fields
        if f"MEDIAMESH_{name.upper()}" not in text
    ]
    assert missing == []


def _commands(group: typer.Typer, prefix: str = "mediamesh") -> list[str]:
    names = [
        f"{prefix} {c.name or (c.callback.__name__ if c.callback else '')}" for c in group.registered_commands
    ]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        names += _commands(sub.typer_instance, f"{prefix} {sub.name}")
    return names


def test_every_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    commands = _commands(app)
    assert "mediamesh source add" in commands and "mediamesh scan" in commands
    assert [c for c in commands if f"`{c}" not in text] == []
