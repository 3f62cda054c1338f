"""The web UI: pages rendered on the server from the same services as the API and the CLI.

Pages only read. Everything that changes something is done by the page's script through the JSON API,
authenticated by the session cookie plus the page's CSRF token (see web/session.py and web/security.py).
No build step and no CDN: templates, one stylesheet and one script ship inside the package.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mediamesh import __version__
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, NotFound
from mediamesh.projects.rules import KINDS
from mediamesh.services import events as event_svc
from mediamesh.services import jobs as job_svc
from mediamesh.services import media as media_svc
from mediamesh.services import projects as project_svc
from mediamesh.services import scans as scan_svc
from mediamesh.services import sources as source_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services import webhooks as webhook_svc
from mediamesh.services.watch import describe_watch
from mediamesh.ui.format import FILTERS
from mediamesh.web import session
from mediamesh.web.deps import RowId, run_query
from mediamesh.web.security import browser_session, slow_down

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)
templates.env.globals["version"] = __version__

#: Pages allow only this server's own scripts, styles, pictures and media: no inline script, no CDN.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PAGE_SIZE = 60


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the session's token, and what its scope lets the page offer."""

    token: dict[str, Any]
    csrf: str

    @property
    def can_write(self) -> bool:
        return bool(token_svc.rank(self.token["scope"]) >= token_svc.rank("write"))

    @property
    def is_admin(self) -> bool:
        return bool(self.token["scope"] == "admin")


async def viewer(request: Request) -> Viewer:
    found = await browser_session(request)
    if found is None:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    current, token = found
    return Viewer(token, session.csrf_token(request.app.state.ctx, current))


Me = Annotated[Viewer, Depends(viewer)]


def ctx_of(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def render(request: Request, name: str, me: Viewer | None, status: int = 200, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"me": me, "path": request.url.path, **values}, status_code=status, headers=HEADERS
    )


def error_page(request: Request, status: int, message: str) -> Response:
    """Errors of pages, as a page (the API's stay JSON)."""
    return render(request, "error.html", None, status, status_code=status, message=message)


def _safe_next(value: str | None) -> str:
    """Only a path of this server: never ``//evil.example`` or an absolute URL."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _same_origin_post(request: Request) -> bool:
    """A browser names where a form comes from: ``Origin`` (``null`` for a sandboxed or privacy-masked
    page, refused) and ``Sec-Fetch-Site``. A client that sends neither (curl) is not a browser to fool."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


router = APIRouter(include_in_schema=False)


