"""The first law: an unreachable, unmounted or suddenly empty source never makes its files look deleted.

Checked before a scan walks anything (preflight) and again before anything becomes missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mediamesh.backends.base import Backend, BackendError, EntryKind


class ScanRefused(Exception):
    """The scan must not go on; the message says why in words a user can act on. ``unreachable`` holds
    the probe's error when the reason is that the source cannot be reached."""

    def __init__(self, message: str, unreachable: str | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True)
class MissingPolicy:
    ratio: float
    minimum: int

    def holds_back(self, vanishing: int, known: int) -> bool:
        """True when marking ``vanishing`` of ``known`` files missing needs an explicit confirmation."""
        return vanishing >= max(self.minimum, 1) and vanishing > self.ratio * known


def identity_changes(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Human-readable differences between the identity recorded at registration and the one seen now."""
    return [
        f"{key} was {recorded[key]!r}, now {now.get(key)!r}"
        for key in sorted(recorded)
        if now.get(key) != recorded[key]
    ]


def unmounted(recorded: Mapping[str, str], now: Mapping[str, str]) -> str | None:
    """Why a source whose folder was (or must be) a mount point is not mounted now, or None. Seen as the
    folder now lying on a file system mounted higher up (its parent's): an unmounted share shows an
    empty folder, or whatever the host left there, and neither is the share."""
    want, seen = recorded.get("mount_point"), now.get("mount_point")
    if not want or not seen or want == seen or not want.startswith(seen.rstrip("/") + "/"):
        return None
    return (
        f"not mounted: nothing is mounted at {want} (it is a folder of {seen}, {now.get('fs_type', '?')}); "
        "is the share mounted on the host?"
    )


def check_reachable(backend: Backend, recorded_identity: Mapping[str, str], name: str) -> None:
    probe = backend.probe()
    if not probe.reachable:
        raise ScanRefused(f"source {name!r} is unreachable: {probe.error}", unreachable=probe.error)
    if why := unmounted(recorded_identity, probe.identity):
        raise ScanRefused(f"source {name!r} is {why} Not scanning.", unreachable=why)
    changes = identity_changes(recorded_identity, probe.identity)
    if changes:
        raise ScanRefused(
            f"source {name!r} now shows a different filesystem than when it was registered "
            f"({'; '.join(changes)}); is the share mounted? Not scanning."
        )


def preflight(
    backend: Backend,
    recorded_identity: Mapping[str, str],
    name: str,
    top: str,
    known: int,
    allow_empty: bool = False,
) -> None:
    """Refuse to scan a source (or sub-folder) that is unreachable, not the registered filesystem, not a
    folder, or empty while the catalog knows ``known`` present files in it (unless ``allow_empty``: the user
    confirmed that the files really are gone)."""
    check_reachable(backend, recorded_identity, name)
    where = f"folder {top!r}" if top else "the source root"
    try:
        entry = backend.stat(top)
        if entry.kind is not EntryKind.DIR:
            raise ScanRefused(f"{where} of {name!r} is not a folder")
        listing = backend.list_dir(top)
    except BackendError as exc:
        raise ScanRefused(f"cannot read {where} of {name!r}: {exc}") from exc
    if not listing and known and not allow_empty:
        raise ScanRefused(
            f"{where} of {name!r} is empty, but the catalog knows {known} files there; "
            "not scanning (is the share mounted?). Nothing was marked missing. "
            "If it really is empty now, scan again with --confirm-missing."
        )
