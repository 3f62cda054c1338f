"""One leader among every server on a catalog: it alone runs the schedule, the health monitor, the
webhook sender, the watches and the task engine's reconciler, so that N servers never run N schedules.

The lock is PostgreSQL's session advisory lock, held on a connection of its own (it goes with the
connection: a leader that dies or loses the database lets go at once, and a standby takes over within
``interval`` seconds), or on SQLite an exclusive ``flock`` on a file beside the catalog (two servers on
one data dir). A leader that finds its lock gone (the connection broke) stops its duties before it
competes again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, text

from mediamesh.catalog.database import LEADER_LOCK, Catalog
from mediamesh.privatefs import create_private

log = logging.getLogger(__name__)


class Duty(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class LeaderLock:
    """Try to hold the catalog's leader lock; ``held()`` checks that it still is."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._conn: Connection | None = None
        self._fd: int | None = None

    def _lock_file(self) -> Path:
        db = self.catalog.url.database
        return Path(f"{db}.leader") if db and db != ":memory:" else Path("/nonexistent")

    def acquire(self) -> bool:
        if self.catalog.is_sqlite:
            path = self._lock_file()
            if not path.parent.is_dir():
                return True  # an in-memory catalog: one process only
            create_private(path)
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        conn = self.catalog.engine.connect()
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK}).scalar())
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def held(self) -> bool:
        if self.catalog.is_sqlite:
            return self._fd is not None or not self._lock_file().parent.is_dir()
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except Exception:
            return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file lets the lock go
            self._fd = None
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK})
                self._conn.commit()
            except Exception:  # a broken connection held nothing any more
                pass
            try:
                self._conn.invalidate()  # never back to the pool: a session lock could ride along
            finally:
                self._conn = None


class Leadership:
    """Competes for the lock every ``interval`` seconds; while it holds it, runs the duties, made fresh
    by ``duties()`` at every promotion (a duty once stopped is not started again)."""

    def __init__(self, catalog: Catalog, duties: Callable[[], list[Duty]], interval: float = 5.0) -> None:
        self.lock = LeaderLock(catalog)
        self.make_duties = duties
        self.interval = interval
        self.duties: list[Duty] = []
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Called with True on promotion and False on demotion (tests, logs).
        self.listeners: list[Callable[[bool], Any]] = []

    def start(self) -> None:
        """Returns at once; the first attempt is made before it does, so a lone server leads from the
        start."""
        self._round()
        self._thread = threading.Thread(target=self._run, name="mediamesh-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._demote()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._round()

    def _round(self) -> None:
        try:
            if self.leading.is_set():
                if not self.lock.held():
                    log.warning("lost the leader lock (the catalog connection broke): duties stop")
                    self._demote()
            elif self.lock.acquire():
                self._promote()
        except Exception:  # the database is away: the next round tries again
            log.warning("the leader lock could not be checked", exc_info=True)

    def _promote(self) -> None:
        log.info("leading: this process runs the schedule, health probes, webhooks and watches")
        self.duties = self.make_duties()
        for duty in self.duties:
            duty.start()
        self.leading.set()
        for listener in self.listeners:
            listener(True)

    def _demote(self) -> None:
        was = self.leading.is_set()
        self.leading.clear()
        for duty in reversed(self.duties):
            try:
                duty.stop()
            except Exception:
                log.warning("stopping %r failed", duty, exc_info=True)
        self.duties = []
        self.lock.release()
        if was:
            for listener in self.listeners:
                listener(False)
