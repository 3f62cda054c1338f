"""SMB sources end to end against the real smbd: register with a password, scan, rescan, rename;
the password is never shown and never stored in plain text."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediamesh.cli.main import app
from mediamesh.config import Settings
from mediamesh.context import Context
from mediamesh.errors import ConfigurationError, SourceUnavailable
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings, write
from tests.helpers import rows
from tests.servers.samba import PASSWORD, SambaServer


@pytest.fixture
def share(samba: SambaServer) -> Path:
    root = samba.share_dir / uuid.uuid4().hex
    root.mkdir()
    return root


def test_scan_an_smb_share(ctx: Context, samba: SambaServer, share: Path) -> None:
    a = write(share / "Projects" / "A" / "clip.mov", 300_000)
    b = write(share / "Projects" / "B" / "photo.CR3", 20 * 1024 * 1024)  # larger than one SMB READ
    write(share / "@eaDir" / "x.jpg", 10)
    source = source_svc.add_source(ctx, "nas", samba.url(share.name), password=PASSWORD)
    assert source["kind"] == "smb" and source["health"]["status"] == "online"
    assert source["identity"]["share"] == "media"
    first = run_scan(ctx, "nas")
    assert (first["status"], first["files_new"]) == ("completed", 2), {
        k: first[k] for k in ("files_seen", "files_deferred", "errors", "error")
    }
    found = rows(ctx)
    ids = b3sum(a, b)
    assert found["Projects/A/clip.mov"].media_id == ids[a]
    assert found["Projects/B/photo.CR3"].media_id == ids[b]
    again = run_scan(ctx, "nas")
    assert (again["files_unchanged"], again["bytes_read"]) == (2, 0)
    os.rename(a, share / "Projects" / "B" / "clip-renamed.mov")
    moved = run_scan(ctx, "nas")
    assert (moved["files_moved"], moved["bytes_read"], moved["files_missing"]) == (1, 0, 0)
    assert rows(ctx)["Projects/B/clip-renamed.mov"].id == found["Projects/A/clip.mov"].id


def test_password_is_never_shown_nor_stored_in_clear(
    sqlite_ctx: Context, samba: SambaServer, share: Path
) -> None:
    source_svc.add_source(sqlite_ctx, "nas", samba.url(share.name), password=PASSWORD)
    shown = json.dumps(source_svc.list_sources(sqlite_ctx)) + json.dumps(
        source_svc.show_source(sqlite_ctx, "nas")
    )
    assert PASSWORD not in shown and "secret" not in shown
    catalog = (sqlite_ctx.settings.data_dir / "catalog.db").read_bytes()
    wal = sqlite_ctx.settings.data_dir / "catalog.db-wal"
    stored = catalog + (wal.read_bytes() if wal.exists() else b"")
    assert PASSWORD.encode() not in stored and PASSWORD.encode("utf-16-le") not in stored
    key = sqlite_ctx.settings.data_dir / "secret.key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_wrong_key_is_a_clear_error(tmp_path: Path, samba: SambaServer, share: Path) -> None:
    ctx = Context(make_settings(tmp_path, secret_key="the right one"))
    try:
        source_svc.add_source(ctx, "nas", samba.url(share.name), password=PASSWORD)
    finally:
        ctx.close()
    other = Context(make_settings(tmp_path, secret_key="another one"))
    try:
        with pytest.raises(ConfigurationError, match="cannot be decrypted"):
            run_scan(other, "nas")
    finally:
        other.close()


def test_registration_names_the_cause(sqlite_ctx: Context, samba: SambaServer, share: Path) -> None:
    with pytest.raises(SourceUnavailable, match="password"):
        source_svc.add_source(sqlite_ctx, "nas", samba.url(share.name), password="wrong")
    with pytest.raises(SourceUnavailable, match="no such share"):
        source_svc.add_source(
            sqlite_ctx, "nas", f"smb://mmtest@127.0.0.1:{samba.port}/nope", password=PASSWORD
        )
    with pytest.raises(SourceUnavailable, match="no folder"):
        source_svc.add_source(sqlite_ctx, "nas", samba.url("not-there"), password=PASSWORD)
    assert source_svc.list_sources(sqlite_ctx) == []


def test_cli_password_stdin(
    tmp_path: Path, samba: SambaServer, share: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAMESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIAMESH_SETTLE_SECONDS", "0")
    write(share / "a.jpg", 500)
    runner = CliRunner()
    added = runner.invoke(
        app,
        ["source", "add", "nas", samba.url(share.name), "--password-stdin", "--json"],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.stderr
    assert PASSWORD not in added.stdout
    scanned = runner.invoke(app, ["scan", "nas", "--json"])
    assert json.loads(scanned.stdout)["files_new"] == 1
    local = runner.invoke(app, ["source", "add", "disk", str(tmp_path), "--password-stdin"], input="x\n")
    assert local.exit_code == 2 and "take no password" in local.stderr
    assert Settings().data_dir == tmp_path / "data"


def test_a_different_volume_behind_the_share_is_refused(
    ctx: Context, samba: SambaServer, share: Path
) -> None:
    from sqlalchemy import update

    from mediamesh.catalog.schema import sources

    write(share / "a.jpg", 500)
    registered = source_svc.add_source(ctx, "nas", samba.url(share.name), password=PASSWORD)
    run_scan(ctx, "nas")
    other = {**registered["identity"], "volume_serial": "00c0ffee", "volume_label": "another-nas"}
    with ctx.catalog.write() as conn:  # as if registered against another NAS that now answers at this address
        conn.execute(update(sources).where(sources.c.name == "nas").values(identity=other))
    (share / "a.jpg").unlink()
    summary = run_scan(ctx, "nas")
    assert summary["status"] == "failed" and "different filesystem" in summary["error"]
    assert "volume_serial" in summary["error"]
    assert rows(ctx)["a.jpg"].state == "present"
    assert source_svc.check_source(ctx, "nas")["health"]["status"] == "degraded"
