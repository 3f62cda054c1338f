"""SFTP sources end to end against the real sshd: register (trusting the host key on first use), scan
with the server hashing large files, rescan, rename; a changed host key is refused; keys and passwords
are never shown."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mediamesh.cli.main import app
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, LocationUnreachable
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings, write
from tests.helpers import rows
from tests.servers.openssh import PASSWORD, SshServer


@pytest.fixture
def folder(sshd: SshServer) -> Path:
    root = sshd.share_dir / uuid.uuid4().hex
    root.mkdir()
    root.chmod(0o755)
    return root


def test_scan_an_sftp_folder(ctx: Context, sshd: SshServer, folder: Path) -> None:
    small = write(folder / "Projects" / "A" / "clip.mov", 300_000)
    large = write(folder / "Projects" / "B" / "take.mxf", 9 << 20)  # hashed by the server's b3sum
    source = source_svc.add_source(ctx, "box", sshd.url(folder.name), password=PASSWORD)
    assert source["kind"] == "sftp" and source["health"]["status"] == "online"
    # Trusted on first use: the key the server showed is now part of the stored location.
    assert source["location"].endswith(f"?fingerprint={sshd.host_key_fingerprint()}")
    assert source["identity"]["host_key"] == sshd.host_key_fingerprint()
    first = run_scan(ctx, "box")
    assert (first["status"], first["files_new"]) == ("completed", 2), first
    ids = b3sum(small, large)
    found = rows(ctx)
    assert found["Projects/A/clip.mov"].media_id == ids[small]
    assert found["Projects/B/take.mxf"].media_id == ids[large]
    # The large file's bytes never crossed the link: only its three samples were read here.
    assert first["bytes_read"] < 300_000 + (9 << 20) // 4, first["bytes_read"]
    again = run_scan(ctx, "box")
    assert (again["files_unchanged"], again["bytes_read"]) == (2, 0)
    os.rename(small, folder / "Projects" / "B" / "clip-renamed.mov")
    moved = run_scan(ctx, "box")
    assert (moved["files_moved"], moved["files_missing"]) == (1, 0)
    assert moved["bytes_read"] <= 3 * 16 * 1024  # recognised by its samples, not read whole
    assert rows(ctx)["Projects/B/clip-renamed.mov"].id == found["Projects/A/clip.mov"].id


def test_a_server_with_another_host_key_is_refused(
    sqlite_ctx: Context, sshd: SshServer, folder: Path
) -> None:
    wrong = "SHA256:" + "B" * 43
    with pytest.raises(LocationUnreachable, match="another machine may be answering"):
        source_svc.add_source(
            sqlite_ctx, "box", f"{sshd.url(folder.name)}?fingerprint={wrong}", password=PASSWORD
        )
    added = source_svc.add_source(
        sqlite_ctx,
        "box",
        f"{sshd.url(folder.name)}?fingerprint={sshd.host_key_fingerprint()}",
        password=PASSWORD,
    )
    assert added["health"]["status"] == "online"
    # Trusting another key is a change of who gets the password: it must be typed again.
    with pytest.raises(InvalidInput, match="type the password again"):
        source_svc.update_source(sqlite_ctx, "box", location=f"{sshd.url(folder.name)}?fingerprint={wrong}")


def test_a_source_registered_offline_trusts_the_key_of_its_first_probe(
    sqlite_ctx: Context, sshd: SshServer, folder: Path
) -> None:
    """--force while the server is down: no key is known; the first probe that reaches it pins one."""
    sshd.pause()  # answers no more: the probe gives up after its connect timeout
    try:
        added = source_svc.add_source(sqlite_ctx, "box", sshd.url(folder.name), password=PASSWORD, force=True)
    finally:
        sshd.resume()
    assert added["health"]["status"] == "offline" and "fingerprint=" not in added["location"]
    checked = source_svc.check_source(sqlite_ctx, "box")
    assert checked["health"]["status"] == "online"
    assert checked["location"].endswith(f"?fingerprint={sshd.host_key_fingerprint()}")


def test_private_key_log_on_and_secrets_never_shown(
    tmp_path: Path, sshd: SshServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(folder / "a.jpg", 5000)
    monkeypatch.setenv("MEDIAMESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIAMESH_SETTLE_SECONDS", "0")
    result = CliRunner().invoke(
        app, ["source", "add", "box", sshd.url(folder.name), "--key-file", str(sshd.client_key), "--scan"]
    )
    assert result.exit_code == 0, result.output
    assert "trusted the server's host key on first use: " + sshd.host_key_fingerprint() in result.output
    listed = CliRunner().invoke(app, ["source", "list", "--json"])
    key_text = sshd.client_key.read_text()
    body = key_text.splitlines()[1]
    assert body not in listed.output and body not in result.output
    ctx = Context(make_settings(tmp_path))
    try:
        assert rows(ctx)["a.jpg"].state == "present"
        with ctx.catalog.read() as conn:
            stored = json.dumps(
                [dict(r._mapping) for r in conn.exec_driver_sql("SELECT secret FROM sources")], default=str
            )
        assert body not in stored
    finally:
        ctx.close()
    missing = CliRunner().invoke(
        app, ["source", "add", "box2", sshd.url(folder.name), "--key-file", "/nope/key"]
    )
    assert missing.exit_code == 2 and "cannot read the key file" in missing.output
    public = CliRunner().invoke(
        app, ["source", "add", "box2", sshd.url(folder.name), "--key-file", f"{sshd.client_key}.pub"]
    )
    assert public.exit_code == 2 and "holds no private key" in public.output


def test_an_smb_source_takes_no_private_key(sqlite_ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="take no private key"):
        source_svc.test_location(sqlite_ctx, "smb://nas.invalid/media", private_key="x")


def test_sources_yaml_keeps_the_key_trusted_on_first_use(
    sqlite_ctx: Context, sshd: SshServer, folder: Path, tmp_path: Path
) -> None:
    """Declared without a fingerprint: the first start trusts the server's key, later starts keep it
    (applying again must not trust whatever key the server shows then)."""
    from mediamesh.services import bootstrap

    declared = tmp_path / "sources.yaml"
    declared.write_text(
        f"sources:\n  - name: box\n    location: {sshd.url(folder.name)}\n"
        f"    private_key_file: {sshd.client_key}\n"
    )
    assert bootstrap.apply(sqlite_ctx, declared) == [{"name": "box", "result": "added"}]
    pinned = source_svc.show_source(sqlite_ctx, "box")["location"]
    assert pinned.endswith(f"?fingerprint={sshd.host_key_fingerprint()}")
    assert bootstrap.apply(sqlite_ctx, declared) == [{"name": "box", "result": "unchanged"}]
    assert source_svc.show_source(sqlite_ctx, "box")["location"] == pinned


def test_a_new_folder_on_the_same_server_keeps_its_trusted_key(
    sqlite_ctx: Context, sshd: SshServer, folder: Path
) -> None:
    (folder / "sub").mkdir()
    (folder / "sub").chmod(0o755)
    source_svc.add_source(sqlite_ctx, "box", sshd.url(folder.name), password=PASSWORD)
    moved = source_svc.update_source(sqlite_ctx, "box", location=sshd.url(f"{folder.name}/sub"))
    assert moved["health"]["status"] == "online"  # the stored password was kept: same server, same key
    assert moved["location"] == f"{sshd.url(folder.name + '/sub')}?fingerprint={sshd.host_key_fingerprint()}"


def test_a_server_cannot_claim_the_id_of_media_other_sources_hold(
    sqlite_ctx: Context, sshd: SshServer, folder: Path, tmp_path: Path
) -> None:
    """A content id hashed on the server is its word: one naming known media is checked by a local read,
    so a lying server cannot make its file a copy of another source's media (and serve it in its place)."""
    known = write(tmp_path / "lib" / "real.mov", 5 << 20)
    source_svc.add_source(sqlite_ctx, "lib", str(tmp_path / "lib"))
    assert run_scan(sqlite_ctx, "lib")["files_new"] == 1
    known_id = b3sum(known)[known]
    fake = write(folder / "fake.mov", 5 << 20)
    sshd.set_b3sum(True, answer=known_id)
    try:
        source_svc.add_source(sqlite_ctx, "box", sshd.url(folder.name), password=PASSWORD)
        summary = run_scan(sqlite_ctx, "box")
    finally:
        sshd.set_b3sum(True)
    assert summary["files_new"] == 1 and summary["bytes_read"] >= 5 << 20, summary  # read here, not taken
    assert rows(sqlite_ctx)["fake.mov"].media_id == b3sum(fake)[fake] != known_id
