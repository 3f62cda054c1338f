"""The local backend passes the conformance suite, plus what only a local folder can show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediamesh.backends import parse_location
from mediamesh.backends.base import Backend, InvalidPathError
from mediamesh.backends.local import LocalBackend, mount_of
from mediamesh.errors import InvalidInput
from tests.backends.conformance import BackendConformance


class TestLocalConformance(BackendConformance):
    @pytest.fixture
    def served_root(self, tmp_path: Path) -> Path:
        root = tmp_path / "served"
        root.mkdir()
        return root

    @pytest.fixture
    def backend(self, served_root: Path) -> Backend:
        return LocalBackend(str(served_root))


def test_symlinked_folder_inside_root_cannot_lead_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("no")
    os.symlink(tmp_path, root / "up")
    backend = LocalBackend(str(root))
    with pytest.raises(InvalidPathError):
        backend.open("up/secret.txt")


def test_unreachable_root_is_reported_by_probe(tmp_path: Path) -> None:
    probe = LocalBackend(str(tmp_path / "not-there")).probe()
    assert not probe.reachable
    assert "not-there" in (probe.error or "")


def test_identity_names_the_mount(tmp_path: Path) -> None:
    identity = LocalBackend(str(tmp_path)).identity()
    assert identity["mount_point"] == mount_of(str(tmp_path.resolve())).mount_point
    assert identity["fs_type"]


@pytest.mark.parametrize(
    ("text", "path"),
    [("/srv/media", "/srv/media"), ("file:///srv/media/", "/srv/media"), ("file:///srv/a%20b", "/srv/a b")],
)
def test_parse_local_locations(text: str, path: str) -> None:
    loc = parse_location(text)
    assert (loc.kind, loc.display) == ("local", path)


@pytest.mark.parametrize("text", ["", "relative/path", "file://otherhost/x", "ftp://x/y", "ftp://nas/x"])
def test_parse_rejects_bad_locations(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_location(text)


def test_a_backslash_is_part_of_a_name(tmp_path: Path) -> None:
    """Linux names may hold a backslash: listed, stat'ed, opened and hashed as the name it is, never taken
    for a separator."""
    from mediamesh.backends.local import LocalBackend

    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "back\\slash.jpg").write_bytes(b"bs")
    (tmp_path / "..\\up.jpg").write_bytes(b"up")  # a name, not a way out
    backend = LocalBackend(str(tmp_path))
    assert {e.name for e in backend.list_dir("dir")} == {"back\\slash.jpg"}
    assert backend.stat("dir/back\\slash.jpg").size == 2
    with backend.open("..\\up.jpg") as fh:
        assert fh.read() == b"up"
