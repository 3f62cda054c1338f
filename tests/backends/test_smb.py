"""The SMB backend passes the conformance suite against a real smbd, plus what only SMB can show."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mediamesh.backends import parse_location
from mediamesh.backends.base import Backend, EntryKind
from mediamesh.backends.smb import SmbBackend, SmbOptions
from mediamesh.errors import InvalidInput
from tests.backends.conformance import BackendConformance
from tests.servers.samba import PASSWORD, SambaServer


class TestSmbConformance(BackendConformance):
    @pytest.fixture
    def served_root(self, samba: SambaServer) -> Path:
        root = samba.share_dir / uuid.uuid4().hex
        root.mkdir()
        return root

    @pytest.fixture
    def backend(self, samba: SambaServer, served_root: Path) -> Iterator[Backend]:
        b = SmbBackend(SmbOptions.parse(samba.url(served_root.name)), PASSWORD)
        yield b
        b.close()

    @pytest.fixture
    def lose_server(self, samba: SambaServer) -> Iterator[Callable[[], None]]:
        """Kill the tests' smbd (a NAS that crashes); it is started again on the same port afterwards."""
        killed: list[bool] = []

        def lose() -> None:
            samba.kill()
            killed.append(True)

        yield lose
        if killed:
            samba.start(reset_password=False)


def test_wrong_password_is_reported_as_such(samba: SambaServer) -> None:
    probe = SmbBackend(SmbOptions.parse(samba.url()), "wrong").probe()
    assert not probe.reachable and "password" in (probe.error or "")


def test_no_such_share(samba: SambaServer) -> None:
    url = f"smb://mmtest@127.0.0.1:{samba.port}/nope"
    probe = SmbBackend(SmbOptions.parse(url), PASSWORD).probe()
    assert not probe.reachable and "no such share" in (probe.error or "")


def test_nothing_listens(samba: SambaServer) -> None:
    from tests.servers.samba import free_port

    url = f"smb://mmtest@127.0.0.1:{free_port()}/media"
    probe = SmbBackend(dataclasses.replace(SmbOptions.parse(url), timeout=3), PASSWORD).probe()
    assert not probe.reachable and "no SMB server answered" in (probe.error or "")


def test_identity_is_the_volume(samba: SambaServer) -> None:
    backend = SmbBackend(SmbOptions.parse(samba.url()), PASSWORD)
    try:
        identity = backend.identity()
        capacity, free = backend.usage()
    finally:
        backend.close()
    assert identity["share"] == "media" and len(identity["volume_serial"]) == 8
    assert capacity and free is not None and 0 <= free <= capacity


def test_names_match_case_insensitively(samba: SambaServer) -> None:
    root = samba.share_dir / uuid.uuid4().hex
    (root / "Folder").mkdir(parents=True)
    (root / "Folder" / "Clip.MP4").write_bytes(b"x" * 10)
    backend = SmbBackend(SmbOptions.parse(samba.url(root.name)), PASSWORD)
    try:
        assert backend.features.case_insensitive
        assert backend.stat("folder/clip.mp4").kind is EntryKind.FILE
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("url", "display"),
    [
        ("smb://nas/media", "smb://nas/media"),
        ("smb://ana@nas.example:4455/Media/Photos/2024/", "smb://ana@nas.example:4455/Media/Photos/2024"),
        ("smb://nas:445/share", "smb://nas/share"),
    ],
)
def test_smb_locations(url: str, display: str) -> None:
    assert parse_location(url).display == display


@pytest.mark.parametrize(
    "url",
    ["smb://nas", "smb://nas/", "smb://ana:secret@nas/share", "smb://nas/share/../x", "smb://nas:99999/s"],
)
def test_bad_smb_locations(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_location(url)


class TestSmbFastReadConformance(TestSmbConformance):
    """The same suite with every file read through libsmbclient (the smb-fast extra), not only large ones."""

    @pytest.fixture
    def backend(self, samba: SambaServer, served_root: Path) -> Iterator[Backend]:
        from mediamesh.backends import smb_fast

        assert smb_fast.AVAILABLE, "the smb-fast extra (pysmbc) is not installed: run 'make test'"
        options = dataclasses.replace(SmbOptions.parse(samba.url(served_root.name)), fast_read_min=0)
        b = SmbBackend(options, PASSWORD)
        yield b
        b.close()


def test_a_backslash_never_reaches_the_server(samba: SambaServer) -> None:
    """SMB takes '\\' for a separator: a path with one could climb out of the source's folder."""
    from mediamesh.backends.base import InvalidPathError

    backend = SmbBackend(SmbOptions.parse(samba.url("sub")), PASSWORD)
    try:
        for bad in ("a\\..\\..\\x", "..\\x"):
            with pytest.raises(InvalidPathError):
                backend.stat(bad)
            with pytest.raises(InvalidPathError):
                backend.open(bad)
    finally:
        backend.close()
    with pytest.raises(InvalidInput, match="cannot contain"):
        parse_location("smb://nas/share/a\\..\\b")
