"""NFS sources end to end against the real nfs-ganesha: register, scan, rescan, rename (a move costs no
read: NFS file ids), content through the API with Range; an export that asks for privileged ports is
refused with what to change."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from mediamesh.context import Context
from mediamesh.errors import LocationUnreachable
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, write
from tests.helpers import rows
from tests.servers.ganesha import GaneshaServer


@pytest.fixture
def export(ganesha: GaneshaServer) -> Path:
    root = ganesha.share_dir / uuid.uuid4().hex
    root.mkdir()
    return root


def test_scan_an_nfs_export(ctx: Context, ganesha: GaneshaServer, export: Path) -> None:
    small = write(export / "Projects" / "A" / "clip.mov", 300_000)
    large = write(export / "Projects" / "B" / "take.mxf", 9 << 20)
    source = source_svc.add_source(ctx, "nas", ganesha.url(export.name))
    assert source["kind"] == "nfs" and source["health"]["status"] == "online"
    assert source["identity"]["root_fileid"] == str(export.stat().st_ino)
    assert source["health"]["capacity_bytes"]
    first = run_scan(ctx, "nas")
    assert (first["status"], first["files_new"]) == ("completed", 2), first
    ids = b3sum(small, large)
    found = rows(ctx)
    assert found["Projects/A/clip.mov"].media_id == ids[small]
    assert found["Projects/B/take.mxf"].media_id == ids[large]
    again = run_scan(ctx, "nas")
    assert (again["files_unchanged"], again["bytes_read"]) == (2, 0)
    os.rename(small, export / "Projects" / "B" / "clip-renamed.mov")
    moved = run_scan(ctx, "nas")
    assert (moved["files_moved"], moved["bytes_read"], moved["files_missing"]) == (1, 0, 0), str(moved)
    assert rows(ctx)["Projects/B/clip-renamed.mov"].id == found["Projects/A/clip.mov"].id


def test_content_with_range_from_an_nfs_source(tmp_path: Path, ganesha: GaneshaServer, export: Path) -> None:
    from fastapi.testclient import TestClient

    from mediamesh.server import create_app
    from mediamesh.services import tokens as token_svc
    from tests.conftest import make_settings

    data = os.urandom(200_000)
    (export / "clip.mp4").write_bytes(data)
    os.utime(export / "clip.mp4", (1_600_000_000, 1_600_000_000))
    app = create_app(make_settings(tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as client:
        ctx: Context = app.state.ctx
        _, value = token_svc.create_token(ctx, "reader", "read")
        source_svc.add_source(ctx, "nas", ganesha.url(export.name))
        assert run_scan(ctx, "nas")["files_new"] == 1
        media_id = rows(ctx)["clip.mp4"].media_id
        got = client.get(
            f"/api/v1/media/{media_id}/content",
            headers={"Authorization": f"Bearer {value}", "Range": "bytes=1000-1999"},
        )
    assert got.status_code == 206 and got.content == data[1000:2000]
    assert got.headers["x-mediamesh-source"] == "nas"


def test_an_export_for_privileged_ports_only_says_what_to_change(
    sqlite_ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as an ordinary user would (no privileged source port): the refusal names the fix."""
    from mediamesh.backends import nfs

    server = GaneshaServer(tmp_path / "secure", privileged_port=True).start()
    try:
        (server.share_dir / "x").mkdir()
        monkeypatch.setattr(nfs, "_may_bind_privileged", lambda: False)
        with pytest.raises(LocationUnreachable, match="insecure"):
            source_svc.add_source(sqlite_ctx, "nas", server.url("x"))
        monkeypatch.setattr(nfs, "_may_bind_privileged", lambda: True)  # root here: a port below 1024
        assert source_svc.add_source(sqlite_ctx, "nas", server.url("x"))["health"]["status"] == "online"
    finally:
        server.stop()
