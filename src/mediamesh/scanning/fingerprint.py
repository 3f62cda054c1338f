"""Stage 3, fingerprint: decide what each changed or new file is, reading as little as possible.

- A new name whose file id, size and mtime match a known row whose old path is gone is that row moved:
  0 bytes read. Without file ids, the quick fingerprint (size + 3 samples) must match instead.
- Otherwise the whole content is hashed. A file modified within the settle time, or whose size or mtime
  changes while it is read, is deferred to a later scan rather than indexed half-written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy import select

from mediamesh.backends.base import Backend, BackendError, Entry, NotFoundError, UnreachableError
from mediamesh.catalog import Catalog
from mediamesh.catalog.schema import files, media
from mediamesh.scanning.hashing import (
    MMAP_MIN,
    WHOLE_READ_LIMIT,
    FileChangedError,
    MmapHashPool,
    hash_stream,
    quick_fingerprint,
    small_file_digest,
)
from mediamesh.scanning.model import Action, KnownFile, Outcome, Result, Work

KNOWN_COLUMNS = (
    files.c.id,
    files.c.path,
    files.c.dir_key,
    files.c.name_key,
    files.c.size,
    files.c.mtime_ns,
    files.c.file_id,
    files.c.quick_fp,
    files.c.media_id,
    files.c.state,
)


class Fingerprinter:
    """Thread-safe: ``process`` runs on the scan's worker threads."""

    def __init__(
        self,
        catalog: Catalog,
        backend: Backend,
        source_id: int,
        settle_seconds: float,
        mmap_pool: MmapHashPool | None,
        clock: Callable[[], float] = time.time,
        lookup_content: bool = True,
    ) -> None:
        self.catalog = catalog
        self.backend = backend
        self.source_id = source_id
        self.settle_ns = int(settle_seconds * 1e9)
        self.mmap_pool = mmap_pool if backend.features.local_paths else None
        self.clock = clock
        #: False when the source had no rows when the scan began: nothing can have moved, skip the look-ups.
        self.lookup_content = lookup_content
        self._claimed: set[int] = set()
        self._claim_lock = threading.Lock()

    def process_many(self, works: list[Work]) -> list[Outcome]:
        return [self.process(w) for w in works]

    def process(self, work: Work) -> Outcome:
        try:
            return self._process(work)
        except UnreachableError:
            raise
        except FileChangedError as exc:
            return Outcome(Result.DEFER, work, error=str(exc))
        except (BackendError, OSError) as exc:
            return Outcome(Result.ERROR, work, error=str(exc))

    def _process(self, work: Work) -> Outcome:
        entry = work.entry
        if work.action is Action.TOUCH:
            return Outcome(Result.TOUCH, work)
        if self._settling(entry):
            return Outcome(Result.DEFER, work)
        if work.candidates:
            moved = self._claim(work, work.candidates, "file_id")
            if moved is not None:
                return Outcome(Result.MOVE, work, moved.media_id, moved.quick_fp, moved)
        with self.backend.open(work.path) as fh:
            if entry.size <= WHOLE_READ_LIMIT:
                digest = small_file_digest(fh, entry.size)
                self._check_unchanged(fh, work)
                if work.action is Action.NEW and self.lookup_content:
                    moved = self._claim_move(work, digest.quick_fp, digest.media_id)
                    if moved is not None:
                        return Outcome(
                            Result.MOVE, work, digest.media_id, digest.quick_fp, moved, 0, digest.bytes_read
                        )
                return self._hashed(
                    work, digest.media_id, digest.quick_fp, digest.bytes_read, digest.bytes_read
                )
            qfp, sampled = quick_fingerprint(fh, entry.size)
            if work.action is Action.NEW and self.lookup_content:
                moved = self._claim_move(work, qfp)
                if moved is not None:
                    self._check_unchanged(fh, work)
                    return Outcome(Result.MOVE, work, moved.media_id, qfp, moved, 0, sampled)
            if work.action is Action.VERIFY and work.known is not None and qfp == work.known.quick_fp:
                self._check_unchanged(fh, work)
                return Outcome(Result.TOUCH, work, work.known.media_id, qfp, None, 0, sampled)
            media_id, hashed, read = self._hash(fh, work)
            self._check_unchanged(fh, work)
            return self._hashed(work, media_id, qfp, hashed, read + sampled)

    def _hashed(self, work: Work, media_id: str, qfp: str, hashed: int, read: int) -> Outcome:
        known = work.known
        if work.action is Action.NEW or known is None:
            return Outcome(Result.INSERT, work, media_id, qfp, None, hashed, read)
        if known.media_id == media_id:
            # Same content (touched, or a remount): only bookkeeping changes.
            return Outcome(Result.TOUCH, work, media_id, qfp, None, hashed, read)
        return Outcome(Result.UPDATE, work, media_id, qfp, None, hashed, read)

    def _settling(self, entry: Entry) -> bool:
        age_ns = int(self.clock() * 1e9) - entry.mtime_ns
        # A future mtime is a drifting clock, not a write in progress: the stability check covers it.
        return 0 <= age_ns < self.settle_ns

    def _hash(self, fh: BinaryIO, work: Work) -> tuple[str, int, int]:
        """(content id, bytes hashed, bytes read here). The file is hashed where it is when the backend
        can (0 bytes read); the stat after it (_check_unchanged) catches a change meanwhile either way."""
        size = work.entry.size
        if self.mmap_pool is not None and size >= MMAP_MIN:
            local = self.backend.local_path(work.path)
            if local is not None:
                return self.mmap_pool.hash(local, size, work.entry.mtime_ns), size, size
        remote = self.backend.content_hash(work.path, size)
        if remote is not None and not self._names_known_media(remote):
            return remote, size, 0
        digest, read = hash_stream(fh, self.backend.read_size)
        if read != size:
            raise FileChangedError(f"read {read} bytes of a {size}-byte file: it changed while it was read")
        return digest, read, read

    def _names_known_media(self, media_id: str) -> bool:
        """A content id computed by the server is the server's word: one that names media already in the
        catalog is checked by reading the file here, so that no server can make its file a copy of media
        that other sources hold (and then serve its bytes for it)."""
        with self.catalog.read() as conn:
            return conn.execute(select(media.c.id).where(media.c.id == media_id)).first() is not None

    def _check_unchanged(self, fh: BinaryIO, work: Work) -> None:
        """The file must still have the size and mtime it was listed with after it was read. Asked of the
        backend (an open local file answers fstat; an SMB file closes and reports). The last use of ``fh``."""
        size, mtime_ns = self.backend.close_and_stat(fh, work.path)
        if size != work.entry.size or mtime_ns != work.entry.mtime_ns:
            raise FileChangedError(f"file changed while it was read: {work.path}")

    def _claim_move(self, work: Work, quick_fp: str, media_id: str | None = None) -> KnownFile | None:
        """A known row of this source with the same size and samples (and content, when known)."""
        query = select(*KNOWN_COLUMNS).where(
            files.c.source_id == self.source_id, files.c.size == work.entry.size, files.c.quick_fp == quick_fp
        )
        if media_id is not None:
            query = query.where(files.c.media_id == media_id)
        with self.catalog.read() as conn:
            candidates = [KnownFile(*tuple(row)) for row in conn.execute(query.limit(16))]
        return self._claim(work, candidates, "quick_fp")

    def _claim(self, work: Work, candidates: list[KnownFile], by: str) -> KnownFile | None:
        """The first candidate whose old location is gone, claimed so that no other name takes it too."""
        for row in candidates:
            if (row.dir_key, row.name_key) == (work.dir_key, work.name_key):
                continue
            if not self._gone(row, by):
                continue  # still there: this name is a copy, not a move
            with self._claim_lock:
                if row.id in self._claimed:
                    continue
                self._claimed.add(row.id)
            return row
        return None

    def _gone(self, row: KnownFile, by: str) -> bool:
        try:
            now = self.backend.stat(row.path)
        except NotFoundError:
            return True
        # Something else stands at the old path now (a different file): the old one moved away.
        if by == "file_id":
            return now.file_id != row.file_id
        return False
