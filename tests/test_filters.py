"""What gets indexed: media kinds, NAS housekeeping and glob semantics."""

from __future__ import annotations

import pytest

from mediamesh.errors import InvalidInput
from mediamesh.scanning.filters import PathFilter, kind_of
from mediamesh.scanning.names import name_key, path_key


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.MP4", "video"),
        ("b.cr3", "image"),
        ("c.NEF", "image"),
        ("d.flac", "audio"),
        ("e.txt", None),
        ("noext", None),
        ("x.heic", "image"),
        ("y.braw", "video"),
    ],
)
def test_kinds(name: str, kind: str | None) -> None:
    assert kind_of(name) == kind


@pytest.mark.parametrize(
    "name", ["@eaDir", "#recycle", "#snapshot", ".stversions", "$RECYCLE.BIN", ".Trash-1000", ".DS_Store"]
)
def test_housekeeping_folders_are_pruned(name: str) -> None:
    assert PathFilter().skip_dir(f"x/{name}", name)


@pytest.mark.parametrize("name", ["._clip.mp4", "Thumbs.db", ".DS_Store"])
def test_housekeeping_files_are_left_out(name: str) -> None:
    assert PathFilter(include=("**",)).kind_for(name, name) is None


def test_exclude_by_name_at_any_depth_and_anchored() -> None:
    f = PathFilter(exclude=("*.tmp.mp4", "Proxies/**", "Archive/Old"))
    assert f.kind_for("a/b/c.tmp.mp4", "c.tmp.mp4") is None
    assert f.kind_for("a/b/c.mp4", "c.mp4") == "video"
    assert f.skip_dir("Proxies", "Proxies") and f.skip_dir("x/Proxies", "Proxies")
    assert f.skip_dir("Archive/Old", "Old") and not f.skip_dir("x/Archive/Old", "Old")


def test_include_replaces_the_media_default_and_is_case_insensitive() -> None:
    f = PathFilter(include=("projects/*/**",))
    assert f.kind_for("Projects/A/edit.XML", "edit.XML") == "other"
    assert f.kind_for("Projects/A/x/cut.mov", "cut.mov") == "video"
    assert f.kind_for("Projects/top.mov", "top.mov") is None
    assert f.kind_for("Other/cut.mov", "cut.mov") is None


@pytest.mark.parametrize("bad", ["", "[abc", "a\x00b"])
def test_invalid_globs_are_input_errors(bad: str) -> None:
    with pytest.raises(InvalidInput):
        PathFilter(exclude=(bad,)).kind_for("x", "x")


def test_name_keys() -> None:
    nfd = "Cre\u0300me"
    assert name_key(nfd, False) == "Crème" == name_key("Crème", False)
    assert name_key("IMG.JPG", True) == name_key("img.jpg", True)
    assert name_key("IMG.JPG", False) != name_key("img.jpg", False)
    assert path_key("A/Cre\u0300me", True) == "a/crème"
