"""The catalog as one tree of folders and files, which the WebDAV view (``dav/``) serves:

- ``sources/{source}/...``: each source as it was indexed (present locations only; a source that cannot
  be reached now keeps its last known listing);
- ``projects/{project}/...``: one entry per media item of the project, laid out by its path below the
  template's ``{project}`` folder (or below a rule's fixed folder); media added by hand lie flat;
- ``media/{media_id}.{ext}``: every media item that has a present copy;
- ``duplicates/{name} ({id12})/{source} - {name}``: a folder per media item with more than one present
  copy, holding each copy.

Nothing here takes a path to a source from the caller: a name is looked up in the catalog, and what is
read is a location the catalog holds (see services/content.py). Listings come in pages of :data:`PAGE`
entries, each page a query of its own, so that a folder of a million entries is never held in memory; a
project's layout (which needs every member at once to place names) is kept per catalog generation.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select

from mediamesh.backends import features_of
from mediamesh.catalog.schema import (
    files,
    media,
    project_exclusions,
    project_members,
    project_rules,
    project_templates,
    projects,
    sources,
)
from mediamesh.context import Context
from mediamesh.errors import MediameshError, NotFound
from mediamesh.projects.rules import compile_template
from mediamesh.scanning.globs import Glob
from mediamesh.scanning.names import path_key
from mediamesh.services import content as content_svc
from mediamesh.services.media import present_copies

#: Entries per page of a listing (one query each).
PAGE = 1000
#: Projects whose layout is kept (per catalog generation).
KEPT_LAYOUTS = 8
TOP = ("sources", "projects", "media", "duplicates")
# Best first: the copy a listing names and a read tries first, in the order reads try sources.
_HEALTH = content_svc.HEALTH_ORDER


@dataclass(frozen=True, slots=True)
class Node:
    """A folder or a file of the tree. A file is a media item, read from ``file_id`` first (else from
    whichever copy can be reached)."""

    name: str
    folder: bool
    size: int = 0
    mtime_ns: int | None = None
    media_id: str | None = None
    file_id: int | None = None

    @property
    def content_type(self) -> str:
        return "" if self.folder else content_svc.content_type(self.name)


@dataclass(frozen=True, slots=True)
class View:
    """What a token may see: everything, or only some sources and projects (by name)."""

    sources: frozenset[str] | None = None
    projects: frozenset[str] | None = None

    @classmethod
    def of(cls, token: dict[str, Any]) -> View:
        limits = token.get("limits")
        if not limits:
            return cls()
        return cls(frozenset(limits.get("sources") or ()), frozenset(limits.get("projects") or ()))

    @property
    def limited(self) -> bool:
        return self.sources is not None or self.projects is not None

    def top(self) -> list[str]:
        """The top folders shown: a limited token sees only the sources and projects it is given."""
        if not self.limited:
            return list(TOP)
        return [n for n, given in (("sources", self.sources), ("projects", self.projects)) if given]

    def shows_source(self, name: str) -> bool:
        return self.sources is None or name in self.sources

    def shows_project(self, name: str) -> bool:
        return self.projects is None or name in self.projects


def _nfc(name: str) -> str:
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def _extension(path: str) -> str:
    name = path.rpartition("/")[2]
    stem, dot, ext = name.rpartition(".")
    return f".{ext.lower()}" if dot and stem and ext.isalnum() else ""


def _with_tag(name: str, tag: str) -> str:
    """``clip.mp4`` -> ``clip (tag).mp4``: a second entry of the same name in one folder."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem} ({tag}).{ext}" if dot and stem else f"{name} ({tag})"


@dataclass
class _Layout:
    """A project's tree: folder (a tuple of names, NFC) -> {NFC name: node}."""

    folders: dict[tuple[str, ...], dict[str, Node]] = field(default_factory=dict)

    def add(self, parts: list[str], node: Node) -> None:
        folder: tuple[str, ...] = ()
        for given in parts:
            children = self.folders.setdefault(folder, {})
            part, key = given, _nfc(given)
            existing = children.get(key)
            if existing is not None and not existing.folder:  # a file of that name: this folder is renamed
                part = _with_tag(given, "folder")
                key = _nfc(part)
            if key not in children:
                children[key] = Node(part, True)
            folder = (*folder, key)
        children = self.folders.setdefault(folder, {})
        name = node.name
        if _nfc(name) in children:
            name = _with_tag(name, (node.media_id or "")[:8])
        children[_nfc(name)] = Node(name, False, node.size, node.mtime_ns, node.media_id, node.file_id)


