"""What gets indexed: media by default, NAS housekeeping never, plus per-source include/exclude globs.

Glob rules (case-insensitive, as NAS users expect):
- ``*`` matches within one path segment, ``**`` any number of segments, ``?`` one character,
  ``[abc]`` a class.
- A pattern with no ``/`` matches a name at any depth (``*.tmp``, ``Proxies``); one with a ``/`` is
  anchored at the source root (``Projects/*/Exports/**``).
- Globs match in linear time whatever they hold (see scanning/globs.py).
- Excludes always win. When include globs are given they replace the media-type default: a file is
  indexed when it matches one of them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from mediamesh.scanning.globs import GlobSet

VIDEO = {
    "mp4",
    "m4v",
    "mov",
    "qt",
    "mkv",
    "webm",
    "avi",
    "wmv",
    "asf",
    "flv",
    "mpg",
    "mpeg",
    "m2v",
    "mts",
    "m2ts",
    "ts",
    "vob",
    "3gp",
    "3g2",
    "mxf",
    "ogv",
    "dv",
    "r3d",
    "braw",
    "insv",
    "lrv",
}
IMAGE = {
    "jpg",
    "jpeg",
    "jpe",
    "png",
    "gif",
    "bmp",
    "tif",
    "tiff",
    "webp",
    "heic",
    "heif",
    "avif",
    "jxl",
    "psd",
    "svg",
    "exr",
    "dpx",
    "tga",
    # camera RAW
    "dng",
    "cr2",
    "cr3",
    "crw",
    "nef",
    "nrw",
    "arw",
    "srf",
    "sr2",
    "raf",
    "orf",
    "rw2",
    "rwl",
    "pef",
    "srw",
    "x3f",
    "3fr",
    "fff",
    "iiq",
    "erf",
    "mef",
    "mos",
    "kdc",
    "dcr",
    "mrw",
}
AUDIO = {
    "mp3",
    "m4a",
    "m4b",
    "aac",
    "flac",
    "alac",
    "wav",
    "wave",
    "aif",
    "aiff",
    "aifc",
    "ogg",
    "oga",
    "opus",
    "wma",
    "ape",
    "wv",
    "mka",
    "dsf",
    "dff",
    "mid",
    "midi",
    "amr",
    "caf",
}
KIND_BY_EXTENSION = {
    ext: kind for kind, exts in (("video", VIDEO), ("image", IMAGE), ("audio", AUDIO)) for ext in exts
}

#: NAS, OS and recycle-bin housekeeping, never indexed (matched on names, case-insensitively).
HOUSEKEEPING = (
    "@eaDir",
    "#recycle",
    "#snapshot",
    ".stversions",
    "$RECYCLE.BIN",
    ".Trash-*",
    "._*",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "System Volume Information",
    ".@__thumb",
    "@Recycle",
    ".AppleDouble",
    ".Spotlight-V100",
    ".fseventsd",
    ".TemporaryItems",
    ".snapshot",
    "lost+found",
)
_HOUSEKEEPING_RE = re.compile("|".join(fnmatch.translate(h) for h in HOUSEKEEPING), re.IGNORECASE)


def kind_of(name: str) -> str | None:
    """The media kind a file name suggests, or None when it is not media."""
    _, dot, ext = name.rpartition(".")
    return KIND_BY_EXTENSION.get(ext.lower()) if dot else None


def validate_globs(patterns: Iterable[str]) -> list[str]:
    patterns = list(patterns)
    GlobSet(patterns)
    return patterns


@dataclass(frozen=True)
class PathFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @cached_property
    def _include(self) -> Callable[[str], object] | None:
        return GlobSet(self.include).matcher()

    @cached_property
    def _exclude(self) -> Callable[[str], object] | None:
        return GlobSet(self.exclude).matcher()

    @cached_property
    def _exclude_dirs(self) -> Callable[[str], object] | None:
        # "Proxies/**" excludes the folder "Proxies" itself: prune it instead of walking it.
        return GlobSet(p[:-3] for p in self.exclude if p.endswith("/**") and len(p) > 3).matcher()

    @staticmethod
    def _housekeeping(name: str) -> bool:
        return _HOUSEKEEPING_RE.match(name) is not None

    def skip_dir(self, relpath: str, name: str) -> bool:
        if self._housekeeping(name):
            return True
        return any(m is not None and m(relpath) for m in (self._exclude, self._exclude_dirs))

    def kind_for(self, relpath: str, name: str) -> str | None:
        """The kind to index a file as, or None to leave it out."""
        if self._housekeeping(name):
            return None
        if self._exclude is not None and self._exclude(relpath):
            return None
        kind = kind_of(name)
        if self._include is not None:
            return (kind or "other") if self._include(relpath) else None
        return kind
