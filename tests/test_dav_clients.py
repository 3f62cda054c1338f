"""The WebDAV view with real clients against a real ``mediamesh serve``: rclone's webdav backend (lsjson,
cat with ranges), ``rclone mount`` over FUSE read by ffprobe and b3sum, and Debian's litmus."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediamesh.context import create_context
from mediamesh.services import projects as project_svc
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings, write
from tests.media_factory import h264_mp4
from tests.test_serve import _self_signed, free_port

for tool in ("rclone", "litmus", "ffprobe", "b3sum"):
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} is missing: run scripts/install-system-deps.sh")


@dataclass
class DavServer:
    url: str
    token: str
    limited: str
    library: Path
    clip: Path
    media_id: str
    tmp: Path

    def rclone(
        self, *args: str, token: str | None = None, url: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        obscured = subprocess.run(
            ["rclone", "obscure", "-"], input=token or self.token, capture_output=True, text=True, check=True
        ).stdout.strip()
        env = {
            **os.environ,
            "RCLONE_CONFIG": str(self.tmp / "rclone.conf"),
            "RCLONE_CONFIG_DAV_TYPE": "webdav",
            "RCLONE_CONFIG_DAV_URL": url or self.url,
            "RCLONE_CONFIG_DAV_VENDOR": "other",
            "RCLONE_CONFIG_DAV_USER": "rclone",
            "RCLONE_CONFIG_DAV_PASS": obscured,
        }
        return subprocess.run(["rclone", *args], env=env, capture_output=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def dav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    tmp = tmp_path_factory.mktemp("dav")
    (tmp / "rclone.conf").touch()
    library = tmp / "lib"
    clip = h264_mp4(library / "Projects" / "Trip" / "day one" / "clip #1.mp4", seconds=2.0)
    os.utime(clip, (time.time() - 3600,) * 2)
    write(library / "Stills" / "a.jpg", 20_000)
    write(tmp / "backup" / "old" / "clip copy.mp4", clip.read_bytes())
    ctx = create_context(make_settings(tmp))
    try:
        source_svc.add_source(ctx, "lib", str(library))
        source_svc.add_source(ctx, "backup", str(tmp / "backup"))
        assert run_scan(ctx, "lib")["status"] == run_scan(ctx, "backup")["status"] == "completed"
        project_svc.add_template(ctx, "Projects/{project}/**")
        _, token = token_svc.create_token(ctx, "rclone", "read")
        _, limited = token_svc.create_token(ctx, "tv", "read", project_names=["Trip"])
    finally:
        ctx.close()
    with serving(tmp) as base:
        yield DavServer(f"{base}/dav/", token, limited, library, clip, b3sum(clip)[clip], tmp)


@contextlib.contextmanager
def serving(tmp: Path, *args: str, scheme: str = "http", host: str = "127.0.0.1") -> Iterator[str]:
    """``mediamesh serve`` on the data dir in ``tmp``, on a free port of 127.0.0.1; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "MEDIAMESH_DATA_DIR": str(tmp / "data"),
        "MEDIAMESH_HOST": "127.0.0.1",
        "MEDIAMESH_PORT": str(port),
    }
    command = [sys.executable, "-m", "mediamesh", "serve", *args]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
            time.sleep(0.2)
    try:
        yield f"{scheme}://{host}:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert "Traceback" not in stderr, stderr


def test_rclone_lists_every_view_with_sizes_and_times(dav_server: DavServer) -> None:
    listed = dav_server.rclone("lsjson", "-R", "dav:")
    assert listed.returncode == 0, listed.stderr
    entries = {e["Path"]: e for e in json.loads(listed.stdout)}
    clip, media_id = dav_server.clip, dav_server.media_id
    files = {p: e["Size"] for p, e in entries.items() if not e["IsDir"]}
    assert files == {
        "sources/lib/Projects/Trip/day one/clip #1.mp4": clip.stat().st_size,
        "sources/lib/Stills/a.jpg": 20_000,
        "sources/backup/old/clip copy.mp4": clip.stat().st_size,
        "projects/Trip/day one/clip #1.mp4": clip.stat().st_size,
        f"media/{media_id}.mp4": clip.stat().st_size,
        f"media/{b3sum(dav_server.library / 'Stills' / 'a.jpg')[dav_server.library / 'Stills' / 'a.jpg']}.jpg": 20_000,
        f"duplicates/clip copy ({media_id[:12]})/backup - clip copy.mp4": clip.stat().st_size,
        f"duplicates/clip copy ({media_id[:12]})/lib - clip #1.mp4": clip.stat().st_size,
    }
    modified = entries["sources/lib/Projects/Trip/day one/clip #1.mp4"]["ModTime"]
    assert modified.startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(clip.stat().st_mtime)))