# -- signing in and out ---------------------------------------------------------------------------------
@router.get("/sign-in")
async def sign_in_page(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    if await browser_session(request) is not None:
        return RedirectResponse(_safe_next(next), 303)
    return render(request, "sign_in.html", None, next=_safe_next(next))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not _same_origin_post(request):  # login CSRF: a form posted from another site, or a sandboxed one
        return render(request, "sign_in.html", None, 403, next="/", error="sign in from this server's page")
    ctx = ctx_of(request)
    found = await anyio.to_thread.run_sync(token_svc.verify, ctx, token.strip())
    if found is None:
        await slow_down(request)
        message = "That token is not valid (or was revoked). Check it and try again."
        return render(request, "sign_in.html", None, 401, next=_safe_next(next), error=message)
    if token_svc.is_limited(found):
        message = "That token is limited to some sources or projects: it opens the WebDAV view only."
        return render(request, "sign_in.html", None, 403, next=_safe_next(next), error=message)
    response = RedirectResponse(_safe_next(next), 303)
    session.set_cookie(request, response, session.new_cookie(ctx, found["id"]))
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, me: Me, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    if not hmac.compare_digest(me.csrf.encode(), csrf_token.encode("utf-8", "replace")):
        return error_page(
            request, 403, "Sign-out needs the page's CSRF token: reload the page and try again."
        )
    response = RedirectResponse("/sign-in", 303)
    session.clear_cookie(request, response)
    return response


# -- dashboard ------------------------------------------------------------------------------------------
def _dashboard(ctx: Context, queued: list[dict[str, Any]]) -> dict[str, Any]:
    sources = source_svc.list_sources(ctx)
    per_source = source_svc.media_per_source(ctx)
    for s in sources:
        s["media"] = per_source.get(s["id"], 0)
        s["watch_text"] = describe_watch(s)
    recent = scan_svc.list_scans(ctx, limit=8)
    running = [s for s in recent if s["status"] == "running"]
    recent = [s for s in recent if s["status"] != "running"]
    return {
        "sources": sources,
        "running": running,
        "queued": queued,
        "recent": recent,
        "enrichment": [
            j
            for state in ("running", "queued")
            for j in job_svc.list_jobs(ctx, state=state, kind="extract", limit=10)
        ],
        "totals": media_svc.catalog_totals(ctx),
        "workers": job_svc.list_workers(ctx),
        "just_added": _just_added(ctx),
        # Media per source are recounted in the background: the page looks again until they are current.
        "recounting": not source_svc.media_per_source_current(ctx),
    }


def _just_added(ctx: Context, count: int = 8) -> list[dict[str, Any]]:
    """The media added last (from the event log), newest first, as tiles: what a watched folder just got."""
    seen: list[str] = []
    for event in reversed(event_svc.recent(ctx, 0, 20, "media.added", max_read=5000)):
        for item in reversed(event["data"].get("items", [])):
            if item.get("media") and item["media"] not in seen:
                seen.append(item["media"])
        if len(seen) >= count:
            break
    out = []
    for media_id in seen[:count]:
        try:
            item = media_svc.show_media(ctx, media_id)
        except NotFound:
            continue
        if item["state"] != "missing":  # gone or replaced since: nothing to show
            out.append(item)
    return out


@router.get("/")
async def dashboard(request: Request, me: Me) -> Response:
    data = await run_query(request, _dashboard, ctx_of(request), request.app.state.scans.queued())
    return render(request, "dashboard.html", me, **data)


@router.get("/ui/live/dashboard")
async def dashboard_live(request: Request, me: Me) -> Response:
    """The dashboard's sources and scans, polled by the page while it is open."""
    data = await run_query(request, _dashboard, ctx_of(request), request.app.state.scans.queued())
    return render(request, "_live.html", me, **data)


# -- sources --------------------------------------------------------------------------------------------
Prefill = Annotated[
    str | None, Query(max_length=1000, description="A form field filled in (from discovery).")
]


@router.get("/sources/new")
async def new_source(
    request: Request,
    me: Me,
    kind: Annotated[str, Query(pattern="^[a-z]{1,16}$")] = "local",
    host: Prefill = None,
    port: Prefill = None,
    share: Prefill = None,
    export: Prefill = None,
    folder: Prefill = None,
    user: Prefill = None,
) -> Response:
    chosen = source_svc.source_kind(kind)  # InvalidInput names the kinds there are
    given = {"host": host, "port": port, "share": share, "export": export, "folder": folder, "user": user}
    # A share picked in "Found on your network" arrives as the kind's fields; never a secret.
    values = {o.name: given[o.name] for o in chosen.options if not o.secret and given.get(o.name)}
    return render(
        request,
        "source_form.html",
        me,
        source=None,
        kind=chosen,
        kinds=source_svc.registered_kinds(),
        values=values,
        discovery=ctx_of(request).settings.discovery == "on" and me.is_admin,
    )


@router.get("/sources/{name}/edit")
async def edit_source(name: str, request: Request, me: Me) -> Response:
    source = await run_query(request, source_svc.show_source, ctx_of(request), name)
    kind = source_svc.source_kind(source["kind"])
    values = kind.fields(source["location"])
    return render(
        request,
        "source_form.html",
        me,
        source=source,
        kind=kind,
        kinds=source_svc.registered_kinds(),
        values=values,
    )


# -- media ----------------------------------------------------------------------------------------------
#: The browser's views: what each one asks the media listing for.
VIEWS: dict[str, dict[str, Any]] = {
    "all": {},
    "reachable": {"state": "present"},
    "duplicates": {"duplicates": True},
    "single": {"single_copy": True},
    "offline": {"state": "offline"},
    "missing": {"state": "missing"},
    "replaced": {"state": "replaced"},
}


@dataclass(frozen=True, slots=True)
class MediaFilters:
    q: str | None
    source: str | None
    project: str | None
    kind: str | None
    view: str
    taken_after: str | None
    taken_before: str | None

    def listing(self, ctx: Context, cursor: str | None) -> dict[str, Any]:
        view = VIEWS.get(self.view)
        if view is None:
            raise InvalidInput(f"unknown view {self.view!r}: use one of {', '.join(VIEWS)}")
        after, before = _day(self.taken_after, "from"), _day(self.taken_before, "until", end=True)
        technical = media_svc.Technical(taken_after=after, taken_before=before) if after or before else None
        return media_svc.list_media(
            ctx,
            source=self.source,
            state=view.get("state"),
            duplicates=bool(view.get("duplicates")),
            kind=self.kind,
            limit=PAGE_SIZE,
            cursor=cursor,
            q=self.q,
            single_copy=bool(view.get("single_copy")),
            project=self.project,
            technical=technical,
        )

    def query(self, **changes: Any) -> str:
        """This filter set as a query string, with some values changed."""
        values = {
            "q": self.q,
            "source": self.source,
            "project": self.project,
            "kind": self.kind,
            "view": self.view,
            "taken_after": self.taken_after,
            "taken_before": self.taken_before,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in (None, "", "all")})


