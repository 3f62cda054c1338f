"""Deployment files (docs/deploy.md): what the image and compose promise is checked here; the image
itself is built and started by `make test-image` (scripts/image.sh), which takes minutes and the network.

Also the fresh-machine path of scripts/ensure-services.sh: a throw-away PostgreSQL cluster of its own on
a free port, when the machine's own server is missing or 5432 is taken."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from mediamesh.config import Settings
from mediamesh.context import Context

ROOT = Path(__file__).resolve().parent.parent


def test_the_dockerfile_copies_what_exists_and_declares_what_compose_relies_on() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"COPY of {path}, which is not in the repository"
    assert re.search(r"^ARG BASE_IMAGE=", dockerfile, re.M), "the base image is a build argument"
    assert dockerfile.count("\nFROM ") == 2, "multi-stage: a build stage and a slim runtime"
    assert 'VOLUME ["/data"]' in dockerfile and "EXPOSE 8470" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "mediamesh-healthcheck" in dockerfile
    for package in ("ffmpeg", "libsmbclient", "tini"):
        assert package in dockerfile
    env = dict(re.findall(r"(MEDIAMESH_[A-Z_]+)=(\S+)", dockerfile))
    # Every setting the image sets is one mediamesh knows (a typo would be silently ignored).
    known = {f"MEDIAMESH_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known, set(env) - known
    assert env["MEDIAMESH_LOCAL_ROOTS"] == env["MEDIAMESH_MOUNTS_DIR"] == "/mnt/sources"
    # The entrypoint drops to PUID:PGID and never chowns anything but the data dir.
    entry = (ROOT / "docker" / "entrypoint.sh").read_text()
    assert "setpriv --reuid" in entry
    assert re.findall(r"chown\b.*", entry) == ['chown -R "$PUID:$PGID" "$data"']
    ignored = (ROOT / ".dockerignore").read_text().split()
    for private in (".git", ".venv", "data"):
        assert private in ignored, f"{private} would be sent into the build"


def test_compose_mounts_the_parent_once_and_keeps_data_in_a_volume() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["mediamesh"]
    volumes = service["volumes"]
    assert "mediamesh-data:/data" in volumes and "mediamesh-data" in compose["volumes"]
    parent = next(v for v in volumes if isinstance(v, dict) and v["target"] == "/mnt/sources")
    assert parent["type"] == "bind" and parent["read_only"] is True
    assert parent["bind"]["propagation"] == "rslave"  # shares the host mounts later appear inside
    assert service["environment"]["MEDIAMESH_SOURCES_FILE"] == "/config/sources.yaml"
    assert "./config:/config:ro" in volumes
    assert compose["services"]["postgres"]["profiles"] == ["postgres"]
    # Every ${VAR} compose reads is explained in .env.example.
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    example = (ROOT / ".env.example").read_text()
    assert {v for v in used if not re.search(rf"^#?{v}=", example, re.M)} == {"MEDIAMESH_IMAGE"}
    # The legacy share as first source: the example sources.yaml is valid for the importer.
    from mediamesh.services.bootstrap import load

    declared = load(ROOT / "docs" / "examples" / "sources.yaml")
    assert [s.location for s in declared.sources] == ["/mnt/sources/media"]
    kernel = yaml.safe_load((ROOT / "docker-compose.kernel-mounts.yml").read_text())["services"]["mediamesh"]
    assert "SYS_ADMIN" in kernel["cap_add"] and kernel["environment"]["MEDIAMESH_MOUNT_SHARES"] == "on"


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("runuser") is None, reason="needs util-linux's runuser")
def test_a_machine_without_a_usable_postgresql_gets_a_throw_away_cluster(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        tmp_path.chmod(0o755)  # the cluster belongs to the postgres user
        for parent in tmp_path.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
    pg_dir, url_file = tmp_path / "pg", tmp_path / "url"
    env = {**os.environ, "MEDIAMESH_TEST_PG_DIR": str(pg_dir), "MEDIAMESH_TEST_PG_URL_FILE": str(url_file)}
    five_four_three_two_taken = _taken(5432)
    try:
        subprocess.run(
            [str(ROOT / "scripts" / "ensure-services.sh"), "--own"], env=env, check=True, timeout=300
        )
        url = url_file.read_text().strip()
        port = int(re.search(r":(\d+)/", url).group(1))  # type: ignore[union-attr]
        assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert (port != 5432) if five_four_three_two_taken else (port == 5432)
        with create_engine(url).connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
        context = Context(Settings(data_dir=tmp_path / "data", database_url=url))  # migrations run there
        context.close()
        # A second run finds it and starts nothing more.
        again = subprocess.run(
            [str(ROOT / "scripts" / "ensure-services.sh"), "--own"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        assert url_file.read_text().strip() == url and str(port) in again.stdout
    finally:
        data = pg_dir / "data"
        if (data / "postmaster.pid").exists():
            pg_ctl = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
            command = [str(pg_ctl), "-D", str(data), "-m", "immediate", "stop"]
            if os.geteuid() == 0:
                command = ["runuser", "-u", "postgres", "--", *command]
            subprocess.run(command, check=False, capture_output=True, timeout=60)
