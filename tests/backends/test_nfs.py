"""The NFS backend passes the conformance suite against a real nfs-ganesha (NFSv4.1 and 4.0), plus what
only NFS shows: AUTH_SYS ids, the privileged-port refusal explained, the export's identity."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mediamesh.backends import parse_location
from mediamesh.backends.base import Backend, PermissionDeniedError
from mediamesh.backends.nfs import NfsBackend, NfsOptions
from mediamesh.errors import InvalidInput
from tests.backends.conformance import BackendConformance
from tests.servers.ganesha import GaneshaServer


def _root(server: GaneshaServer) -> Path:
    root = server.share_dir / uuid.uuid4().hex
    root.mkdir()
    return root


class TestNfsConformance(BackendConformance):
    version = "4.1"

    @pytest.fixture
    def served_root(self, ganesha: GaneshaServer) -> Path:
        return _root(ganesha)

    @pytest.fixture
    def backend(self, ganesha: GaneshaServer, served_root: Path) -> Iterator[Backend]:
        options = dataclasses.replace(
            NfsOptions.parse(ganesha.url(served_root.name)), version=self.version, timeout=5.0
        )
        b = NfsBackend(options)
        yield b
        b.close()

    @pytest.fixture
    def lose_server(self, ganesha: GaneshaServer) -> Iterator[Callable[[], None]]:
        """Kill the tests' ganesha (a NAS that crashes); it is started again on the same port afterwards."""
        killed: list[bool] = []

        def lose() -> None:
            ganesha.kill()
            killed.append(True)

        yield lose
        if killed:
            ganesha.start()


class TestNfs40Conformance(TestNfsConformance):
    version = "4.0"


def test_identity_and_capacity(ganesha: GaneshaServer) -> None:
    root = _root(ganesha)
    backend = NfsBackend(NfsOptions.parse(ganesha.url(root.name)))
    try:
        identity = backend.identity()
        capacity, free = backend.usage()
    finally:
        backend.close()
    assert identity["root_fileid"] == str(root.stat().st_ino)
    assert identity["export"] == f"media/{root.name}" and identity["fsid"]
    assert capacity and free is not None and 0 <= free <= capacity


def test_auth_sys_ids_are_what_the_server_checks(ganesha: GaneshaServer) -> None:
    root = _root(ganesha)
    (root / "private.bin").write_bytes(b"p")
    os.chmod(root / "private.bin", 0o600)  # root's only
    as_nobody = NfsBackend(NfsOptions.parse(f"{ganesha.url(root.name)}?uid=65534&gid=65534"))
    as_root = NfsBackend(NfsOptions.parse(f"{ganesha.url(root.name)}?uid=0&gid=0"))
    try:
        with pytest.raises(PermissionDeniedError, match="uid and gid"):
            as_nobody.open("private.bin").read()
        with as_root.open("private.bin") as fh:
            assert fh.read() == b"p"
    finally:
        as_nobody.close()
        as_root.close()


def test_nothing_listens() -> None:
    from tests.servers.samba import free_port

    url = f"nfs://127.0.0.1:{free_port()}/media"
    probe = NfsBackend(dataclasses.replace(NfsOptions.parse(url), connect_timeout=3)).probe()
    assert not probe.reachable and "no NFS server answered" in (probe.error or "")


def test_no_such_export_or_folder(ganesha: GaneshaServer) -> None:
    probe = NfsBackend(NfsOptions.parse(ganesha.url("nope-" + uuid.uuid4().hex))).probe()
    assert not probe.reachable and "no folder" in (probe.error or "")


@pytest.mark.parametrize(
    ("url", "display"),
    [
        ("nfs://nas/volume1/video", "nfs://nas/volume1/video"),
        ("nfs://nas.example:2049/volume1/video/", "nfs://nas.example/volume1/video"),
        (
            "nfs://nas:20490/export/My%20Clips?gid=100&uid=1000",
            "nfs://nas:20490/export/My%20Clips?uid=1000&gid=100",
        ),
        ("nfs://nas/export?version=4.0", "nfs://nas/export?version=4.0"),
    ],
)
def test_nfs_locations(url: str, display: str) -> None:
    assert parse_location(url).display == display


@pytest.mark.parametrize(
    "url",
    [
        "nfs://nas",
        "nfs://nas/",
        "nfs://ana@nas/export",
        "nfs://nas/export/../../etc",
        "nfs://nas:99999/export",
        "nfs://nas/export?uid=ana",
        "nfs://nas/export?version=4.2",
        "nfs://nas/export?sec=krb5",
    ],
)
def test_bad_nfs_locations(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_location(url)
