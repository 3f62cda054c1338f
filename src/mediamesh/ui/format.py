"""How the pages show numbers, sizes, times and paths (Jinja filters)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def size(value: int | float | None) -> str:
    if value is None:
        return "–"
    amount = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(amount) < 1000 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} PB"  # pragma: no cover - the loop always returns


def number(value: int | float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def took(seconds: float | None) -> str:
    """How long something ran: "0.4 s" under a minute, then as a duration."""
    if seconds is None:
        return "–"
    return f"{seconds:.1f} s" if seconds < 60 else duration(seconds)


def ago(value: str | None) -> str:
    """ "3 min ago" for an ISO time (the exact time is in the element's title)."""
    if not value:
        return "never"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for limit, unit, div in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600), (float("inf"), "d", 86400)):
        if seconds < limit:
            amount = f"{seconds / div:.0f} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return value  # pragma: no cover


def when(value: str | None) -> str:
    """An ISO time shown to the minute, in UTC."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.utcoffset() is not None else "")


def basename(path: str | None) -> str:
    return (path or "").rstrip("/").rsplit("/", 1)[-1]


def rate(value: float | None, per: str = "files/s") -> str:
    return "–" if value is None else f"{value:,.0f} {per}"


def first_name(item: dict[str, Any]) -> str:
    """A media item's name: its first present location's file name (or any location's)."""
    locations = item.get("locations") or []
    present = [loc for loc in locations if loc["state"] == "present"] or locations
    return basename(present[0]["path"]) if present else item["id"][:12]


def _stream(entry: dict[str, Any]) -> str:
    parts = [str(entry.get("codec") or "?")]
    if entry.get("width"):
        parts.append(f"{entry['width']}×{entry.get('height')}")
    if entry.get("frame_rate"):
        parts.append(f"{entry['frame_rate']:g} fps")
    if entry.get("channels"):
        parts.append(f"{entry['channels']} ch")
    if entry.get("sample_rate"):
        parts.append(f"{entry['sample_rate'] / 1000:g} kHz")
    if entry.get("bit_rate"):
        parts.append(f"{entry['bit_rate'] / 1000:.0f} kb/s")
    return " · ".join(parts)


def technical(info: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What the extract stage read, as label and text (a person does not need ffmpeg's raw names)."""
    if not info:
        return []
    lines: list[tuple[str, str]] = []
    if info.get("bit_rate"):
        lines.append(("Bit rate", f"{info['bit_rate'] / 1000:.0f} kb/s"))
    for entry in info.get("streams") or []:
        if isinstance(entry, dict):
            lines.append((f"{str(entry.get('type', 'other')).capitalize()} stream", _stream(entry)))
    if info.get("format"):
        lines.append(("Format", str(info["format"])))
    if info.get("lens"):
        lines.append(("Lens", str(info["lens"])))
    gps = info.get("gps")
    if isinstance(gps, dict) and gps.get("latitude") is not None:
        lines.append(("Location", f"{gps['latitude']:.5f}, {gps.get('longitude', 0):.5f}"))
    return lines


FILTERS: dict[str, Callable[..., Any]] = {
    "size": size,
    "number": number,
    "duration": duration,
    "took": took,
    "ago": ago,
    "when": when,
    "basename": basename,
    "rate": rate,
    "media_name": first_name,
    "technical": technical,
}
