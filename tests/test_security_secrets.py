"""Finding 3: a stored NAS password is never sent to a server someone else names, and a source test does
not work as a port scanner. Against the tests' own smbd on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mediamesh.context import Context
from mediamesh.server import create_app
from mediamesh.services import tokens as token_svc
from tests.conftest import make_settings, write
from tests.servers.samba import PASSWORD, SambaServer, free_port

LOCAL = ("127.0.0.1", 40000)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Context]]:
    app = create_app(make_settings(tmp_path, health_interval=3600))
    with TestClient(app, client=LOCAL) as client:
        yield client, app.state.ctx


@pytest.fixture
def share(samba: SambaServer) -> Path:
    root = samba.share_dir / uuid.uuid4().hex
    write(root / "sub" / "a.mp4", b"a video")
    return root


def auth(ctx: Context, scope: str = "write") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_svc.create_token(ctx, scope, scope)[1]}"}


class Listener:
    """A TCP server on loopback that records whether anyone connected (and sends nothing back)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def test_a_stored_password_is_not_lent_to_another_server(
    api: tuple[TestClient, Context], samba: SambaServer, share: Path
) -> None:
    client, ctx = api
    headers = auth(ctx)
    made = client.post(
        "/api/v1/sources",
        json={"name": "nas", "location": samba.url(share.name), "password": PASSWORD},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    trap = Listener()
    elsewhere = f"smb://mmtest@127.0.0.1:{trap.port}/media"
    # Test connection with the stored password, against another server: refused before connecting.
    tested = client.post(
        "/api/v1/sources/test", json={"location": elsewhere, "source": "nas"}, headers=headers
    )
    assert tested.status_code == 422 and "password again" in tested.json()["error"]["message"]
    # Another user or share on the same server is another credential too.
    for other in (samba.url(share.name, user="someone"), samba.url(share.name).replace("/media/", "/other/")):
        refused = client.post(
            "/api/v1/sources/test", json={"location": other, "source": "nas"}, headers=headers
        )
        assert refused.status_code == 422, other
    # Moving the source to that server keeps nothing of the secret: the password must be given again.
    moved = client.patch("/api/v1/sources/nas", json={"location": elsewhere, "force": True}, headers=headers)
    assert moved.status_code == 422
    assert client.get("/api/v1/sources/nas", headers=headers).json()["location"] == samba.url(share.name)
    assert trap.connections == 0  # the stored password never travelled
    # Within the same share and user, the stored password still serves (a sub-folder, editing a source).
    same = client.post(
        "/api/v1/sources/test",
        json={"location": samba.url(f"{share.name}/sub"), "source": "nas"},
        headers=headers,
    )
    assert same.status_code == 200 and same.json()["reachable"], same.text
    sub = client.patch(
        "/api/v1/sources/nas", json={"location": samba.url(f"{share.name}/sub")}, headers=headers
    )
    assert sub.status_code == 200 and sub.json()["health"]["status"] == "online"


def test_a_source_test_does_not_tell_open_from_closed_ports(api: tuple[TestClient, Context]) -> None:
    client, ctx = api
    headers = auth(ctx)
    opened = Listener()  # open, but no SMB server behind it
    closed = free_port()
    answers = []
    for port in (opened.port, closed):
        response = client.post(
            "/api/v1/sources/test",
            json={"location": f"smb://u@127.0.0.1:{port}/share", "password": "x"},
            headers=headers,
        )
        assert response.status_code == 200
        answers.append(response.json()["error"].replace(str(port), "PORT"))
    assert opened.connections >= 1
    assert answers[0] == answers[1] == "no SMB server answered at 127.0.0.1:PORT"


def test_fast_reads_require_signing_like_smbprotocol(samba: SambaServer, share: Path) -> None:
    """libsmbclient is set up with our own client settings (signing required, SMB2 or newer) before its
    first use; reads through it still work against a real smbd."""
    from mediamesh.backends import smb_fast
    from mediamesh.backends.smb import SmbBackend, SmbOptions

    if not smb_fast.AVAILABLE:
        pytest.skip("the smb-fast extra is not installed")
    assert "client signing = required" in smb_fast.CLIENT_CONF
    big = share / "big.bin"
    big.write_bytes(b"x" * (9 << 20))
    backend = SmbBackend(SmbOptions.parse(samba.url(share.name)), PASSWORD)
    try:
        with backend.open("big.bin") as fh:
            assert type(fh).__name__ == "_FastSmbFile"
            assert len(fh.read(1 << 20)) == 1 << 20
        assert smb_fast._home is not None
    finally:
        backend.close()


def test_libsmbclient_really_reads_our_client_settings(samba: SambaServer, share: Path) -> None:
    """In a process of its own (libsmbclient loads settings once per process): with settings that allow
    only a protocol no server speaks, a fast read fails; so the settings libsmbclient uses are ours."""
    import subprocess
    import sys

    from mediamesh.backends import smb_fast

    if not smb_fast.AVAILABLE:
        pytest.skip("the smb-fast extra is not installed")
    write(share / "f.bin", b"y" * 1000)
    script = f"""
from mediamesh.backends import smb_fast
import sys
if sys.argv[1] == "ancient":
    smb_fast.CLIENT_CONF = "[global]\\nclient min protocol = LANMAN1\\nclient max protocol = LANMAN1\\n"
reader = smb_fast.LibSmbReader("127.0.0.1", {samba.port}, "media", "mmtest", {PASSWORD!r}, 5)
try:
    print(len(reader.open("{share.name}/f.bin", 1000).read(1000)))
except Exception as exc:
    print("failed", exc)
"""
    results = {
        mode: subprocess.run(
            [sys.executable, "-c", script, mode], capture_output=True, text=True, check=False, timeout=60
        )
        .stdout.strip()
        .splitlines()[-1]  # libsmbclient may print its own complaint first
        for mode in ("ours", "ancient")
    }
    assert results["ours"] == "1000", results
    assert results["ancient"].startswith("failed"), results
