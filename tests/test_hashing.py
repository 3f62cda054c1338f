"""Content ids equal b3sum's for every read path; quick fingerprints see size and samples."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from mediamesh.scanning.hashing import (
    PIPELINE_MIN,
    SAMPLE,
    FileChangedError,
    MmapHashPool,
    hash_stream,
    quick_fingerprint,
    small_file_digest,
)
from tests.conftest import b3sum, write


@pytest.mark.parametrize(
    "size", [0, 1, SAMPLE * 3, SAMPLE * 3 + 1, PIPELINE_MIN - 1, PIPELINE_MIN, 3 * PIPELINE_MIN + 5]
)
def test_hash_stream_equals_b3sum(tmp_path: Path, size: int) -> None:
    f = write(tmp_path / "f.bin", size)
    with open(f, "rb", buffering=0) as fh:
        digest, read = hash_stream(fh)
    assert (digest, read) == (b3sum(f)[f], size)


def test_small_file_digest_agrees_with_quick_fingerprint(tmp_path: Path) -> None:
    f = write(tmp_path / "f.bin", 1000)
    with open(f, "rb") as fh:
        d = small_file_digest(fh, 1000)
        qfp, read = quick_fingerprint(fh, 1000)
    assert d.media_id == b3sum(f)[f] and d.quick_fp == qfp and read == 1000


def test_quick_fingerprint_reads_three_samples_and_sees_them() -> None:
    data = bytearray(b"\x00" * 1_000_000)
    base, read = quick_fingerprint(io.BytesIO(bytes(data)), len(data))
    assert read == 3 * SAMPLE
    data[len(data) // 2] = 1  # inside the middle sample
    changed, _ = quick_fingerprint(io.BytesIO(bytes(data)), len(data))
    longer, _ = quick_fingerprint(io.BytesIO(bytes(data) + b"\x00"), len(data) + 1)
    assert len({base, changed, longer}) == 3


def test_mmap_pool_hashes_and_notices_a_changed_file(tmp_path: Path) -> None:
    f = write(tmp_path / "big.bin", 5_000_000)
    st = f.stat()
    pool = MmapHashPool(1)
    try:
        assert pool.hash(str(f), st.st_size, st.st_mtime_ns) == b3sum(f)[f]
        with pytest.raises(FileChangedError):
            pool.hash(str(f), st.st_size + 1, st.st_mtime_ns)
    finally:
        pool.close()


class ShortReads(io.RawIOBase):
    """A stream that never returns more than 1000 bytes a read, as a raw network file may."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._data.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("size", [10, 5000, PIPELINE_MIN + 12345])
def test_short_reads_are_not_taken_for_the_end(tmp_path: Path, size: int) -> None:
    f = write(tmp_path / "f.bin", size)
    data = f.read_bytes()
    digest, read = hash_stream(ShortReads(data))  # type: ignore[arg-type]
    assert (digest, read) == (b3sum(f)[f], size)
    if size <= 3 * SAMPLE:
        assert small_file_digest(ShortReads(data), size).media_id == digest  # type: ignore[arg-type]
