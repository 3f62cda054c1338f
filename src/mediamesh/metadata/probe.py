"""What a file is, from its content: MIME type and kind from its first bytes (magic numbers, through
``filetype``), then technical metadata through PyAV (video, audio: FFmpeg reading from our file object,
so an SMB stream works without a local copy) or Pillow (images, EXIF, TIFF-based camera RAW).

Every read goes through :class:`CountingReader`, which counts what was read. FFmpeg is asked to probe
little and seeks to the index of a file (an MP4 ``moov`` at the end) instead of reading through it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

import filetype

if TYPE_CHECKING:
    from av.container import InputContainer

HEAD = 8192
# FFmpeg probes at most this much for stream parameters (its default is 5 MB).
PROBE_OPTIONS = {"probesize": "1000000", "analyzeduration": "2000000"}

#: The one FFmpeg demuxer for each container the content sniffer recognises. FFmpeg is never left to
#: guess: its guess includes playlists and scripts (concat, HLS, image sequences) that open other files
#: or URLs, which a file on a share must never make the server do.
AV_DEMUXERS = {
    "video/mp4": "mov",
    "video/quicktime": "mov",
    "video/x-m4v": "mov",
    "video/3gpp": "mov",
    "audio/mp4": "mov",
    "video/x-matroska": "matroska",
    "video/webm": "matroska",
    "video/x-msvideo": "avi",
    "video/x-ms-wmv": "asf",
    "video/mpeg": "mpeg",
    "video/x-flv": "flv",
    "audio/mpeg": "mp3",
    "audio/aac": "aac",
    "audio/ogg": "ogg",
    "audio/x-flac": "flac",
    "audio/x-wav": "wav",
    "audio/x-aiff": "aiff",
    "audio/amr": "amr",
}
#: No protocol at all for anything a demuxer would open besides our own stream (custom I/O needs none),
#: and no demuxer but the one chosen.
_LOCKED = {"protocol_whitelist": "mediamesh-none", "enable_drefs": "0"}


#: Pictures whose content Pillow decodes for a thumbnail (from the sniffed type, never the name).
IMAGE_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/x-canon-cr2": "TIFF",
}


def open_av(fh: IO[bytes], mime: str | None, options: dict[str, str] | None = None) -> InputContainer:
    """Open a file with PyAV as the container its content says, and only that; ValueError otherwise."""
    import av

    demuxer = AV_DEMUXERS.get(mime or "")
    if demuxer is None:
        raise ValueError(f"not a container mediamesh decodes: {mime or 'unrecognised content'}")
    locked = {**(options or {}), **_LOCKED, "format_whitelist": demuxer}
    return av.open(fh, mode="r", format=demuxer, options=locked)


class CountingReader(io.RawIOBase):
    """A read-only, seekable view of a file that counts the bytes read through it."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        super().__init__()
        self.fh = fh
        self.size = size
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.fh.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size if size is not None and size >= 0 else self.size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()


@dataclass
class Probe:
    mime: str | None = None
    #: From the content; None when the first bytes say nothing (the name's kind then stays).
    kind: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    codec: str | None = None
    taken_at: datetime | None = None
    camera: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def sniff(reader: CountingReader) -> tuple[str | None, str | None]:
    """(MIME type, kind) from the first bytes, (None, None) when they are not recognised; the reader is
    left at the start."""
    reader.seek(0)
    head = reader.read(HEAD)
    reader.seek(0)
    guess = filetype.guess(head)
    if guess is None:
        return None, None
    mime = str(guess.mime)
    major = mime.split("/", maxsplit=1)[0]
    kind = major if major in ("video", "image", "audio") else "other"
    if mime in ("image/x-canon-cr2", "image/tiff", "image/x-canon-cr3"):
        kind = "image"
    return mime, kind


def probe(fh: BinaryIO, size: int) -> tuple[Probe, int]:
    """Everything we learn from a file's content, and the bytes read for it. A corrupt or truncated
    file gives a Probe with ``error`` set, never an exception."""
    reader = CountingReader(fh, size)
    result = Probe()
    try:
        result.mime, result.kind = sniff(reader)
        if result.kind in ("video", "audio"):
            _probe_av(reader, result)
        elif result.kind == "image":
            _probe_image(reader, result)
    except Exception as exc:  # a damaged file must never stop a scan
        result.error = f"{type(exc).__name__}: {exc}"[:500]
    return result, reader.bytes_read


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def camera_name(make: Any, model: Any) -> str | None:
    """ "Canon EOS R5" from make "Canon" and model "Canon EOS R5" (most makers repeat it), never
    "Canon Canon EOS R5"; "Apple iPhone 15" from "Apple" and "iPhone 15"."""
    make_s, model_s = (str(p).replace("\x00", "").strip() if p else "" for p in (make, model))
    if make_s and model_s.lower().startswith(make_s.lower().split()[0]):
        return model_s
    return " ".join(p for p in (make_s, model_s) if p) or None


