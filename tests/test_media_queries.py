"""The media queries the seed names, each one call: all media of a source, media orphaned on
disconnected sources, media with one copy only, duplicates, and a search on names."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mediamesh.context import Context
from mediamesh.errors import InvalidInput
from mediamesh.services import media as media_svc
from mediamesh.services import sources as source_svc
from mediamesh.services.scans import run_scan
from tests.conftest import b3sum, write


@pytest.fixture
def two_disks(ctx: Context, tmp_path: Path) -> dict[str, str]:
    """nas19: a wedding clip (also on nas25) and an interview; nas25: a concert photo only there."""
    shared = os.urandom(4000)
    files = {
        "wedding": write(tmp_path / "nas19" / "Projects" / "Wedding-2024" / "Ceremony_A.mp4", shared),
        "interview": write(tmp_path / "nas19" / "Interviews" / "Interview Élodie.mov", 3000),
        "concert": write(tmp_path / "nas25" / "Photos" / "concert-night.jpg", 2000),
    }
    write(tmp_path / "nas25" / "Backup" / "ceremony_a_copy.mp4", shared)
    for name in ("nas19", "nas25"):
        source_svc.add_source(ctx, name, str(tmp_path / name))
        assert run_scan(ctx, name)["status"] == "completed"
    return dict(zip(files, b3sum(*files.values()).values(), strict=True))


def ids(page: dict[str, object]) -> set[str]:
    return {m["id"] for m in page["data"]}  # type: ignore[attr-defined]


def test_queries_by_source_copies_and_reachability(ctx: Context, two_disks: dict[str, str]) -> None:
    wedding, interview, concert = two_disks["wedding"], two_disks["interview"], two_disks["concert"]
    assert ids(media_svc.list_media(ctx, source="nas19")) == {wedding, interview}
    assert ids(media_svc.list_media(ctx, single_copy=True)) == {interview, concert}
    assert ids(media_svc.list_media(ctx, duplicates=True)) == {wedding}
    assert ids(media_svc.list_media(ctx, kind="image")) == {concert}
    assert media_svc.list_media(ctx, state="offline")["count"] == 0

    source_svc.set_mounted(ctx, "nas25", False)  # the NAS is disconnected
    orphaned = media_svc.list_media(ctx, state="offline")
    assert ids(orphaned) == {concert}  # the wedding clip still has a reachable copy on nas19
    assert orphaned["data"][0]["locations"][0]["state"] == "offline"
    assert ids(media_svc.list_media(ctx, state="present")) == {wedding, interview}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("wedding", {"wedding"}),  # a folder's name finds the files below it
        ("WEDD*", {"wedding"}),  # the beginning of a word, any case
        ("wedd", set()),  # without '*' a word matches whole words only
        ("ceremony", {"wedding"}),  # one media, found through either of its two copies
        ("elodie", {"interview"}),  # accents do not matter
        ("2024", {"wedding"}),
        ("concert night", {"concert"}),  # every word must be there
        ("concert wedding", set()),
        ("photos jpg", {"concert"}),
        ("nothing-like-this", set()),
    ],
)
def test_search_on_names(ctx: Context, two_disks: dict[str, str], q: str, expected: set[str]) -> None:
    if q == "elodie" and not ctx.catalog.is_sqlite:
        pytest.skip("PostgreSQL's search is accent-sensitive without the unaccent extension (documented)")
    page = media_svc.list_media(ctx, q=q)
    assert ids(page) == {two_disks[label] for label in expected}
    assert page["count"] == len(expected)


def test_search_follows_renames_and_counts_follow_scans(
    ctx: Context, two_disks: dict[str, str], tmp_path: Path
) -> None:
    assert media_svc.list_media(ctx, q="interview")["count"] == 1
    os.rename(tmp_path / "nas19" / "Interviews", tmp_path / "nas19" / "Talks")
    assert run_scan(ctx, "nas19")["files_moved"] == 1
    assert media_svc.list_media(ctx, q="talks")["count"] == 1
    assert media_svc.list_media(ctx, q="interviews")["count"] == 0  # the old folder name is gone
    source_svc.remove_source(ctx, "nas25")
    assert media_svc.list_media(ctx, q="backup")["count"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": "  ...  "}, "letter or digit"),
        ({"kind": "movie"}, "invalid kind"),
        ({"duplicates": True, "single_copy": True}, "exclude each other"),
        ({"state": "gone"}, "invalid state"),
    ],
)
def test_bad_filters_say_why(ctx: Context, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        media_svc.list_media(ctx, **kwargs)  # type: ignore[arg-type]


def test_search_pages_list_each_media_once(ctx: Context, tmp_path: Path) -> None:
    """Two copies of each clip match; pages of 3 must still list every clip exactly once, in order."""
    for i in range(7):
        data = os.urandom(1000 + i)
        write(tmp_path / "lib" / "A" / f"take {i}.mov", data)
        write(tmp_path / "lib" / "B" / f"take {i} copy.mov", data)
    write(tmp_path / "lib" / "C" / "other.mov", 500)
    source_svc.add_source(ctx, "lib", str(tmp_path / "lib"))
    run_scan(ctx, "lib")
    seen: list[str] = []
    page = media_svc.list_media(ctx, q="take", limit=3)
    assert page["count"] == 7
    while True:
        seen += [m["id"] for m in page["data"]]
        if page["next"] is None:
            break
        page = media_svc.list_media(ctx, q="take", limit=3, cursor=page["next"])
    assert len(seen) == len(set(seen)) == 7
    assert media_svc.list_media(ctx, q="copy", source="lib")["count"] == 7
    with pytest.raises(InvalidInput, match="cursor"):
        media_svc.list_media(ctx, q="take", cursor="zzz")


@pytest.mark.parametrize("expand", [64, 0])  # prefixes expanded to the index's words, or searched as such
def test_prefixes(
    ctx: Context, two_disks: dict[str, str], monkeypatch: pytest.MonkeyPatch, expand: int
) -> None:
    monkeypatch.setattr("mediamesh.catalog.search.PREFIX_WORDS", expand)
    assert ids(media_svc.list_media(ctx, q="inter*")) == {two_disks["interview"]}  # interview, interviews
    assert ids(media_svc.list_media(ctx, q="c*")) == {two_disks[k] for k in ("wedding", "concert")}
    assert ids(media_svc.list_media(ctx, q="ÉLO* interv*")) == {two_disks["interview"]}
    assert media_svc.list_media(ctx, q="zzz*")["count"] == 0


def test_counts_are_made_once_and_a_stale_one_is_recounted_in_the_background(sqlite_ctx: Context) -> None:
    import threading

    from sqlalchemy import Connection

    from mediamesh.catalog.cache import GenerationCache

    cache = GenerationCache[int](10.0)
    calls: list[int] = []
    release = threading.Event()

    def slow_count(conn: Connection) -> int:
        calls.append(1)
        release.wait(5)
        return 41 + len(calls)

    def ask(generation: int) -> int:
        with sqlite_ctx.catalog.read() as conn:
            return cache.get(sqlite_ctx.catalog, ("k",), generation, slow_count, conn)

    results: list[int] = []
    waiting = [threading.Thread(target=lambda: results.append(ask(1))) for _ in range(5)]
    for thread in waiting:
        thread.start()
    release.set()
    for thread in waiting:
        thread.join(10)
    assert results == [42] * 5 and len(calls) == 1  # five requests at once, one count
    assert ask(1) == 42 and len(calls) == 1  # fresh: reused
    release.clear()
    assert ask(2) == 42  # the catalog changed: the last count is answered at once...
    deadline = time.monotonic() + 5
    while len(calls) < 2:  # ...while one recount starts in the background
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert ask(2) == 42 and len(calls) == 2  # asked again meanwhile: still the last count, no new one
    release.set()
    deadline = time.monotonic() + 5
    while ask(2) != 43:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(calls) == 2
