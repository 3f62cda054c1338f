"""Content ids and quick fingerprints.

- The media id is the BLAKE3-256 hex digest of the whole content, exactly what ``b3sum`` prints.
- The quick fingerprint is BLAKE3 over the size and three 16 KiB samples (start, middle, end); with the
  size it lets a rename, move or remount be recognised without reading the content again. Files of up to
  three samples are read whole: their fingerprint is the start of their content hash, one hash for both.
- Large files on a local path are hashed with mmap and BLAKE3's threads, in a worker *process*: a file
  truncated while mapped (or a host-mounted share that drops) raises SIGBUS, which would kill the whole
  server if it happened in-process. A dead worker only defers that file.
"""

from __future__ import annotations

import concurrent.futures as cf
import mmap
import multiprocessing
import os
import queue
import threading
from dataclasses import dataclass
from typing import BinaryIO

import blake3

SAMPLE = 16 * 1024
WHOLE_READ_LIMIT = 3 * SAMPLE
READ_CHUNK = 1 << 20
PIPELINE_MIN = 8 << 20  # below this a reader thread costs more than it saves
MMAP_MIN = 64 << 20


@dataclass(frozen=True, slots=True)
class Digest:
    media_id: str
    quick_fp: str
    bytes_read: int


def quick_fp_of_samples(size: int, samples: bytes) -> str:
    h = blake3.blake3(size.to_bytes(8, "little"))
    h.update(samples)
    return h.hexdigest(length=16)


def read_upto(fh: BinaryIO, length: int) -> bytes:
    """Up to ``length`` bytes, fewer only at the end of the file: raw streams (an SMB file, whose every READ
    is capped by the server) may return less than asked at any time."""
    first = fh.read(length)
    if len(first) >= length or not first:
        return first
    out = bytearray(first)
    while len(out) < length:
        chunk = fh.read(length - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _read_exact_at(fh: BinaryIO, offset: int, length: int) -> bytes:
    fh.seek(offset)
    return read_upto(fh, length)


def quick_fingerprint(fh: BinaryIO, size: int) -> tuple[str, int]:
    """(fingerprint, bytes read) of an open file of the given size."""
    if size <= WHOLE_READ_LIMIT:
        digest = small_file_digest(fh, size)
        return digest.quick_fp, digest.bytes_read
    mid = (size - SAMPLE) // 2
    samples = b"".join(_read_exact_at(fh, off, SAMPLE) for off in (0, mid, size - SAMPLE))
    return quick_fp_of_samples(size, samples), len(samples)


def small_file_digest(fh: BinaryIO, size: int) -> Digest:
    """Both ids of a file small enough to read whole in one go."""
    fh.seek(0)
    data = read_upto(fh, size + 1)  # one byte more: a file that grew since it was listed is noticed
    media_id = blake3.blake3(data).hexdigest()
    return Digest(media_id, media_id[:32], len(data))


def hash_stream(fh: BinaryIO, buffer_size: int = 4 * READ_CHUNK) -> tuple[str, int]:
    """BLAKE3 of a stream from its start: (hex digest, bytes read).

    Large streams are read by a second thread into a few rotating buffers of ``buffer_size`` while this one
    hashes, so the read (network or page cache) and the hash overlap; both release the GIL.
    """
    fh.seek(0)
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    first = read_upto(fh, PIPELINE_MIN)
    h.update(first)
    total = len(first)
    if len(first) < PIPELINE_MIN:
        return h.hexdigest(), total
    free: queue.Queue[bytearray] = queue.Queue()
    full: queue.Queue[tuple[bytearray, int] | BaseException] = queue.Queue()
    for _ in range(3):
        free.put(bytearray(buffer_size))
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                buf = free.get()
                n = fh.readinto(buf)  # type: ignore[attr-defined]
                full.put((buf, n or 0))
                if not n:
                    return
        except BaseException as exc:  # handed to the hashing thread, which re-raises it
            full.put(exc)

    thread = threading.Thread(target=reader, name="mediamesh-read", daemon=True)
    thread.start()
    try:
        while True:
            item = full.get()
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            if not n:
                break
            h.update(memoryview(buf)[:n])
            total += n
            free.put(buf)
    finally:
        stop.set()
        free.put(bytearray(0))  # unblock the reader if it waits for a buffer
        thread.join()
    return h.hexdigest(), total


def _mmap_hash_worker(path: str) -> tuple[str, int, int, int]:
    """Runs in a worker process: (digest, size, mtime_ns before, mtime_ns after)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        if before.st_size:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
                h.update(mm)
        after = os.fstat(fd)
        return h.hexdigest(), before.st_size, before.st_mtime_ns, after.st_mtime_ns
    finally:
        os.close(fd)


class FileChangedError(Exception):
    """The file changed (or its reader died) while it was hashed: defer it to a later scan."""


class MmapHashPool:
    """Worker processes for hashing large local files with mmap (see the module docstring)."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> cf.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                ctx = multiprocessing.get_context("forkserver")
                self._pool = cf.ProcessPoolExecutor(self._workers, mp_context=ctx)
            return self._pool

    def hash(self, path: str, size: int, mtime_ns: int) -> str:
        pool = self._executor()
        try:
            digest, seen_size, before, after = pool.submit(_mmap_hash_worker, path).result()
        except cf.process.BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise FileChangedError(
                f"the reader died while hashing (file truncated or share lost): {path}"
            ) from exc
        if seen_size != size or before != mtime_ns or after != mtime_ns:
            raise FileChangedError(f"file changed while it was hashed: {path}")
        return str(digest)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