def _when(text: Any, offset: Any = None) -> datetime | None:
    """A capture time from tags: ISO 8601 (containers) or EXIF's ``2024:06:01 12:34:56``, with EXIF's
    ``OffsetTimeOriginal`` (``+02:00``) when the camera wrote one."""
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip().replace("\x00", "")
    zone = str(offset).replace("\x00", "").strip() if offset else ""
    if zone and len(value) == 19 and value[4] == ":" and len(zone) == 6 and zone[0] in "+-":
        value = value.replace(":", "-", 2) + zone  # "2024:06:01 12:34:56" + "+02:00": ISO with its zone
    parsers: list[Callable[[str], datetime]] = [
        lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
        lambda v: datetime.strptime(v[:19], "%Y:%m:%d %H:%M:%S"),
    ]
    for parse in parsers:
        try:
            moment = parse(value)
        except ValueError:
            continue
        if moment.year < 1900:  # 0000:00:00 placeholders
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _probe_av(reader: CountingReader, result: Probe) -> None:
    with open_av(cast(IO[bytes], reader), result.mime, PROBE_OPTIONS) as container:
        tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
        duration = container.duration / 1_000_000 if container.duration else None
        streams = []
        streams_in: list[Any] = list(container.streams)
        for stream in streams_in:
            ctx = stream.codec_context
            entry: dict[str, Any] = {"type": stream.type, "codec": ctx.name if ctx is not None else None}
            if stream.bit_rate:
                entry["bit_rate"] = stream.bit_rate
            if stream.type == "video":
                entry["width"], entry["height"] = ctx.width, ctx.height
                rate = stream.average_rate or stream.guessed_rate
                entry["frame_rate"] = round(float(rate), 3) if rate else None
            elif stream.type == "audio":
                entry["channels"] = ctx.channels
                entry["sample_rate"] = ctx.sample_rate
            streams.append(entry)
        result.info = {
            "container": container.format.name,
            "bit_rate": container.bit_rate or None,
            "streams": streams,
            "tags": tags,
        }
    video = next((s for s in streams if s["type"] == "video"), None)
    audio = next((s for s in streams if s["type"] == "audio"), None)
    if video is None and audio is not None:
        result.kind = "audio"
    first = video or audio
    result.codec = first["codec"] if first else None
    if video is not None:
        result.width, result.height = video.get("width") or None, video.get("height") or None
    result.duration = _number(duration)
    result.taken_at = _when(tags.get("creation_time") or tags.get("date"))
    make, model = tags.get("make") or tags.get("com.apple.quicktime.make"), tags.get("model")
    result.camera = camera_name(make, model)


EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, ORIENTATION, DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL, LENS_MODEL = 0x9003, 0x9011, 0xA434


def _gps(gps: Any) -> dict[str, float] | None:
    def degrees(values: Any, ref: Any) -> float | None:
        try:
            d, m, s = (float(v) for v in values)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        sign = -1 if str(ref).upper() in ("S", "W") else 1
        return round(sign * (d + m / 60 + s / 3600), 7)

    lat, lon = degrees(gps.get(2), gps.get(1)), degrees(gps.get(4), gps.get(3))
    if lat is None or lon is None:
        return None
    return {"latitude": lat, "longitude": lon}


def _probe_image(reader: CountingReader, result: Probe) -> None:
    from PIL import Image

    pil_format = IMAGE_FORMATS.get(result.mime or "")
    if pil_format is None:
        return  # recognised as a picture (HEIC, PSD, ...), but not one Pillow is let to decode
    with Image.open(cast(IO[bytes], reader), formats=[pil_format]) as image:  # reads the header only
        width, height = image.size
        exif = image.getexif()
        detail = exif.get_ifd(EXIF_IFD)
        orientation = int(exif.get(ORIENTATION) or 1)
        if orientation in (5, 6, 7, 8):  # shown rotated by a quarter turn
            width, height = height, width
        result.width, result.height = width, height
        original = detail.get(DATETIME_ORIGINAL)
        result.taken_at = _when(
            original or exif.get(DATETIME), detail.get(OFFSET_TIME_ORIGINAL) if original else None
        )
        result.camera = camera_name(exif.get(MAKE), exif.get(MODEL))
        info: dict[str, Any] = {"format": image.format, "mode": image.mode, "orientation": orientation}
        if detail.get(LENS_MODEL):
            info["lens"] = str(detail.get(LENS_MODEL)).strip()
        gps = _gps(exif.get_ifd(GPS_IFD))
        if gps is not None:
            info["gps"] = gps
        result.info = info
