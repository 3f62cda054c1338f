"""Finding 1: a write token must not become admin by indexing the data dir (or any folder outside the
allowed roots). Local sources only below MEDIAMESH_LOCAL_ROOTS, never the data dir, a folder holding it
or a system folder; checked again on every open; keys, tokens and the catalog kept private on disk."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mediamesh.config import Settings
from mediamesh.context import Context
from mediamesh.server import create_app
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services.scans import run_scan
from tests.conftest import make_settings, write

LOCAL = ("127.0.0.1", 40000)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[TestClient, Context]]:
    app = create_app(make_settings(tmp_path / "srv", local_roots=str(tmp_path)))
    with TestClient(app, client=LOCAL) as client:
        yield client, app.state.ctx


def bearer(ctx: Context, scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_svc.create_token(ctx, scope, scope)[1]}"}


def test_the_data_dir_exploit_is_refused(server: tuple[TestClient, Context], tmp_path: Path) -> None:
    client, ctx = server
    data = ctx.settings.data_dir
    auth = bearer(ctx, "write")
    for location in (str(data), str(data.parent), str(tmp_path / "srv"), "/", "/etc", f"file://{data}"):
        response = client.post(
            "/api/v1/sources", json={"name": "steal", "location": location, "include": ["*"]}, headers=auth
        )
        assert response.status_code == 403, (location, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    # Test connection is refused the same way: it must not tell what a forbidden folder holds.
    tested = client.post("/api/v1/sources/test", json={"location": str(data)}, headers=auth)
    assert tested.status_code == 403
    assert client.get("/api/v1/sources", headers=auth).json()["count"] == 0


def test_outside_the_roots_and_system_folders(tmp_path: Path) -> None:
    ctx = Context(make_settings(tmp_path / "srv", local_roots=str(tmp_path / "media")))
    (tmp_path / "media" / "ok").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    try:
        assert source_svc.add_source(ctx, "ok", str(tmp_path / "media" / "ok"))["name"] == "ok"
        with pytest.raises(Exception, match="outside the folders local sources may use"):
            source_svc.add_source(ctx, "no", str(tmp_path / "elsewhere"))
        # A symbolic link inside the roots that leads out of them is judged by where it leads.
        (tmp_path / "media" / "link").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(Exception, match="outside the folders"):
            source_svc.add_source(ctx, "link", str(tmp_path / "media" / "link"))
        for system in ("/proc", "/etc/ssl", "/usr/share"):
            with pytest.raises(Exception, match="system folder"):
                source_svc.add_source(ctx, "sys", system, force=True)
    finally:
        ctx.close()


def test_default_roots_are_media_folders_not_the_home(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", local_roots="")
    home = Path.home()
    assert home / "Pictures" in settings.local_root_paths and Path("/mnt") in settings.local_root_paths
    assert home not in settings.local_root_paths  # ~/.ssh, ~/.config: never reachable by default


def test_a_root_swapped_for_a_link_is_refused_on_open(tmp_path: Path) -> None:
    """Registered while it was a folder; later replaced by a link to the data dir: nothing is read."""
    library = tmp_path / "lib"
    write(library / "a.mp4", b"a video")
    ctx = Context(make_settings(tmp_path / "srv", local_roots=str(tmp_path)))
    try:
        source_svc.add_source(ctx, "lib", str(library))
        assert run_scan(ctx, "lib")["files_new"] == 1
        library.rename(tmp_path / "lib-old")
        library.symlink_to(ctx.settings.data_dir)
        checked = source_svc.check_source(ctx, "lib")
        assert checked["health"]["status"] == "offline"
        assert "mediamesh's own data" in checked["health"]["error"]
        scan = run_scan(ctx, "lib")
        assert scan["files_new"] == 0 and scan["files_missing"] == 0  # nothing read, nothing lost
    finally:
        ctx.close()


def test_pointing_a_local_source_elsewhere_needs_admin(
    server: tuple[TestClient, Context], tmp_path: Path
) -> None:
    client, ctx = server
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_auth, admin = bearer(ctx, "write"), bearer(ctx, "admin")
    assert client.post(
        "/api/v1/sources", json={"name": "a", "location": str(tmp_path / "a")}, headers=write_auth
    )
    moved = client.patch("/api/v1/sources/a", json={"location": str(tmp_path / "b")}, headers=write_auth)
    assert moved.status_code == 403 and "admin" in moved.json()["error"]["message"]
    assert (
        client.patch("/api/v1/sources/a", json={"exclude": ["x/**"]}, headers=write_auth).status_code == 200
    )
    again = client.patch("/api/v1/sources/a", json={"location": str(tmp_path / "b")}, headers=admin)
    assert again.status_code == 200 and again.json()["location"] == str(tmp_path / "b")
    into_data = client.patch(
        "/api/v1/sources/a", json={"location": str(ctx.settings.data_dir)}, headers=admin
    )
    assert into_data.status_code == 403  # not even an admin token reaches the keys through a source


def test_keys_and_tokens_are_private_on_disk(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ctx = Context(make_settings(tmp_path))
    try:
        value = token_svc.ensure_admin_token(ctx)
        from mediamesh.crypto import SecretBox

        SecretBox.from_settings(ctx.settings).seal({"password": "x"})  # makes secret.key
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in ("secret.key", "signing.key", "admin-token", "catalog.db"):
            assert stat.S_IMODE((data / name).stat().st_mode) & 0o077 == 0, name
        # The signing key is not the credential key, nor derived from it.
        assert (data / "signing.key").read_bytes() != (data / "secret.key").read_bytes()
        assert value is not None and token_svc.verify(ctx, value) is not None
        assert not (data / "admin-token").exists()  # gone at the first use
    finally:
        ctx.close()


def test_key_and_token_files_never_follow_a_planted_link(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    target = tmp_path / "planted"
    (data / "admin-token").symlink_to(target)
    (data / "signing.key").symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(Exception, match="cannot read the key file"):
        Context(make_settings(tmp_path))
    (data / "signing.key").unlink()
    ctx = Context(make_settings(tmp_path))
    try:
        value = token_svc.ensure_admin_token(ctx)
        assert not target.exists()  # the link was replaced, not written through
        saved = data / "admin-token"
        assert not saved.is_symlink() and saved.read_text().strip() == value
    finally:
        ctx.close()


def test_a_forged_session_needs_the_signing_key_not_the_credential_key(tmp_path: Path) -> None:
    """Knowing secret.key (the old way to forge a cookie) no longer signs anything the server accepts."""
    import base64
    import hashlib
    import hmac

    from mediamesh.web import session

    ctx = Context(make_settings(tmp_path))
    try:
        token_svc.create_token(ctx, "a", "admin")
        from mediamesh.crypto import SecretBox

        SecretBox.from_settings(ctx.settings).seal({})
        key = (ctx.settings.data_dir / "secret.key").read_bytes().strip()
        old_signing = hashlib.sha256(b"mediamesh signed links\0" + key).digest()
        forged = session.Session(1, 2**40, "nonce")
        mac = hmac.new(old_signing, forged.message().encode(), hashlib.sha256).digest()
        cookie = f"1.{2**40}.nonce.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        assert session.parse_cookie(ctx, cookie) is None
        assert session.parse_cookie(ctx, session.new_cookie(ctx, 1)) is not None
    finally:
        ctx.close()


def test_the_cli_applies_the_same_roots(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "MEDIAMESH_DATA_DIR": str(tmp_path / "data"), "MEDIAMESH_LOCAL_ROOTS": "/mnt"}
    (tmp_path / "media").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "mediamesh", "source", "add", "m", str(tmp_path / "media")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "MEDIAMESH_LOCAL_ROOTS" in result.stderr
    assert "Traceback" not in result.stderr