def _day(value: str | None, field: str, end: bool = False) -> datetime | None:
    """A date of the filter form; "until" a day includes that whole day."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not a date (YYYY-MM-DD)") from None
    return moment + timedelta(days=1) if end and len(value) == 10 else moment


def media_filters(
    q: Annotated[str | None, Query(max_length=500)] = None,
    source: Annotated[str | None, Query(max_length=64)] = None,
    project: Annotated[str | None, Query(max_length=200)] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    view: Annotated[str, Query(max_length=16)] = "all",
    taken_after: Annotated[str | None, Query(max_length=40)] = None,
    taken_before: Annotated[str | None, Query(max_length=40)] = None,
) -> MediaFilters:
    def clean(value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    return MediaFilters(
        clean(q), clean(source), clean(project), clean(kind), view, clean(taken_after), clean(taken_before)
    )


Filters = Annotated[MediaFilters, Depends(media_filters)]
Cursor = Annotated[str | None, Query(max_length=100)]


def _browser_choices(ctx: Context) -> dict[str, Any]:
    return {
        "source_names": source_svc.source_names(ctx),
        "project_names": project_svc.project_names(ctx),
    }


@router.get("/media")
async def media_browser(request: Request, me: Me, filters: Filters, cursor: Cursor = None) -> Response:
    ctx = ctx_of(request)
    started = time.perf_counter()
    page = await run_query(request, filters.listing, ctx, cursor)
    choices = await run_query(request, _browser_choices, ctx)
    return render(
        request,
        "media.html",
        me,
        page=page,
        filters=filters,
        views=VIEWS,
        kinds=KINDS,
        cursor=cursor,
        elapsed_ms=(time.perf_counter() - started) * 1000,
        **choices,
    )


@router.get("/ui/media/more")
async def media_more(request: Request, me: Me, filters: Filters, cursor: Cursor = None) -> Response:
    """The next tiles of the grid (infinite scroll asks for them)."""
    page = await run_query(request, filters.listing, ctx_of(request), cursor)
    return render(request, "_tiles.html", me, page=page, filters=filters)


def _media_detail(ctx: Context, media_id: str) -> dict[str, Any]:
    item = media_svc.show_media(ctx, media_id)
    return {
        "item": item,
        "membership": project_svc.explain(ctx, item["id"]),
        "project_names": project_svc.project_names(ctx),
    }


@router.get("/media/{media_id}")
async def media_detail(media_id: str, request: Request, me: Me) -> Response:
    data = await run_query(request, _media_detail, ctx_of(request), media_id)
    return render(request, "media_detail.html", me, **data)


# -- projects -------------------------------------------------------------------------------------------
def _projects(ctx: Context) -> dict[str, Any]:
    return {
        "projects": project_svc.list_projects(ctx, recent_stats=True),
        "templates": project_svc.list_templates(ctx),
        "source_names": source_svc.source_names(ctx),
    }


@router.get("/projects")
async def projects_page(request: Request, me: Me) -> Response:
    data = await run_query(request, _projects, ctx_of(request))
    return render(request, "projects.html", me, kinds=KINDS, **data)


def _project(ctx: Context, name: str) -> dict[str, Any]:
    project = project_svc.show_project(ctx, name)
    page = media_svc.list_media(ctx, project=project["name"], limit=PAGE_SIZE)
    return {
        "project": project,
        "page": page,
        "source_names": source_svc.source_names(ctx),
    }


@router.get("/projects/{name}")
async def project_page(name: str, request: Request, me: Me) -> Response:
    data = await run_query(request, _project, ctx_of(request), name)
    filters = media_filters(project=data["project"]["name"])
    return render(request, "project.html", me, kinds=KINDS, filters=filters, **data)


# -- tokens ---------------------------------------------------------------------------------------------
@router.get("/tokens")
async def tokens_page(request: Request, me: Me) -> Response:
    if not me.is_admin:
        return error_page(request, 403, "Tokens are managed with an admin token.")
    ctx = ctx_of(request)
    tokens = await run_query(request, token_svc.list_tokens, ctx)
    sources = await run_query(request, source_svc.source_names, ctx)
    projects = await run_query(request, project_svc.project_names, ctx)
    dav = f"{(ctx.settings.public_url or str(request.base_url)).rstrip('/')}/dav/"
    return render(
        request,
        "tokens.html",
        me,
        tokens=tokens,
        scopes=token_svc.SCOPES,
        sources=sources,
        projects=projects,
        dav_url=dav,
        describe_limits=token_svc.describe_limits,
    )


# -- webhooks -------------------------------------------------------------------------------------------
def _webhooks(ctx: Context) -> list[dict[str, Any]]:
    hooks = webhook_svc.list_webhooks(ctx)
    for w in hooks:
        w["deliveries"] = webhook_svc.deliveries(ctx, str(w["id"]), 20)
    return hooks


@router.get("/webhooks")
async def webhooks_page(request: Request, me: Me) -> Response:
    if not me.is_admin:
        return error_page(request, 403, "Webhooks are managed with an admin token.")
    ctx = ctx_of(request)
    hooks = await run_query(request, _webhooks, ctx)
    allowed = ", ".join(p.strip() for p in ctx.settings.webhook_allow.split(",") if p.strip())
    return render(request, "webhooks.html", me, webhooks=hooks, allowed=allowed)


@router.get("/scans/{scan_id}")
async def scan_page(scan_id: RowId, request: Request, me: Me) -> Response:
    scan = await run_query(request, scan_svc.get_scan, ctx_of(request), scan_id)
    return render(request, "scan.html", me, scan=scan)


def warm_up(ctx: Context) -> None:
    """Make the figures the dashboard and the projects page keep in caches once, in the background at
    start, so that a first visit does not wait for them (on 100k media: 0.4 s for media per source, 0.8 s
    for 180 projects; later visits take 50 ms)."""

    def work() -> None:
        try:
            source_svc.media_per_source(ctx)
            project_svc.list_projects(ctx, recent_stats=True)
        except Exception:  # a page will try again; start-up never fails for this
            log.warning("warming up the projects page failed", exc_info=True)

    threading.Thread(target=work, name="mediamesh-ui-warm-up", daemon=True).start()


#: Swagger UI sets inline styles: allowed on this page only, scripts stay this server's own.
DOCS_HEADERS = {
    **HEADERS,
    "Content-Security-Policy": HEADERS["Content-Security-Policy"].replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    ),
}


@router.get("/api/docs")
async def api_docs(request: Request, me: Me) -> Response:
    """The API reference, for a signed-in user (the schema itself needs a token too)."""
    return templates.TemplateResponse(request, "api_docs.html", {"me": me}, headers=DOCS_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the UI at ``/`` (its files at ``/static``, Swagger UI's at ``/api/docs/assets``)."""
    import swagger_ui_bundle

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount(
        "/api/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets"
    )
    app.include_router(router)

    @app.exception_handler(SignInRequired)
    async def to_sign_in(_: Request, exc: SignInRequired) -> Response:
        target = "/sign-in" if exc.next_path == "/" else "/sign-in?" + urlencode({"next": exc.next_path})
        return RedirectResponse(target, 303)
