"""Random histories of a real folder, scanned after any step, with the catalog checked after every scan.

After every scan: ids equal b3sum, one row per location, unchanged content is not hashed again, and
nothing changes while the source is unmounted (it looks like an empty folder then).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from mediamesh.context import Context
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, make_settings
from tests.helpers import rows

NAMES = st.sampled_from(["a.jpg", "b.mp4", "c.wav", "d.JPG", "e.mov", "f.png"])
DIRS = st.sampled_from(["", "x", "x/y", "z"])
SIZES = st.sampled_from([0, 10, 1000, 49_153, 120_000])


class CatalogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="mm-stateful-"))
        self.root = self.tmp / "library"
        self.away = self.tmp / "away"
        self.root.mkdir()
        self.ctx = Context(make_settings(self.tmp))
        source_svc.add_source(self.ctx, "lib", str(self.root))
        self.model: dict[str, bytes] = {}  # relative path -> content, while mounted
        self.ever_indexed: set[str] = set()
        self.dirty: set[str] = set()  # paths whose content is new since the last completed scan
        self.mounted = True
        self.clock = 1_600_000_000
        self.counter = 0

    def teardown(self) -> None:
        self.ctx.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _write(self, rel: str, content: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        self.clock += 7
        os.utime(path, (self.clock, self.clock))
        self.model[rel] = content
        self.dirty.add(rel)

    def _fresh(self, folder: str, name: str) -> str:
        self.counter += 1
        stem, dot, ext = name.rpartition(".")
        rel = f"{folder}/{stem}{self.counter}{dot}{ext}" if folder else f"{stem}{self.counter}{dot}{ext}"
        return rel

    @precondition(lambda self: self.mounted)
    @rule(folder=DIRS, name=NAMES, size=SIZES)
    def add(self, folder: str, name: str, size: int) -> None:
        self._write(self._fresh(folder, name), os.urandom(size))

    @precondition(lambda self: self.mounted and self.model)
    @rule(data=st.data(), size=SIZES)
    def modify(self, data: st.DataObject, size: int) -> None:
        rel = data.draw(st.sampled_from(sorted(self.model)))
        self._write(rel, os.urandom(size))

    @precondition(lambda self: self.mounted and self.model)
    @rule(data=st.data(), folder=DIRS, name=NAMES)
    def move(self, data: st.DataObject, folder: str, name: str) -> None:
        rel = data.draw(st.sampled_from(sorted(self.model)))
        new = self._fresh(folder, name)
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.root / rel, self.root / new)  # a rename when the folder is the same
        self.model[new] = self.model.pop(rel)
        if rel in self.dirty:
            self.dirty.discard(rel)
            self.dirty.add(new)

    @precondition(lambda self: self.mounted and self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        rel = data.draw(st.sampled_from(sorted(self.model)))
        (self.root / rel).unlink()
        del self.model[rel]
        self.dirty.discard(rel)

    @precondition(lambda self: self.mounted and self.model)
    @rule(data=st.data(), folder=DIRS)
    def duplicate(self, data: st.DataObject, folder: str) -> None:
        rel = data.draw(st.sampled_from(sorted(self.model)))
        self._write(self._fresh(folder, rel.rsplit("/", 1)[-1]), self.model[rel])

    @precondition(lambda self: self.mounted)
    @rule()
    def unmount(self) -> None:
        os.rename(self.root, self.away)
        self.root.mkdir()  # the bare mount point
        self.mounted = False

    @precondition(lambda self: not self.mounted)
    @rule()
    def remount(self) -> None:
        self.root.rmdir()
        os.rename(self.away, self.root)
        self.mounted = True

    @rule()
    def scan(self) -> None:
        before = {p: (r.state, r.media_id, r.id) for p, r in rows(self.ctx).items()}
        summary = run_scan(self.ctx, "lib")
        after = rows(self.ctx)
        looks_empty = not any(self.root.iterdir())  # unmounted, or every entry gone
        if looks_empty and any(state == "present" for state, _, _ in before.values()):
            # An unmounted source, or one whose every file vanished at once, is refused, and nothing changes.
            assert summary["status"] == "failed"
            assert {p: (r.state, r.media_id, r.id) for p, r in after.items()} == before
            return
        if not self.mounted:
            # An unmounted source never changes a file's state, whatever the scan's outcome.
            assert {p: (r.state, r.media_id, r.id) for p, r in after.items()} == before
            return
        assert summary["status"] == "completed", summary
        present = {p for p, r in after.items() if r.state == "present"}
        assert present == set(self.model)
        missing = {p for p, r in after.items() if r.state == "missing"}
        assert missing <= self.ever_indexed and not missing & set(self.model)
        if self.model:
            ids = b3sum(*(self.root / p for p in sorted(self.model)))
            for p in self.model:
                assert after[p].media_id == ids[self.root / p], p
        assert len({(r.dir_key, r.name_key) for r in after.values()}) == len(after)
        budget = sum(len(self.model[p]) for p in self.dirty if p in self.model)
        assert summary["bytes_hashed"] <= budget, (summary, budget)
        self.ever_indexed |= set(self.model)
        self.dirty.clear()


def test_random_histories_keep_the_catalog_true() -> None:
    run_state_machine_as_test(
        CatalogMachine,
        settings=settings(
            max_examples=int(os.environ.get("MEDIAMESH_STATEFUL_EXAMPLES", "30")),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
