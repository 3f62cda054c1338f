"""The conformance suite every backend passes against its real server.

To adopt it, subclass :class:`BackendConformance` and provide two fixtures: ``served_root``, a local folder
the server under test serves (the suite writes its files there), and ``backend``, the backend reading it.
A backend with a server may also provide ``lose_server``: a callable that kills the server, to check what
a read does when the server goes away half way.
"""

from __future__ import annotations

import os
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from mediamesh.backends.base import (
    Backend,
    BackendError,
    EntryKind,
    InvalidPathError,
    IsADirectoryError_,
    NotADirectoryError_,
    NotFoundError,
    UnreachableError,
)

CONTENT = bytes(range(256)) * 1024 + b"tail"  # 256 KiB + 4 bytes, every byte value
NFD_NAME = unicodedata.normalize("NFD", "café.jpg")


class BackendConformance:
    @pytest.fixture
    def lose_server(self) -> Callable[[], None] | None:
        return None  # no server to lose (a local folder)

    @pytest.fixture
    def tree(self, served_root: Path) -> Path:
        (served_root / "folder" / "sub").mkdir(parents=True)
        (served_root / "empty").mkdir()
        (served_root / "top.bin").write_bytes(CONTENT)
        (served_root / "folder" / "sub" / "deep.bin").write_bytes(b"deep")
        (served_root / "folder" / NFD_NAME).write_bytes(b"unicode")
        (served_root / "zero.bin").write_bytes(b"")
        os.symlink("/etc", served_root / "link-out")
        os.utime(served_root / "top.bin", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
        return served_root

    def test_list_root(self, backend: Backend, tree: Path) -> None:
        entries = {e.name: e for e in backend.list_dir("")}
        assert {"folder", "empty", "top.bin", "zero.bin"} <= set(entries)
        assert entries["folder"].kind is EntryKind.DIR
        assert entries["top.bin"].kind is EntryKind.FILE
        assert entries["top.bin"].size == len(CONTENT)
        assert entries["zero.bin"].size == 0

    def test_listing_reports_mtime_in_ns(self, backend: Backend, tree: Path) -> None:
        entry = next(e for e in backend.list_dir("") if e.name == "top.bin")
        # Some servers keep 100 ns (SMB), µs or whole seconds (SFTP v3): within what the features promise.
        assert abs(entry.mtime_ns - 1_600_000_000_123_456_789) < max(
            1_000, backend.features.mtime_precision_ns
        )

    def test_symlinks_are_not_followed(self, backend: Backend, tree: Path) -> None:
        names = {e.name: e for e in backend.list_dir("")}
        if "link-out" in names:  # a server may hide links altogether; it must never present /etc as a folder
            assert names["link-out"].kind is not EntryKind.DIR
        with pytest.raises(BackendError):
            backend.list_dir("link-out")

    def test_list_nested_and_empty(self, backend: Backend, tree: Path) -> None:
        assert [e.name for e in backend.list_dir("folder/sub")] == ["deep.bin"]
        assert backend.list_dir("empty") == []

    def test_unicode_names_round_trip(self, backend: Backend, tree: Path) -> None:
        names = [e.name for e in backend.list_dir("folder") if e.kind is EntryKind.FILE]
        assert len(names) == 1
        assert unicodedata.normalize("NFC", names[0]) == "café.jpg"
        with backend.open(f"folder/{names[0]}") as fh:
            assert fh.read() == b"unicode"

    def test_stat(self, backend: Backend, tree: Path) -> None:
        entry = backend.stat("folder/sub/deep.bin")
        assert (entry.name, entry.kind, entry.size) == ("deep.bin", EntryKind.FILE, 4)
        assert backend.stat("folder").kind is EntryKind.DIR
        assert backend.stat("").kind is EntryKind.DIR

    def test_file_ids_when_featured(self, backend: Backend, tree: Path) -> None:
        a = backend.stat("top.bin")
        b = backend.stat("folder/sub/deep.bin")
        if backend.features.file_ids:
            assert a.file_id and b.file_id and a.file_id != b.file_id
            os.rename(tree / "top.bin", tree / "renamed.bin")
            assert backend.stat("renamed.bin").file_id == a.file_id

    def test_not_found(self, backend: Backend, tree: Path) -> None:
        with pytest.raises(NotFoundError):
            backend.stat("nope.bin")
        with pytest.raises(NotFoundError):
            backend.list_dir("nope")
        with pytest.raises(NotFoundError):
            backend.open("folder/nope.bin")

    def test_not_a_directory(self, backend: Backend, tree: Path) -> None:
        with pytest.raises(NotADirectoryError_):
            backend.list_dir("top.bin")

    def test_open_a_folder(self, backend: Backend, tree: Path) -> None:
        with pytest.raises(IsADirectoryError_):
            backend.open("folder")

    def test_read_whole_and_ranges(self, backend: Backend, tree: Path) -> None:
        with backend.open("top.bin") as fh:
            assert fh.read() == CONTENT
            fh.seek(1000)
            assert fh.read(10) == CONTENT[1000:1010]
            fh.seek(len(CONTENT) - 4)
            assert fh.read(100) == b"tail"
            fh.seek(0)
            assert blake3.blake3(fh.read()).hexdigest() == blake3.blake3(CONTENT).hexdigest()

    def test_read_empty_file(self, backend: Backend, tree: Path) -> None:
        with backend.open("zero.bin") as fh:
            assert fh.read() == b""

    @pytest.mark.parametrize("bad", ["../x", "folder/../../etc/passwd", "/etc/passwd", "a\x00b"])
    def test_paths_cannot_leave_the_root(self, backend: Backend, tree: Path, bad: str) -> None:
        with pytest.raises(InvalidPathError):
            backend.stat(bad)
        with pytest.raises(InvalidPathError):
            backend.open(bad)

    def test_walk_yields_every_folder_once(self, backend: Backend, tree: Path) -> None:
        folders = [f for f, listing in backend.walk("") if not isinstance(listing, BackendError)]
        assert sorted(folders) == ["", "empty", "folder", "folder/sub"]

    def test_probe_reachable(self, backend: Backend, tree: Path) -> None:
        probe = backend.probe()
        assert probe.reachable, probe.error
        assert probe.latency_ms is not None and probe.latency_ms >= 0
        assert probe.capacity_bytes is None or probe.capacity_bytes > 0
        assert probe.identity, "a backend must say what identifies its filesystem"

    def test_never_writes(self, backend: Backend, tree: Path) -> None:
        before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in tree.rglob("*") if not p.is_symlink()}
        for _folder, listing in backend.walk(""):
            assert not isinstance(listing, BackendError)
        with backend.open("top.bin") as fh:
            fh.read()
            with pytest.raises((OSError, ValueError, BackendError)):
                fh.write(b"x")
        backend.probe()
        after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in tree.rglob("*") if not p.is_symlink()}
        assert before == after

    def test_use_from_several_threads(self, backend: Backend, tree: Path) -> None:
        """One backend is shared by probes, content and scans: eight threads at once see what one sees."""
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(5):
                    assert {"folder", "top.bin"} <= {e.name for e in backend.list_dir("")}
                    assert backend.stat("folder/sub/deep.bin").size == 4
                    with backend.open("top.bin") as fh:
                        fh.seek(5000)
                        assert fh.read(300) == CONTENT[5000:5300]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]

    def test_reuse_after_close(self, backend: Backend, tree: Path) -> None:
        """close() releases connections; the backend is usable again afterwards (it reconnects)."""
        assert backend.stat("top.bin").size == len(CONTENT)
        backend.close()
        with backend.open("top.bin") as fh:
            assert fh.read() == CONTENT
        backend.close()
        assert backend.probe().reachable

    def test_list_and_stat_agree(self, backend: Backend, tree: Path) -> None:
        """A scan lists; content and moves stat: both must report the same size, mtime and file id."""
        for entry in backend.list_dir("") + backend.list_dir("folder"):
            path = (
                entry.name if entry.name in {e.name for e in backend.list_dir("")} else f"folder/{entry.name}"
            )
            if entry.kind is EntryKind.OTHER:
                continue
            alone = backend.stat(path)
            assert (alone.kind, alone.size) == (entry.kind, entry.size), path
            if entry.kind is EntryKind.FILE:
                assert alone.mtime_ns == entry.mtime_ns, path
                assert alone.file_id == entry.file_id, path

    def test_mtime_precision_is_what_the_features_say(self, backend: Backend, tree: Path) -> None:
        precision = backend.features.mtime_precision_ns
        assert precision >= 1
        (tree / "precise.bin").write_bytes(b"p")
        set_ns = 1_700_000_000_987_654_321
        os.utime(tree / "precise.bin", ns=(set_ns, set_ns))
        seen = backend.stat("precise.bin").mtime_ns
        assert abs(seen - set_ns) < precision, (seen, set_ns, precision)
        # A change of at least the precision is always visible.
        os.utime(tree / "precise.bin", ns=(set_ns + precision, set_ns + precision))
        assert backend.stat("precise.bin").mtime_ns != seen

    def test_walk_pruning(self, backend: Backend, tree: Path) -> None:
        """A caller that removes a folder from a listing never hears of what is below it."""
        seen = []
        for folder, listing in backend.walk(""):
            seen.append(folder)
            if isinstance(listing, list):
                listing[:] = [e for e in listing if e.name != "folder"]
        assert "folder" not in seen and "folder/sub" not in seen and "empty" in seen

    def test_losing_the_server_mid_read(
        self, backend: Backend, tree: Path, lose_server: Callable[[], None] | None
    ) -> None:
        """The server goes away half way through a file: the read fails as unreachable within the
        backend's timeouts, never hangs and never returns bytes that are not the file's."""
        if lose_server is None:
            pytest.skip("this backend has no server to lose")
        big = os.urandom(1 << 20) * 24
        (tree / "big.bin").write_bytes(big)
        got = bytearray()
        started = time.monotonic()
        with pytest.raises(BackendError) as raised, backend.open("big.bin") as fh:
            got += fh.read(1 << 20)
            lose_server()
            while chunk := fh.read(1 << 20):
                got += chunk
        assert isinstance(raised.value, UnreachableError), raised.value
        assert time.monotonic() - started < 60
        assert bytes(got) == big[: len(got)] and len(got) < len(big)
