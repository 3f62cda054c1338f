"""Keys that make one row per location however a source spells a name.

macOS and Synology hand out names in NFD; Linux tools in NFC. On a case-insensitive source, ``IMG.JPG``
and ``img.jpg`` are one file. The key is what rows are matched on; the spelling is kept for display and
for opening the file.
"""

from __future__ import annotations

import unicodedata


def name_key(name: str, case_insensitive: bool) -> str:
    if not name.isascii() and not unicodedata.is_normalized("NFC", name):
        name = unicodedata.normalize("NFC", name)
    return name.casefold() if case_insensitive else name


def path_key(path: str, case_insensitive: bool) -> str:
    return "/".join(name_key(part, case_insensitive) for part in path.split("/")) if path else ""


def under(prefix_key: str) -> tuple[str, str]:
    """The half-open key range ``[lo, hi)`` of everything strictly below a folder key (``'/'`` + 1 = ``'0'``)."""
    return f"{prefix_key}/", f"{prefix_key}0"