class Namespace:
    """The tree over one catalog (owned by the app: it keeps the layouts of the projects last browsed)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._layouts: OrderedDict[int, tuple[object, _Layout]] = OrderedDict()
        self._lock = threading.Lock()

    # -- resolving a path ---------------------------------------------------------------------------
    def resolve(self, parts: list[str], view: View) -> Node:
        """The node at ``parts`` (names as the client spells them), or NotFound."""
        if not parts:
            return Node("mediamesh", True)
        top, rest = parts[0], parts[1:]
        if top not in view.top():
            raise NotFound(f"no folder {top!r} here")
        if not rest:
            return Node(top, True)
        with self.ctx.catalog.read() as conn:
            if top == "sources":
                return self._source_node(conn, rest, view)
            if top == "projects":
                return self._project_node(conn, rest, view)
            if top == "media" and len(rest) == 1:
                return self._media_node(conn, rest[0])
            if top == "duplicates" and len(rest) <= 2:
                return self._duplicate_node(conn, rest)
        raise NotFound("no such file or folder")

    def children(self, parts: list[str], view: View) -> Iterator[list[Node]]:
        """The entries of the folder at ``parts``, a page at a time; each page is read when asked for (no
        connection is held between pages). The folder must have been resolved first."""
        if not parts:
            yield [Node(n, True) for n in view.top()]
            return
        top, rest = parts[0], parts[1:]
        if top == "sources":
            yield from self._source_children(rest, view)
        elif top == "projects":
            yield from self._project_children(rest, view)
        elif top == "media":
            yield from self._media_pages(duplicates=False)
        elif top == "duplicates" and not rest:
            yield from self._media_pages(duplicates=True)
        elif top == "duplicates":
            with self.ctx.catalog.read() as conn:
                copies = self._copies(conn, self._duplicate_id(conn, rest[0]))
            yield copies

    def open(self, node: Node) -> content_svc.OpenedContent:
        """The bytes of a file: its own location first, else the best copy that can be reached now (404 if
        every copy is missing, 503 naming the sources if none can be reached)."""
        if node.media_id is None:
            raise NotFound("a folder has no content")
        if node.file_id is not None:
            try:
                return content_svc.open_file(self.ctx, node.file_id)
            except MediameshError:
                pass  # that copy cannot be read now: any other copy of the same content will do
        return content_svc.open_media(self.ctx, node.media_id)

    # -- sources ------------------------------------------------------------------------------------
    def _source_row(self, conn: Connection, name: str, view: View) -> Any:
        row = conn.execute(select(sources).where(sources.c.name == name)).first()
        if row is None or not view.shows_source(name):
            raise NotFound(f"no source {name!r}")
        return row

    def _source_node(self, conn: Connection, rest: list[str], view: View) -> Node:
        row = self._source_row(conn, rest[0], view)
        if len(rest) == 1:
            return Node(row.name, True)
        ci = features_of(row.kind, row.features).case_insensitive
        key = path_key("/".join(rest[1:]), ci)
        folder_key, _, name_key = key.rpartition("/")
        hit = conn.execute(
            select(files.c.id, files.c.path, files.c.size, files.c.mtime_ns, files.c.media_id).where(
                files.c.source_id == row.id,
                files.c.dir_key == folder_key,
                files.c.name_key == name_key,
                files.c.state == "present",
            )
        ).first()
        if hit is not None:
            return Node(rest[-1], False, hit.size, hit.mtime_ns, hit.media_id, hit.id)
        below = conn.execute(
            select(files.c.id)
            .where(
                files.c.source_id == row.id,
                files.c.state == "present",
                (files.c.dir_key == key) | and_(files.c.dir_key >= key + "/", files.c.dir_key < key + "0"),
            )
            .limit(1)
        ).first()
        if below is None:
            raise NotFound(f"nothing indexed at {row.name}:{'/'.join(rest[1:])}")
        return Node(rest[-1], True)

    def _source_children(self, rest: list[str], view: View) -> Iterator[list[Node]]:
        if not rest:
            with self.ctx.catalog.read() as conn:
                names = conn.execute(select(sources.c.name).order_by(sources.c.name)).scalars().all()
            yield [Node(n, True) for n in names if view.shows_source(n)]
            return
        with self.ctx.catalog.read() as conn:
            row = self._source_row(conn, rest[0], view)
        ci = features_of(row.kind, row.features).case_insensitive
        key = path_key("/".join(rest[1:]), ci)
        yield from self._subfolders(row.id, key, len(rest) - 1)
        yield from self._files_in(row.id, key)

    @staticmethod
    def _first_below(
        conn: Connection, source_id: int, after: str, inclusive: bool, before: str | None
    ) -> Any:
        """The first present location (by folder key) at or after ``after`` and before ``before``."""
        conds = [
            files.c.source_id == source_id,
            files.c.dir_key >= after if inclusive else files.c.dir_key > after,
            files.c.state == "present",
        ]
        if before is not None:
            conds.append(files.c.dir_key < before)
        return conn.execute(
            select(files.c.dir_key, files.c.path).where(*conds).order_by(files.c.dir_key).limit(1)
        ).first()

    def _subfolders(self, source_id: int, key: str, depth: int) -> Iterator[list[Node]]:
        """The folders in a folder, by skipping through the (source, folder key) index: a query or two per
        folder found, however many files lie below (a source's top holds the whole source)."""
        lo, hi = (f"{key}/", f"{key}0") if key else ("", None)
        seen: set[str] = set()
        after, inclusive = lo, bool(key)
        while True:
            page: list[Node] = []
            with self.ctx.catalog.read() as conn:  # one connection per page, none held between pages
                while len(page) < PAGE:
                    hit = self._first_below(conn, source_id, after, inclusive, hi)
                    if hit is None:
                        break
                    component = hit.dir_key[len(lo) :].split("/", 1)[0]
                    if component not in seen:
                        seen.add(component)
                        page.append(Node(hit.path.split("/")[depth], True))
                    own = lo + component
                    if hit.dir_key == own:  # files right in that folder; next may be a sibling ("a-b")
                        after, inclusive = own, False
                    else:  # deeper: jump past the whole folder ("a/" ... "a0")
                        after, inclusive = own + "0", True
            if page:
                yield page
            if len(page) < PAGE:
                return

    def _files_in(self, source_id: int, key: str) -> Iterator[list[Node]]:
        after: str | None = None
        while True:
            conds = [files.c.source_id == source_id, files.c.dir_key == key, files.c.state == "present"]
            if after is not None:
                conds.append(files.c.name_key > after)
            with self.ctx.catalog.read() as conn:
                rows = conn.execute(
                    select(
                        files.c.id,
                        files.c.path,
                        files.c.name_key,
                        files.c.size,
                        files.c.mtime_ns,
                        files.c.media_id,
                    )
                    .where(*conds)
                    .order_by(files.c.name_key)
                    .limit(PAGE)
                ).all()
            if not rows:
                return
            yield [Node(r.path.rpartition("/")[2], False, r.size, r.mtime_ns, r.media_id, r.id) for r in rows]
            if len(rows) < PAGE:
                return
            after = rows[-1].name_key

    # -- projects -----------------------------------------------------------------------------------
    def _project_row(self, conn: Connection, name: str, view: View) -> Any:
        row = conn.execute(select(projects).where(projects.c.name == name)).first()
        if row is None:
            row = conn.execute(select(projects).where(projects.c.name == _nfc(name))).first()
        if row is None or not view.shows_project(row.name):
            raise NotFound(f"no project {name!r}")
        return row

    def _project_node(self, conn: Connection, rest: list[str], view: View) -> Node:
        row = self._project_row(conn, rest[0], view)
        if len(rest) == 1:
            return Node(row.name, True)
        layout = self._layout(conn, row.id)
        folder = tuple(_nfc(p) for p in rest[1:-1])
        node = layout.folders.get(folder, {}).get(_nfc(rest[-1]))
        if node is None:
            raise NotFound(f"nothing at {'/'.join(rest)}")
        return node

    def _project_children(self, rest: list[str], view: View) -> Iterator[list[Node]]:
        with self.ctx.catalog.read() as conn:
            if not rest:
                names = conn.execute(select(projects.c.name).order_by(projects.c.name)).scalars().all()
            else:
                layout = self._layout(conn, self._project_row(conn, rest[0], view).id)
        if not rest:
            yield [Node(n, True) for n in names if view.shows_project(n)]
            return
        children = list(layout.folders.get(tuple(_nfc(p) for p in rest[1:]), {}).values())
        for start in range(0, len(children), PAGE):
            yield children[start : start + PAGE]

    def _layout(self, conn: Connection, project_id: int) -> _Layout:
        generation = self.ctx.catalog.generation
        with self._lock:
            kept = self._layouts.get(project_id)
            if kept is not None and kept[0] == generation:
                self._layouts.move_to_end(project_id)
                return kept[1]
        layout = _project_layout(conn, project_id)
        with self._lock:
            self._layouts[project_id] = (generation, layout)
            self._layouts.move_to_end(project_id)
            while len(self._layouts) > KEPT_LAYOUTS:
                self._layouts.popitem(last=False)
        return layout

    # -- media and duplicates -----------------------------------------------------------------------
    def _media_node(self, conn: Connection, name: str) -> Node:
        media_id = name.partition(".")[0].lower()
        if len(media_id) != 64:
            raise NotFound(f"no media {name!r}")
        best = _best_copies(conn, [media_id]).get(media_id)
        if best is None:
            raise NotFound(f"no media {name!r} with a present copy")
        return Node(media_id + _extension(best.path), False, best.msize, best.mtime_ns, media_id, best.id)

    def _media_pages(self, duplicates: bool) -> Iterator[list[Node]]:
        wanted = (
            present_copies() > 1
            if duplicates
            else exists().where(files.c.media_id == media.c.id, files.c.state == "present")
        )
        after = ""
        while True:
            with self.ctx.catalog.read() as conn:
                ids = (
                    conn.execute(
                        select(media.c.id).where(media.c.id > after, wanted).order_by(media.c.id).limit(PAGE)
                    )
                    .scalars()
                    .all()
                )
                best = _best_copies(conn, list(ids))
            page = []
            for media_id in ids:
                copy = best.get(media_id)
                if copy is None:  # gone between the two queries
                    continue
                if duplicates:
                    page.append(Node(_group_name(media_id, copy.path), True))
                else:
                    ext = _extension(copy.path)
                    page.append(Node(media_id + ext, False, copy.msize, copy.mtime_ns, media_id, copy.id))
            if page:
                yield page
            if len(ids) < PAGE:
                return
            after = ids[-1]

    def _duplicate_id(self, conn: Connection, folder: str) -> str:
        tag = folder.rpartition("(")[2].rstrip(")").lower()
        if len(tag) != 12 or any(c not in "0123456789abcdef" for c in tag):
            raise NotFound(f"no duplicate group {folder!r}")
        candidates = conn.execute(
            select(files.c.media_id)
            .where(files.c.media_id >= tag, files.c.media_id < tag + "g", files.c.state == "present")
            .group_by(files.c.media_id)
            .having(func.count() > 1)
        ).scalars()
        best = _best_copies(conn, list(candidates))
        for media_id, copy in best.items():
            if _nfc(_group_name(media_id, copy.path)) == _nfc(folder):
                return media_id
        raise NotFound(f"no duplicate group {folder!r}")

    def _duplicate_node(self, conn: Connection, rest: list[str]) -> Node:
        media_id = self._duplicate_id(conn, rest[0])
        if len(rest) == 1:
            return Node(rest[0], True)
        for node in self._copies(conn, media_id):
            if _nfc(node.name) == _nfc(rest[1]):
                return node
        raise NotFound(f"no copy {rest[1]!r} in {rest[0]!r}")

    def _copies(self, conn: Connection, media_id: str) -> list[Node]:
        rows = conn.execute(
            select(files.c.id, files.c.path, files.c.size, files.c.mtime_ns, sources.c.name.label("source"))
            .join(sources, sources.c.id == files.c.source_id)
            .where(files.c.media_id == media_id, files.c.state == "present")
            .order_by(sources.c.name, files.c.path)
        ).all()
        nodes: dict[str, Node] = {}
        for r in rows:
            name = f"{r.source} - {r.path.rpartition('/')[2]}"
            if _nfc(name) in nodes:
                name = _with_tag(name, str(r.id))
            nodes[_nfc(name)] = Node(name, False, r.size, r.mtime_ns, media_id, r.id)
        return list(nodes.values())


def _group_name(media_id: str, path: str) -> str:
    stem = path.rpartition("/")[2]
    stem = stem.rpartition(".")[0] or stem
    return f"{stem} ({media_id[:12]})"


def _best_copies(conn: Connection, media_ids: list[str]) -> dict[str, Any]:
    """The best present copy of each media item (reachable sources first): it names the entry."""
    if not media_ids:
        return {}
    rows = conn.execute(
        select(
            files.c.id,
            files.c.media_id,
            files.c.path,
            files.c.mtime_ns,
            media.c.size.label("msize"),
            sources.c.health_status,
            sources.c.name.label("source"),
        )
        .join(sources, sources.c.id == files.c.source_id)
        .join(media, media.c.id == files.c.media_id)
        .where(files.c.media_id.in_(media_ids), files.c.state == "present")
    ).all()
    best: dict[str, Any] = {}
    for r in sorted(rows, key=lambda r: (_HEALTH.get(r.health_status, 2), r.source, r.path)):
        best.setdefault(r.media_id, r)
    return best


def _project_layout(conn: Connection, project_id: int) -> _Layout:
    """Every media item of a project placed once: by the path of the location that made it a member (below
    the template's project folder, or below a rule's fixed folder), else flat under its best copy's name.
    When two media items land on one name, the one that joined later gets its id's start in the name."""
    templates = {
        r.id: compile_template(r.path)
        for r in conn.execute(select(project_templates.c.id, project_templates.c.path))
    }
    rules: dict[int, str] = {}
    for r in conn.execute(
        select(project_rules.c.id, project_rules.c.spec).where(project_rules.c.project_id == project_id)
    ):
        glob = (r.spec or {}).get("path")
        prefix = Glob(glob).prefix if glob else ""
        rules[r.id] = prefix[: prefix.rfind("/") + 1]
    excluded = exists().where(
        project_exclusions.c.project_id == project_id,
        project_exclusions.c.media_id == project_members.c.media_id,
    )
    members = conn.execute(
        select(
            project_members.c.media_id,
            project_members.c.rule_id,
            project_members.c.template_id,
            project_members.c.created_at,
            files.c.id.label("file_id"),
            files.c.path,
            files.c.state,
            sources.c.health_status,
        )
        .select_from(project_members)
        .outerjoin(files, files.c.id == project_members.c.file_id)
        .outerjoin(sources, sources.c.id == files.c.source_id)
        .where(project_members.c.project_id == project_id, ~excluded)
    ).all()

    def preference(m: Any) -> tuple[int, int, int, str]:
        through_file = m.file_id is not None and m.state == "present"
        reason = 0 if m.template_id is not None else 1 if m.rule_id is not None else 2
        return (0 if through_file else 1, _HEALTH.get(m.health_status, 2), reason, m.path or "")

    chosen: dict[str, Any] = {}
    joined: dict[str, Any] = {}
    for m in sorted(members, key=preference):
        chosen.setdefault(m.media_id, m)
        joined[m.media_id] = min(joined.get(m.media_id, m.created_at), m.created_at)
    best = _best_copies(conn, list(chosen))
    layout = _Layout()
    for media_id in sorted(chosen, key=lambda i: (joined[i], i)):
        m, copy = chosen[media_id], best.get(media_id)
        if copy is None:
            continue  # no present copy anywhere: nothing to show or read
        relative = (
            _below_base(m, templates, rules) if m.file_id is not None and m.state == "present" else None
        )
        parts = (relative or copy.path.rpartition("/")[2]).split("/")
        file_id = m.file_id if relative is not None else copy.id
        layout.add(parts[:-1], Node(parts[-1], False, copy.msize, copy.mtime_ns, media_id, file_id))
    return layout


def _below_base(m: Any, templates: dict[int, Any], rules: dict[int, str]) -> str | None:
    """The member location's path below its template's project folder or its rule's fixed folder."""
    path: str = m.path
    if m.template_id is not None and m.template_id in templates:
        found = templates[m.template_id].match(path)
        if found is not None:
            return path[found.end("project") :].lstrip("/") or None
    if m.rule_id is not None:
        base = rules.get(m.rule_id, "")
        if base and path.lower().startswith(base.lower()):
            return path[len(base) :] or None
        return path
    return None
