"""Project rules and templates: what they are, how they are checked, and how they match a location.

A rule matches a location by any mix of: a path glob (``Projects/Wedding-2024/**``, any case), sources,
media kinds, file extensions, a size range and a modification-date range. A template is a glob with one
``{project}`` in place of a folder name (``Projects/{project}/**``): each distinct folder name found
makes (and fills) a project of that name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, true

from mediamesh.catalog.schema import files, media
from mediamesh.errors import InvalidInput
from mediamesh.scanning.globs import CAPTURE, Glob, template_regex

KINDS = ("video", "image", "audio", "other")
RULE_KEYS = (
    "path",
    "sources",
    "kinds",
    "extensions",
    "min_size",
    "max_size",
    "modified_after",
    "modified_before",
)
PLACEHOLDER = "{project}"

#: Turns a source's id or name into its id (InvalidInput/NotFound for an unknown one).
SourceLookup = Callable[[str | int], int]


@dataclass(frozen=True)
class Location:
    """What a rule looks at: one location and its media's kind."""

    source_id: int
    path: str
    kind: str
    size: int
    mtime_ns: int


def _timestamp(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a date or time in ISO 8601 (2024-06-01 or 2024-06-01T12:00:00Z)")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 date or time") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _strings(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise InvalidInput(f"{field} must be a list")
    return [str(v) for v in value]


def normalise_rule(raw: Mapping[str, Any], source_id: SourceLookup) -> dict[str, Any]:
    """A rule as stored: checked, sources as ids, kinds and extensions in lower case. InvalidInput says
    what is wrong, never a crash."""
    unknown = sorted(set(raw) - set(RULE_KEYS))
    if unknown:
        raise InvalidInput(f"unknown rule field {', '.join(unknown)} (a rule takes: {', '.join(RULE_KEYS)})")
    spec: dict[str, Any] = {}
    if raw.get("path"):
        if not isinstance(raw["path"], str):
            raise InvalidInput("path must be a glob such as Projects/Wedding-2024/**")
        if PLACEHOLDER in raw["path"]:
            raise InvalidInput("{project} belongs in a template (/api/v1/project-templates), not in a rule")
        Glob(raw["path"])
        spec["path"] = raw["path"]
    if raw.get("sources"):
        spec["sources"] = sorted({source_id(s) for s in _strings(raw["sources"], "sources")})
    if raw.get("kinds"):
        kinds = sorted({k.lower() for k in _strings(raw["kinds"], "kinds")})
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise InvalidInput(f"unknown kind {', '.join(bad)} (use {', '.join(KINDS)})")
        spec["kinds"] = kinds
    if raw.get("extensions"):
        spec["extensions"] = sorted(
            {e.lower().lstrip(".") for e in _strings(raw["extensions"], "extensions")}
        )
    for field in ("min_size", "max_size"):
        if raw.get(field) is not None:
            if not isinstance(raw[field], int) or isinstance(raw[field], bool) or raw[field] < 0:
                raise InvalidInput(f"{field} must be a number of bytes, 0 or more")
            spec[field] = raw[field]
    if spec.get("min_size", 0) > spec.get("max_size", float("inf")):
        raise InvalidInput("min_size is larger than max_size")
    for field in ("modified_after", "modified_before"):
        if raw.get(field) is not None:
            spec[field] = _timestamp(raw[field], field)
    if not spec:
        raise InvalidInput("a rule needs at least one of: " + ", ".join(RULE_KEYS))
    return spec


class CompiledRule:
    """A stored rule, ready to test locations."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.path = Glob(spec["path"]) if spec.get("path") else None
        self.sources = frozenset(spec.get("sources", ()))
        self.kinds = frozenset(spec.get("kinds", ()))
        self.extensions = frozenset(spec.get("extensions", ()))
        self.min_size = spec.get("min_size")
        self.max_size = spec.get("max_size")
        after, before = spec.get("modified_after"), spec.get("modified_before")
        self.after_ns = int(datetime.fromisoformat(after).timestamp() * 1e9) if after else None
        self.before_ns = int(datetime.fromisoformat(before).timestamp() * 1e9) if before else None

    def applies_to_source(self, source_id: int) -> bool:
        return not self.sources or source_id in self.sources

    def clause(self) -> ColumnElement[bool]:
        """What SQL can decide of this rule, over ``files`` joined with ``media`` (beets' clause/match):
        every location that :meth:`matches` satisfies it; :meth:`matches` then decides the rest (the glob)
        on the few rows it leaves."""
        conds: list[ColumnElement[bool]] = []
        if self.sources:
            conds.append(files.c.source_id.in_(sorted(self.sources)))
        if self.kinds:
            conds.append(media.c.kind.in_(sorted(self.kinds)))
        if self.extensions:
            lowered = func.lower(files.c.path)
            conds.append(or_(*(lowered.endswith(f".{e}", autoescape=True) for e in sorted(self.extensions))))
        if self.min_size is not None:
            conds.append(files.c.size >= self.min_size)
        if self.max_size is not None:
            conds.append(files.c.size <= self.max_size)
        if self.after_ns is not None:
            conds.append(files.c.mtime_ns >= self.after_ns)
        if self.before_ns is not None:
            conds.append(files.c.mtime_ns < self.before_ns)
        if self.path is not None:
            conds.extend(prefix_clause(self.path.prefix))
        return and_(true(), *conds)

    def matches(self, loc: Location) -> bool:
        if self.sources and loc.source_id not in self.sources:
            return False
        if self.kinds and loc.kind not in self.kinds:
            return False
        if self.extensions and loc.path.rpartition(".")[2].lower() not in self.extensions:
            return False
        if self.min_size is not None and loc.size < self.min_size:
            return False
        if self.max_size is not None and loc.size > self.max_size:
            return False
        if self.after_ns is not None and loc.mtime_ns < self.after_ns:
            return False
        if self.before_ns is not None and loc.mtime_ns >= self.before_ns:
            return False
        return self.path is None or self.path.match(loc.path)


class CompiledTemplate:
    """``Projects/{project}/**``: the project a location belongs to, by its folder name, if any."""

    def __init__(self, path: str, sources: list[int] | None = None, kinds: list[str] | None = None) -> None:
        self.pattern = compile_template(path)
        # Anchored templates ("Projects/{project}/**") start with what comes before their first wildcard.
        before = path.split(PLACEHOLDER, maxsplit=1)[0]
        cut = min([before.index(c) for c in "*?[" if c in before] + [len(before)])
        self.prefix = before[:cut].lstrip("/") if "/" in path.strip("/") else ""
        self.sources = frozenset(sources or ())
        self.kinds = frozenset(kinds or ())

    def clause(self) -> ColumnElement[bool]:
        """What SQL can decide of this template (see CompiledRule.clause)."""
        conds: list[ColumnElement[bool]] = []
        if self.sources:
            conds.append(files.c.source_id.in_(sorted(self.sources)))
        if self.kinds:
            conds.append(media.c.kind.in_(sorted(self.kinds)))
        conds.extend(prefix_clause(self.prefix))
        return and_(true(), *conds)

    def project_of(self, loc: Location) -> str | None:
        if self.sources and loc.source_id not in self.sources:
            return None
        if self.kinds and loc.kind not in self.kinds:
            return None
        match = self.pattern.match(loc.path)
        return match.group("project") if match else None


def prefix_clause(prefix: str) -> list[ColumnElement[bool]]:
    """Paths that start with ``prefix``, compared as the globs do (case-insensitively). Only for ASCII:
    SQL's lower() folds no other letters, and a wrong narrowing would lose matches. Unicode case folding
    also matches "k" with the Kelvin sign and "s" with the long s: those letters match any one character."""
    if not prefix or not prefix.isascii():
        return []
    like = "".join("_" if c in "ks" else "\\" + c if c in "%_\\" else c for c in prefix.lower())
    return [func.lower(files.c.path).like(like + "%", escape="\\")]


def compile_template(path: str) -> re.Pattern[str]:
    if not isinstance(path, str) or path.count(PLACEHOLDER) != 1:
        raise InvalidInput(f"a template needs exactly one {PLACEHOLDER}, as in Projects/{PLACEHOLDER}/**")
    before, after = path.split(PLACEHOLDER)
    if "{" in before + after or "}" in before + after:
        raise InvalidInput(f"invalid template {path!r}: only {PLACEHOLDER} may be in braces")
    if CAPTURE in path:
        raise InvalidInput(f"invalid template {path!r}")
    return template_regex(before, after)