def test_rclone_cat_reads_whole_files_and_ranges(dav_server: DavServer) -> None:
    data = dav_server.clip.read_bytes()
    whole = dav_server.rclone("cat", f"dav:media/{dav_server.media_id}.mp4")
    assert whole.returncode == 0 and whole.stdout == data
    part = dav_server.rclone(
        "cat", "--offset", "1000", "--count", "777", "dav:projects/Trip/day one/clip #1.mp4"
    )
    assert part.returncode == 0 and part.stdout == data[1000:1777]


def test_rclone_with_a_limited_token_sees_only_its_project(dav_server: DavServer) -> None:
    listed = dav_server.rclone("lsjson", "-R", "dav:", token=dav_server.limited)
    assert listed.returncode == 0, listed.stderr
    assert sorted(e["Path"] for e in json.loads(listed.stdout)) == [
        "projects",
        "projects/Trip",
        "projects/Trip/day one",
        "projects/Trip/day one/clip #1.mp4",
    ]
    assert dav_server.rclone("cat", "dav:sources/lib/Stills/a.jpg", token=dav_server.limited).returncode != 0
    assert dav_server.rclone("lsjson", "dav:", token="mm_not-a-token").returncode != 0


def test_rclone_over_https_with_the_servers_certificate(dav_server: DavServer) -> None:
    """What a LAN client does: the same view over TLS, the server's certificate trusted by the client."""
    cert, key = _self_signed(dav_server.tmp)
    with serving(
        dav_server.tmp, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https", host="localhost"
    ) as base:
        url = f"{base}/dav/"
        listed = dav_server.rclone("lsjson", "dav:projects/Trip/day one", "--ca-cert", str(cert), url=url)
        assert listed.returncode == 0, listed.stderr
        assert [e["Name"] for e in json.loads(listed.stdout)] == ["clip #1.mp4"]
        read = dav_server.rclone(
            "cat", f"dav:media/{dav_server.media_id}.mp4", "--ca-cert", str(cert), url=url
        )
        assert read.returncode == 0 and read.stdout == dav_server.clip.read_bytes()
        untrusted = dav_server.rclone("lsjson", "dav:", "--low-level-retries", "1", "--retries", "1", url=url)
        assert untrusted.returncode != 0 and b"certificate" in untrusted.stderr


def test_a_fuse_mount_plays_and_hashes_to_the_media_id(dav_server: DavServer) -> None:
    mount = dav_server.tmp / "mnt"
    mount.mkdir(exist_ok=True)
    obscured = subprocess.run(
        ["rclone", "obscure", "-"], input=dav_server.token, capture_output=True, text=True, check=True
    ).stdout.strip()
    remote = f":webdav,url='{dav_server.url}',vendor=other,user=fm,pass='{obscured}':"
    proc = subprocess.Popen(
        ["rclone", "mount", remote, str(mount), "--read-only", "--dir-cache-time", "1s"],
        env={**os.environ, "RCLONE_CONFIG": str(dav_server.tmp / "rclone.conf")},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mount):
            assert proc.poll() is None and time.monotonic() < deadline, "rclone mount did not start"
            time.sleep(0.2)
        assert sorted(os.listdir(mount)) == ["duplicates", "media", "projects", "sources"]
        played = mount / "projects" / "Trip" / "day one" / "clip #1.mp4"
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_name",
                "-of",
                "json",
                str(played),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert probe.returncode == 0, probe.stderr
        info = json.loads(probe.stdout)
        assert abs(float(info["format"]["duration"]) - 2.0) < 0.1
        assert info["streams"][0]["codec_name"] == "h264"
        hashed = subprocess.run(
            ["b3sum", "--no-names", str(mount / "media" / f"{dav_server.media_id}.mp4")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert hashed.stdout.strip() == dav_server.media_id
        with pytest.raises(OSError):  # read-only, end to end
            (mount / "sources" / "lib" / "new.mp4").write_bytes(b"x")
        assert not (dav_server.library / "new.mp4").exists()
    finally:
        fusermount = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
        subprocess.run([fusermount, "-u", str(mount)], capture_output=True, timeout=30, check=False)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize("suite", ["basic", "copymove", "props", "locks", "http"])
def test_litmus_finds_a_server_that_refuses_every_write_cleanly(dav_server: DavServer, suite: str) -> None:
    """litmus starts every suite by creating a collection (MKCOL) to test in, and goes no further when the
    server refuses: what it can check of a read-only server is that it answers, and refuses the write
    with 405 (not a dropped connection, a 500 or a hang). Its read-only checks (OPTIONS, PROPFIND on bad
    bodies, depth 0) are in test_dav.py, against the same code."""
    run = subprocess.run(
        ["litmus", dav_server.url, "litmus", dav_server.token],
        env={**os.environ, "TESTS": suite},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=dav_server.tmp,
    )
    out = run.stdout
    assert "init.................. pass" in out, out
    assert "Could not create new collection `/dav/litmus/' for tests: 405 Method Not Allowed" in out, out
    assert "of 2 tests run: 1 passed, 1 failed" in out, out
    assert not (dav_server.library / "litmus").exists()
