"""The SFTP backend passes the conformance suite against a real OpenSSH sshd, plus what only SFTP shows:
host keys pinned (trust on first use, a changed key refused before logging on), private keys, and
content ids computed by the server's b3sum."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3
import pytest

from mediamesh.backends import parse_location
from mediamesh.backends.base import Backend, BackendError, EntryKind
from mediamesh.backends.sftp import HostKeyChangedError, SftpBackend, SftpOptions
from mediamesh.errors import InvalidInput
from tests.backends.conformance import BackendConformance
from tests.servers.openssh import PASSWORD, SshServer


def _root(sshd: SshServer) -> Path:
    root = sshd.share_dir / uuid.uuid4().hex
    root.mkdir()
    root.chmod(0o755)
    return root


def _backend(sshd: SshServer, sub: str, **changes: object) -> SftpBackend:
    options = dataclasses.replace(SftpOptions.parse(sshd.url(sub)), **changes)  # type: ignore[arg-type]
    return SftpBackend(options, {"password": PASSWORD})


class TestSftpConformance(BackendConformance):
    @pytest.fixture
    def served_root(self, sshd: SshServer) -> Path:
        return _root(sshd)

    @pytest.fixture
    def backend(self, sshd: SshServer, served_root: Path) -> Iterator[Backend]:
        b = _backend(sshd, served_root.name, timeout=5.0)
        yield b
        b.close()

    @pytest.fixture
    def lose_server(self, sshd: SshServer) -> Iterator[Callable[[], None]]:
        """Kill the tests' sshd and its sessions (a machine that crashes); started again afterwards."""
        killed: list[bool] = []

        def lose() -> None:
            sshd.kill()
            killed.append(True)

        yield lose
        if killed:
            sshd.start()


class TestSftpWithKeyConformance(TestSftpConformance):
    """The same suite logged on with a private key instead of a password."""

    @pytest.fixture
    def backend(self, sshd: SshServer, served_root: Path) -> Iterator[Backend]:
        options = dataclasses.replace(SftpOptions.parse(sshd.url(served_root.name)), timeout=5.0)
        b = SftpBackend(options, {"private_key": sshd.client_key.read_text()})
        yield b
        b.close()


def test_first_use_trusts_the_key_the_server_shows(sshd: SshServer) -> None:
    backend = _backend(sshd, "")
    try:
        probe = backend.probe()
    finally:
        backend.close()
    assert probe.reachable, probe.error
    assert probe.identity["host_key"] == sshd.host_key_fingerprint()
    assert probe.identity["root"] == str(sshd.share_dir) and probe.identity["fsid"]


def test_a_different_host_key_is_refused_before_logging_on(sshd: SshServer) -> None:
    """A pinned key that is not the server's: no log-on is attempted (the password never leaves)."""
    wrong = "SHA256:" + "A" * 43
    log_before = (sshd.workdir / "sshd.log").read_text()
    backend = _backend(sshd, "", fingerprint=wrong)
    try:
        with pytest.raises(HostKeyChangedError, match="not SHA256:AAAA"):
            backend.stat("")
        probe = backend.probe()
    finally:
        backend.close()
    assert not probe.reachable and sshd.host_key_fingerprint() in (probe.error or "")
    assert "Failed password" not in (sshd.workdir / "sshd.log").read_text()[len(log_before) :]


def test_the_right_pinned_key_is_accepted(sshd: SshServer) -> None:
    backend = _backend(sshd, "", fingerprint=sshd.host_key_fingerprint())
    try:
        assert backend.stat("").kind is EntryKind.DIR
    finally:
        backend.close()


def test_wrong_password_is_reported_as_such(sshd: SshServer) -> None:
    options = SftpOptions.parse(sshd.url())
    probe = SftpBackend(options, {"password": "wrong"}).probe()
    assert not probe.reachable and "password" in (probe.error or "")


def test_an_unusable_private_key_is_reported(sshd: SshServer) -> None:
    probe = SftpBackend(SftpOptions.parse(sshd.url()), {"private_key": "not a key"}).probe()
    assert not probe.reachable and "private key" in (probe.error or "")


def test_nothing_listens() -> None:
    from tests.servers.samba import free_port

    url = f"sftp://mmsftp@127.0.0.1:{free_port()}/srv"
    probe = SftpBackend(dataclasses.replace(SftpOptions.parse(url), connect_timeout=3), {}).probe()
    assert not probe.reachable and "no SFTP server answered" in (probe.error or "")


