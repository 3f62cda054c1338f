"""Thumbnails: WebP pictures of a media item in two sizes, cached in the data dir by media id, so a copy on
another device or a move needs none made again.

Images are decoded with Pillow (JPEG at a reduced scale where it can) with their EXIF orientation
applied. Videos: a frame at 10% of the duration, or later if that frame is nearly black (fades, leaders).
Audio and other kinds get a placeholder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from mediamesh.metadata.probe import IMAGE_FORMATS, open_av

SIZES = {"small": 320, "preview": 1280}
QUALITY = 80
DARK = 18  # mean luminance below this (of 255) counts as black


def cache_path(root: Path, media_id: str, size: str) -> Path:
    return root / media_id[:2] / f"{media_id}-{size}.webp"


def _save(image: Any, path: Path) -> None:
    """Write atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            image.save(out, "WEBP", quality=QUALITY, method=4)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_sizes(image: Any, root: Path, media_id: str) -> list[Path]:
    written = []
    for size, edge in sorted(SIZES.items(), key=lambda kv: -kv[1]):  # largest first, then shrink it
        copy = image.copy()
        copy.thumbnail((edge, edge))
        path = cache_path(root, media_id, size)
        _save(copy, path)
        written.append(path)
    return written


#: Pillow refuses pictures larger than this (a decompression bomb: a tiny file that decodes to gigabytes).
MAX_PIXELS = 200_000_000


def from_image(fh: BinaryIO, root: Path, media_id: str, pil_format: str) -> list[Path]:
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # above it Pillow raises DecompressionBombError
    with Image.open(fh, formats=[pil_format]) as image:  # that decoder only (never EPS and Ghostscript)
        image.draft("RGB", (SIZES["preview"], SIZES["preview"]))  # JPEG: decode at a fraction of the size
        upright = ImageOps.exif_transpose(image)
        return _write_sizes(upright.convert("RGB"), root, media_id)


def from_video(fh: BinaryIO, root: Path, media_id: str, mime: str | None) -> list[Path]:
    from PIL import ImageStat

    with open_av(fh, mime) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = (container.duration or 0) / 1_000_000
        best = None
        for fraction in (0.1, 0.3, 0.5, 0.0):
            if fraction and duration and stream.time_base:
                container.seek(int(duration * fraction / stream.time_base), stream=stream)
            elif fraction:
                continue
            else:
                container.seek(0, stream=stream)
            frame = next(container.decode(stream), None)
            if frame is None:
                continue
            picture = frame.to_image()  # type: ignore[no-untyped-call]
            if ImageStat.Stat(picture.convert("L")).mean[0] >= DARK:
                best = picture
                break
            best = best or picture
        if best is None:
            raise ValueError("no frame could be decoded")
        return _write_sizes(best.convert("RGB"), root, media_id)


PLACEHOLDER_BG, PLACEHOLDER_FG = (38, 42, 51), (170, 178, 192)


def placeholder(root: Path, kind: str, size: str) -> Path:
    """A neutral picture for audio and other media (made once). Drawn with shapes, not with a font's
    glyphs: Pillow's built-in font has no ♪, and a missing glyph showed as a box with a cross."""
    from PIL import Image, ImageDraw

    path = root / "_placeholders" / f"{kind}-{size}-v2.webp"  # v2: drawn (those made before had a box)
    if path.exists():
        return path
    edge = SIZES[size]
    width, height = edge, edge * 3 // 4
    image = Image.new("RGB", (width, height), PLACEHOLDER_BG)
    draw = ImageDraw.Draw(image)
    cx, cy, u = width // 2, height // 2, max(edge // 16, 2)  # the centre, and a unit of the drawing
    fg = PLACEHOLDER_FG
    if kind == "audio":  # a quaver: a head, a stem and a flag
        draw.ellipse((cx - 3 * u, cy + u, cx, cy + 3 * u), fill=fg)
        draw.rectangle((cx - u // 2, cy - 3 * u, cx, cy + 2 * u), fill=fg)
        draw.polygon([(cx, cy - 3 * u), (cx + 2 * u, cy - u), (cx, cy - 2 * u)], fill=fg)
    elif kind == "video":  # a play sign
        draw.polygon([(cx - 2 * u, cy - 3 * u), (cx - 2 * u, cy + 3 * u), (cx + 3 * u, cy)], fill=fg)
    elif kind == "image":  # a frame with a hill
        draw.rectangle((cx - 4 * u, cy - 3 * u, cx + 4 * u, cy + 3 * u), outline=fg, width=max(u // 2, 1))
        draw.polygon([(cx - 3 * u, cy + 2 * u), (cx - u, cy - u), (cx + 3 * u, cy + 2 * u)], fill=fg)
    else:
        draw.ellipse((cx - u, cy - u, cx + u, cy + u), fill=fg)
    _save(image, path)
    return path


def make(fh: BinaryIO, kind: str, mime: str | None, root: Path, media_id: str) -> list[Path]:
    """Thumbnails for an image or a video whose content was recognised (``mime``, from the probe); []
    for other kinds (they use a placeholder)."""
    if kind == "image" and mime in IMAGE_FORMATS:
        return from_image(fh, root, media_id, IMAGE_FORMATS[mime])
    if kind == "video":
        return from_video(fh, root, media_id, mime)
    return []
