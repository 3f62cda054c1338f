"""Path globs that match in time linear in the path, whatever the pattern (no ReDoS from a read token).

A glob is cut into ``/``-separated segments. A segment is ``**`` (any number of folders) or a pattern of
literals, ``?``, ``[classes]`` and ``*`` that never crosses a ``/``. Within one segment every ``*`` but
the last is an atomic, leftmost search (``(?>[^/]*?chunk)``): the classic wildcard algorithm, correct
because a ``*`` can absorb any character of its segment, so the earliest occurrence of the next chunk is
never worse than a later one. The regular-expression engine therefore never backtracks inside a segment,
and a segment has at most one way to end before its ``/``.

What is left is ``**``: with at most one ``**`` that is not the trailing ``/**``, the whole glob is one
Python regular expression whose only backtracking point is that ``**`` (at most one try per ``/`` of the
path). With more, the glob is run as a small automaton over segments (a set of positions in the glob per
path segment), which is O(segments of the path x segments of the glob) and never exponential.

Limits keep every glob small: :data:`MAX_LENGTH` characters and :data:`MAX_WILDCARDS` wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mediamesh.errors import InvalidInput

MAX_LENGTH = 512
MAX_WILDCARDS = 32
#: Stands for ``{project}`` in a template: a capturing ``[^/]+`` inside its segment.
CAPTURE = "\ue000"
_FLAGS = re.IGNORECASE | re.DOTALL


def _class_end(body: str, start: int, pattern: str) -> int:
    """The index of the ``]`` closing the class opened at ``start`` (fnmatch rules: a ``]`` right after
    ``[`` or ``[!`` is a literal)."""
    i = start + 1
    if i < len(body) and body[i] in "!^":
        i += 1
    if i < len(body) and body[i] == "]":
        i += 1
    end = body.find("]", i)
    if end < 0:
        raise InvalidInput(f"invalid glob {pattern!r}: '[' opens a class that is never closed with ']'")
    return end


def _class_regex(inner: str, pattern: str) -> str:
    negate = inner[:1] in ("!", "^")
    if negate:
        inner = inner[1:]
    if not inner:
        raise InvalidInput(f"invalid glob {pattern!r}: an empty character class '[]'")
    out = []
    i = 0
    while i < len(inner):
        if i + 2 < len(inner) and inner[i + 1] == "-":
            lo, hi = inner[i], inner[i + 2]
            if lo > hi:
                raise InvalidInput(f"invalid glob {pattern!r}: the range {lo}-{hi} is backwards")
            out.append(f"{re.escape(lo)}-{re.escape(hi)}")
            i += 3
        else:
            out.append(re.escape(inner[i]))
            i += 1
    # A class never matches "/": a folder boundary is only ever crossed by "**".
    return f"[^/{''.join(out)}]" if negate else f"(?!/)[{''.join(out)}]"


def _items(segment: str, pattern: str) -> list[str]:
    """A segment as a list of single-character regexes, ``*`` (a star) and :data:`CAPTURE`."""
    items: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            if not items or items[-1] != "*":  # "**" inside a segment is one "*"
                items.append("*")
            i += 1
        elif c == "?":
            items.append("[^/]")
            i += 1
        elif c == "[":
            end = _class_end(segment, i, pattern)
            items.append(_class_regex(segment[i + 1 : end], pattern))
            i = end + 1
        elif c == CAPTURE:
            items.append(CAPTURE)
            i += 1
        else:
            items.append(re.escape(c))
            i += 1
    return items


def _segment_regex(segment: str, pattern: str) -> str:
    """One segment: leftmost atomic searches for every chunk but the last, which is anchored at the end."""
    items = _items(segment, pattern)
    if CAPTURE in items:
        # A template's one capture: plain backtracking, bounded by the length of one name.
        return "".join(
            "(?P<project>[^/]+)" if it == CAPTURE else "[^/]*" if it == "*" else it for it in items
        )
    chunks: list[list[str]] = [[]]
    for it in items:
        if it == "*":
            chunks.append([])
        else:
            chunks[-1].append(it)
    if len(chunks) == 1:
        return "".join(chunks[0])
    first, *middle, last = ("".join(c) for c in chunks)
    searches = "".join(f"(?>[^/]*?{chunk})" for chunk in middle if chunk)
    tail = f"[^/]*{last}" if last else "[^/]*+"
    return first + searches + tail


@dataclass(frozen=True, slots=True)
class _Plan:
    anchored: bool
    segments: tuple[str, ...]  # "**" or a segment glob
    tail: bool  # ends in "/**": one or more further segments, anything in them

    @property
    def globstars(self) -> int:
        """The ``**`` that a regular expression would backtrack over (a last one takes what is left)."""
        inner = self.segments[:-1] if self.segments[-1] == "**" else self.segments
        return sum(seg == "**" for seg in inner)


def _plan(pattern: str) -> _Plan:
    if not isinstance(pattern, str) or not pattern or "\x00" in pattern:
        raise InvalidInput(f"invalid glob {pattern!r}: it must be a non-empty pattern")
    if len(pattern) > MAX_LENGTH:
        raise InvalidInput(f"a glob may be at most {MAX_LENGTH} characters long")
    if sum(pattern.count(c) for c in "*?[") > MAX_WILDCARDS:
        raise InvalidInput(f"a glob may have at most {MAX_WILDCARDS} wildcards ('*', '?', '[')")
    body = pattern.strip("/")
    if not body:
        raise InvalidInput(f"invalid glob {pattern!r}: it matches nothing")
    anchored = "/" in body
    parts = [p for p in body.split("/") if p]
    segments: list[str] = []
    for part in parts:
        if part == "**" and segments and segments[-1] == "**":
            continue  # "**/**" is "**"
        segments.append(part)
    tail = len(segments) > 1 and segments[-1] == "**"
    if tail:
        segments.pop()
    if not anchored and segments[0] != "**":
        segments.insert(0, "**")  # a pattern without "/" matches a name at any depth
    return _Plan(anchored, tuple(segments), tail)


def _as_regex(plan: _Plan, pattern: str) -> str:
    out: list[str] = []
    for i, seg in enumerate(plan.segments):
        last = i == len(plan.segments) - 1
        if seg == "**":
            out.append(".*" if last else "(?:.*/)?")
        else:
            out.append(_segment_regex(seg, pattern) + ("" if last else "/"))
    return "".join(out) + ("/.*" if plan.tail else "")


class Glob:
    """One compiled glob: :meth:`match` a ``/``-separated relative path (case-insensitively)."""

    __slots__ = ("_automaton", "_regex", "pattern", "prefix", "source")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        plan = _plan(pattern)
        #: What every matching path starts with (compared case-insensitively): lets a query narrow the
        #: rows before the glob itself runs (``"Projects/2024/*.mov"`` -> ``"Projects/2024/"``).
        self.prefix = _literal_prefix(plan)
        self._regex: re.Pattern[str] | None = None
        self._automaton: tuple[tuple[re.Pattern[str] | None, ...], bool] | None = None
        #: The expression itself when one is used (a GlobSet joins several into one).
        self.source: str | None = None
        try:
            if plan.globstars <= 1:
                self.source = _as_regex(plan, pattern)
                self._regex = re.compile(self.source + r"\Z", _FLAGS)
            else:
                steps = tuple(
                    None if seg == "**" else re.compile(_segment_regex(seg, pattern) + r"\Z", _FLAGS)
                    for seg in plan.segments
                )
                self._automaton = (steps, plan.tail)
        except re.error as exc:
            raise InvalidInput(f"invalid glob {pattern!r}: {exc}") from None

    def match(self, path: str) -> bool:
        if self._regex is not None:
            return self._regex.match(path) is not None
        assert self._automaton is not None
        steps, tail = self._automaton
        return _run(steps, tail, path.split("/"))

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


def _literal_prefix(plan: _Plan) -> str:
    if not plan.anchored:
        return ""
    out: list[str] = []
    for i, seg in enumerate(plan.segments):
        if seg == "**":
            break
        wild = [seg.index(c) for c in "*?[" if c in seg]
        if wild:
            out.append(seg[: min(wild)])
            break
        last = i == len(plan.segments) - 1
        out.append(seg if last and not plan.tail else seg + "/")
    return "".join(out)


def _closure(steps: tuple[re.Pattern[str] | None, ...], states: set[int]) -> set[int]:
    """Add the positions reached by letting a ``**`` match no folder at all."""
    out = set(states)
    todo = list(states)
    while todo:
        i = todo.pop()
        if i < len(steps) and steps[i] is None and i + 1 not in out:
            out.add(i + 1)
            todo.append(i + 1)
    return out


def _run(steps: tuple[re.Pattern[str] | None, ...], tail: bool, names: list[str]) -> bool:
    end = len(steps)
    states = _closure(steps, {0})
    for k, name in enumerate(names):
        if tail and end in states and k > 0:
            return True  # the trailing "/**" takes every remaining segment
        following: set[int] = set()
        for i in states:
            if i == end:
                continue
            step = steps[i]
            if step is None:
                following.add(i)  # "**" takes this segment and may take more
            elif step.match(name) is not None:
                following.add(i + 1)
        if not following:
            return False
        states = _closure(steps, following)
    return not tail and end in states


class GlobSet:
    """Several globs, matched as one: the ones that are a regular expression are joined into a single
    alternation (one pass of the engine per path, as a scan's include/exclude needs; each alternative is
    linear, so their union is too), the automata are run after it."""

    __slots__ = ("_automata", "_joined", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        globs = [Glob(p) for p in patterns]
        self.patterns = tuple(g.pattern for g in globs)
        sources = [g.source for g in globs if g.source is not None]
        self._joined = re.compile("(?:" + "|".join(sources) + r")\Z", _FLAGS) if sources else None
        self._automata = tuple(g for g in globs if g.source is None)

    def match(self, path: str) -> bool:
        if self._joined is not None and self._joined.match(path) is not None:
            return True
        return any(g.match(path) for g in self._automata)

    def matcher(self) -> Callable[[str], object] | None:
        """The fastest callable that answers "does a glob match this path" (truthy or not), or None when
        there is no glob: a scan asks this of every name, so the plain case is the engine's own method."""
        if not self.patterns:
            return None
        if not self._automata and self._joined is not None:
            return self._joined.match
        return self.match


def template_regex(before: str, after: str) -> re.Pattern[str]:
    """``before{project}after`` as one regular expression with a ``project`` group. A template may have
    at most one ``**`` before its end, so that its one regular expression stays linear."""
    pattern = before + CAPTURE + after
    plan = _plan(pattern)
    if plan.globstars > 1:
        raise InvalidInput("a template may have at most one '**' before its end")
    if sum(CAPTURE in seg for seg in plan.segments) != 1:
        raise InvalidInput("{project} must stand inside one folder name, as in Projects/{project}/**")
    try:
        return re.compile(_as_regex(plan, pattern) + r"\Z", _FLAGS)
    except re.error as exc:
        raise InvalidInput(f"invalid template {pattern!r}: {exc}") from None