def test_no_such_folder(sshd: SshServer) -> None:
    probe = _backend(sshd, "nope-" + uuid.uuid4().hex).probe()
    assert not probe.reachable and "no such" in (probe.error or "")


def test_a_link_inside_the_root_to_outside_is_never_followed(sshd: SshServer) -> None:
    """The server resolves links itself: a path through one (to a folder outside the root) is refused,
    for listing, stat, content and the remote hash alike."""
    root = _root(sshd)
    outside = _root(sshd)
    (outside / "secret.bin").write_bytes(b"s" * (5 << 20))
    os.symlink(outside, root / "door")
    backend = _backend(sshd, root.name, remote_hash_min=0)
    try:
        assert {e.name: e.kind for e in backend.list_dir("")}["door"] is EntryKind.OTHER
        for call in (
            lambda: backend.list_dir("door"),
            lambda: backend.stat("door/secret.bin"),
            lambda: backend.open("door/secret.bin"),
            lambda: backend.content_hash("door/secret.bin", 5 << 20),
        ):
            with pytest.raises(BackendError) as raised:
                call()
            assert "link" in str(raised.value)
    finally:
        backend.close()


def test_the_server_hashes_large_files_and_agrees_with_a_local_read(sshd: SshServer) -> None:
    """b3sum on the server gives the content id; checked against reading the bytes here on a sample."""
    root = _root(sshd)
    names = {f"clip {i} 'quoted' $(x).bin": os.urandom((1 << 20) + i * 4099) for i in range(3)}
    for name, data in names.items():
        (root / name).write_bytes(data)
    backend = _backend(sshd, root.name, remote_hash_min=1 << 20)
    try:
        for name, data in names.items():
            remote = backend.content_hash(name, len(data))
            with backend.open(name) as fh:
                local = blake3.blake3(fh.read()).hexdigest()
            assert remote == local == blake3.blake3(data).hexdigest()
        assert backend.content_hash(next(iter(names)), 100) is None  # below the threshold: read it
    finally:
        backend.close()


def test_without_b3sum_on_the_server_the_bytes_are_read(sshd: SshServer) -> None:
    root = _root(sshd)
    (root / "a.bin").write_bytes(os.urandom(2 << 20))
    sshd.set_b3sum(False)
    backend = _backend(sshd, root.name, remote_hash_min=0)
    try:
        assert backend.content_hash("a.bin", 2 << 20) is None
    finally:
        backend.close()
        sshd.set_b3sum(True)


@pytest.mark.parametrize(
    ("url", "display"),
    [
        ("sftp://nas/volume1/video", "sftp://nas/volume1/video"),
        ("sftp://ana@box.example:2222/home/ana/Videos/", "sftp://ana@box.example:2222/home/ana/Videos"),
        ("sftp://nas:22/", "sftp://nas/"),
        ("sftp://nas/My%20Clips", "sftp://nas/My%20Clips"),
        (
            "sftp://nas/v?fingerprint=SHA256:" + "a+/b" * 10 + "abc",
            "sftp://nas/v?fingerprint=SHA256:" + "a+/b" * 10 + "abc",
        ),
    ],
)
def test_sftp_locations(url: str, display: str) -> None:
    assert parse_location(url).display == display


@pytest.mark.parametrize(
    "url",
    [
        "sftp://nas",
        "sftp://ana:secret@nas/v",
        "sftp://nas/v/../../etc",
        "sftp://nas:99999/v",
        "sftp://nas/~/Videos",
        "sftp://nas/v?fingerprint=MD5:aa",
        "sftp://nas/v?cipher=none",
    ],
)
def test_bad_sftp_locations(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_location(url)


def test_closing_a_backend_ends_its_thread(sshd: SshServer) -> None:
    """Each backend runs an event loop on a thread; a closed one must not leave it behind (the server
    replaces a source's backend whenever the source changes)."""
    import threading

    def loops() -> int:
        return sum(t.name.startswith("mediamesh-sftp") for t in threading.enumerate())

    before = loops()
    for _ in range(5):
        backend = _backend(sshd, "")
        assert backend.stat("").kind is EntryKind.DIR
        backend.close()
    assert loops() == before
    backend = _backend(sshd, "")
    backend.close()  # never used: nothing to stop
    assert loops() == before
