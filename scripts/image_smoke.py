"""Smoke test of the built container image, where no container engine runs (scripts/image.sh smoke).

The image's root file system (``podman image mount``) is started with chroot in a private mount
namespace, as docker-compose.yml starts the container: the image's own ENTRYPOINT, CMD and environment,
a /data volume, the parent mount at /mnt/sources holding two host-mounted shares (bind mounts), and a
sources.yaml as config that declares the legacy share. Then, from outside, through the HTTP API only:

- the image's HEALTHCHECK command answers; the server runs as PUID, not root, and owns /data;
- the legacy share from sources.yaml is a source, online; a share added at runtime through the API is
  scanned and its media listed; a folder of the parent mount with nothing mounted is refused as
  "not mounted";
- the CLI works inside the image (as PUID), and SIGTERM stops the server cleanly.

Only 127.0.0.1 is used: the server listens there, and nothing else is reached.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PUID = 1234  # not the image's default 1000: shows that PUID/PGID are honoured
PGID = 1234


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jpeg(path: Path, seed: int) -> None:
    from PIL import Image  # the host venv's Pillow: real images, so metadata and thumbnails run

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (seed * 40 % 256, 90, 160)).save(path, "JPEG")


class Api:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def check(condition: bool, what: str) -> None:
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        raise SystemExit(1)


def wait(what: str, test: Any, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(0.5)
    check(False, f"{what} (within {seconds:.0f} s)")
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--podman", required=True, help="the podman command with its storage options")
    parser.add_argument("--image", required=True)
    args = parser.parse_args()
    podman = shlex.split(args.podman)
    config = json.loads(
        subprocess.run(
            [*podman, "image", "inspect", "--format", "{{json .Config}}", args.image],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    root = subprocess.run(
        [*podman, "image", "mount", args.image], check=True, capture_output=True, text=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="mediamesh-image-smoke-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    server: subprocess.Popen[bytes] | None = None
    try:
        server = run(config, root, work)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait(10)
        subprocess.run([*podman, "image", "unmount", args.image], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def run(config: dict[str, Any], root: str, work: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    data, parent, config_dir = work / "data", work / "nas-parent", work / "config"
    legacy, photos = work / "share-legacy", work / "share-photos"
    for d in (data, parent / "legacy", parent / "photos", parent / "pending", config_dir):
        d.mkdir(parents=True)
    for i in range(3):
        jpeg(legacy / "2019" / f"old{i}.jpg", i)
    for i in range(5):
        jpeg(photos / "trip" / f"p{i}.jpg", 10 + i)
    past = time.time() - 3600  # settled files: a scan takes them at once
    for f in [*legacy.rglob("*.jpg"), *photos.rglob("*.jpg")]:
        os.utime(f, (past, past))
    (config_dir / "sources.yaml").write_text(
        "sources:\n  - name: legacy\n    location: /mnt/sources/legacy\n"
    )
    for path in work.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)

    env = dict(item.split("=", 1) for item in config["Env"])
    env.update(
        PUID=str(PUID),
        PGID=str(PGID),
        MEDIAMESH_PORT=str(port),
        MEDIAMESH_HOST="127.0.0.1",  # this test reaches only loopback (in compose: 0.0.0.0 and a port)
        MEDIAMESH_SOURCES_FILE="/config/sources.yaml",
        MEDIAMESH_HEALTH_INTERVAL="2",
    )
    command = [*config["Entrypoint"], *config["Cmd"]]
    q = shlex.quote
    mounts = [
        f"mount -t proc proc {q(root)}/proc",
        f"mount --rbind /dev {q(root)}/dev",
        f"mount -t tmpfs tmpfs {q(root)}/tmp",
        f"mount --bind {q(str(data))} {q(root)}/data",
        f"mount --bind -o ro {q(str(config_dir))} {q(root)}/config",
        # The parent mount, once; the host's share mounts below it (rbind carries them, as compose does).
        f"mount --bind {q(str(legacy))} {q(str(parent / 'legacy'))}",
        f"mount --bind {q(str(photos))} {q(str(parent / 'photos'))}",
        f"mount --rbind -o ro {q(str(parent))} {q(root)}/mnt/sources",
    ]
    env_args = " ".join(q(f"{k}={v}") for k, v in env.items())
    script = " && ".join(mounts) + f" && exec chroot {q(root)} env -i {env_args} " + " ".join(map(q, command))
    log = open(work / "server.log", "wb")  # noqa: SIM115 - kept open for the server's life
    server = subprocess.Popen(
        ["unshare", "--mount", "--pid", "--propagation", "private", "--fork", "sh", "-c", script],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        smoke(server, root, work, port, env)
    except BaseException:
        print((work / "server.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    return server


def in_image(
    server: subprocess.Popen[bytes], root: str, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command in the server's mount namespace and root, as ``docker exec`` would run it."""
    pid = next((p for p in children(server.pid) if os.readlink(f"/proc/{p}/root") == root), None)
    if pid is None:  # not in the image yet (still mounting)
        return subprocess.CompletedProcess(argv, 1, "", "not started")
    env_args = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        ["nsenter", "--target", str(pid), "--mount", "chroot", root, "env", *env_args, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def children(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(k) for k in kids)
    return found


def smoke(server: subprocess.Popen[bytes], root: str, work: Path, port: int, env: dict[str, str]) -> None:
    api = Api(port)
    health_env = env  # HEALTHCHECK runs with the container's environment
    wait(
        "the image's HEALTHCHECK command answers",
        lambda: (
            server.poll() is None
            and in_image(server, root, "/usr/local/bin/mediamesh-healthcheck", env=health_env).returncode == 0
        ),
    )
    check(True, "the image's HEALTHCHECK command answers")
    serving = [
        p
        for p in children(server.pid)
        if b"serve" in Path(f"/proc/{p}/cmdline").read_bytes()
        and b"python" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    uids = {Path(f"/proc/{p}/status").read_text().split("Uid:")[1].split()[0] for p in serving}
    check(uids == {str(PUID)}, f"the server runs as PUID {PUID}, not root (uids {sorted(uids)})")
    check((work / "data" / "catalog.db").stat().st_uid == PUID, "the catalog in /data belongs to PUID")
    api.token = (work / "data" / "admin-token").read_text().strip()

    def legacy_online() -> bool:
        status, body = api.call("GET", "/api/v1/sources/legacy")
        return status == 200 and body["health"]["status"] == "online"

    wait("the legacy share from sources.yaml is a source, online", legacy_online)
    check(True, "the legacy share from sources.yaml is a source, online")

    status, body = api.call(
        "POST", "/api/v1/sources", {"name": "pending", "location": "/mnt/sources/pending"}
    )
    check(status == 503 or (400 <= status < 500), f"a folder with nothing mounted is refused ({status})")
    check("not mounted" in json.dumps(body), "...and the answer says 'not mounted'")

    status, body = api.call("POST", "/api/v1/sources", {"name": "photos", "location": "/mnt/sources/photos"})
    check(
        status == 201,
        f"a share added at runtime through the API ({status}{'' if status == 201 else ': ' + str(body)})",
    )
    for name in ("legacy", "photos"):
        status, _scan = api.call("POST", f"/api/v1/sources/{name}/scans", {})
        check(status == 202, f"scan of {name} started ({status})")

    def scanned() -> bool:
        status, body = api.call("GET", "/api/v1/media?limit=50")
        return status == 200 and len(body["data"]) == 8

    wait("8 media indexed from both shares", scanned)
    check(True, "8 media indexed from both shares")
    status, mounts = api.call("GET", "/api/v1/mounts")
    states = {m["source"]: m["state"] for m in mounts["data"]}
    check(states == {"legacy": "mounted", "photos": "mounted"}, f"GET /api/v1/mounts: {states}")

    cli = in_image(
        server,
        root,
        "/usr/local/bin/mediamesh-entrypoint",
        "source",
        "list",
        "--json",
        env={
            "PATH": "/opt/mediamesh/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "MEDIAMESH_DATA_DIR": "/data",
            "MEDIAMESH_LOCAL_ROOTS": "/mnt/sources",
            "PUID": str(PUID),
            "PGID": str(PGID),
        },
    )
    names = sorted(s["name"] for s in json.loads(cli.stdout)) if cli.returncode == 0 else cli.stderr
    check(names == ["legacy", "photos"], f"the CLI in the image lists the sources ({names})")

    init = next(
        p for p in children(server.pid) if os.readlink(f"/proc/{p}/root") == root
    )  # tini, PID 1 in compose
    os.kill(init, signal.SIGTERM)
    try:
        code = server.wait(20)
    except subprocess.TimeoutExpired:
        code = None
    check(code in (0, 143), f"SIGTERM stops the server cleanly (exit {code})")


if __name__ == "__main__":
    main()
