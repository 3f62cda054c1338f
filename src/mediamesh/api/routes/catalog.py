"""Media, files and scans: read through the same services as the CLI; scans started in the background."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from mediamesh.api.responses import FastJSON
from mediamesh.api.schemas import AUTHENTICATED, FilePage, Media, MediaPage
from mediamesh.api.streaming import UNTRUSTED_CONTENT, content_response
from mediamesh.errors import InvalidInput
from mediamesh.services import content as content_svc
from mediamesh.services import links
from mediamesh.services import media as media_svc
from mediamesh.services import scans as scan_svc
from mediamesh.services import sources as source_svc
from mediamesh.services import thumbs as thumbs_svc
from mediamesh.services.scans import get_scan
from mediamesh.web.deps import Ctx, RowId, run_query, source_limiter
from mediamesh.web.security import Read, ReadOrLink, Write

router = APIRouter(prefix="/api/v1", tags=["catalog"], responses=AUTHENTICATED)

Limit = Annotated[int, Query(ge=1, le=media_svc.MAX_LIMIT)]
_ISO = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
IsoDate = Query(pattern=_ISO, max_length=40, description="Capture time: ISO 8601 date or date and time.")


def iso_moment(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 date or time") from None


class ScanStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field("", max_length=4096, description="Scan only this folder (relative to the root).")
    confirm_missing: bool = False


@router.get("/media", response_class=FastJSON, responses={200: {"model": MediaPage}})
async def list_media(
    request: Request,
    ctx: Ctx,
    _: Read,
    source: Annotated[str | None, Query(description="Media with a location on this source.")] = None,
    project: Annotated[str | None, Query(description="Media in this project.")] = None,
    state: Annotated[
        str | None,
        Query(description="present (a reachable copy), offline (only on unreachable sources), missing."),
    ] = None,
    kind: Annotated[str | None, Query(description="video, image, audio or other.")] = None,
    q: Annotated[
        str | None, Query(max_length=500, description="Words (or word beginnings) in a location's path.")
    ] = None,
    duplicates: Annotated[bool, Query(description="Only media with more than one present copy.")] = False,
    single_copy: Annotated[bool, Query(description="Only media with exactly one present copy.")] = False,
    min_width: Annotated[int | None, Query(ge=0, le=1_000_000, description="e.g. 3840 for 4K")] = None,
    min_height: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    min_duration: Annotated[float | None, Query(ge=0, le=1e9, description="seconds")] = None,
    max_duration: Annotated[float | None, Query(ge=0, le=1e9, description="seconds")] = None,
    codec: Annotated[str | None, Query(max_length=32, description="h264, hevc, prores, flac, ...")] = None,
    camera: Annotated[str | None, Query(max_length=200, description="part of make and model")] = None,
    taken_after: Annotated[str | None, IsoDate] = None,
    taken_before: Annotated[str | None, IsoDate] = None,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(description="`next` of the previous page.")] = None,
) -> FastJSON:
    """A page of media, each with every location and its state."""
    page = await run_query(
        request,
        media_svc.list_media,
        ctx,
        source,
        state,
        duplicates,
        kind,
        limit,
        cursor,
        q,
        single_copy,
        project,
        media_svc.Technical(
            min_width,
            min_height,
            min_duration,
            max_duration,
            codec,
            camera,
            iso_moment(taken_after, "taken_after"),
            iso_moment(taken_before, "taken_before"),
        ),
    )
    return FastJSON(page)


@router.get("/media/{media_id}", response_class=FastJSON, responses={200: {"model": Media}})
async def show_media(media_id: str, request: Request, ctx: Ctx, _: Read) -> FastJSON:
    """One media item with every location and its state."""
    return FastJSON(await run_query(request, media_svc.show_media, ctx, media_id))


_CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The bytes", "content": {"application/octet-stream": {}}},
    206: {"description": "The requested range (HTTP Range)"},
    304: {"description": "Not modified (If-None-Match matched the media id)"},
    404: {"description": "Unknown, or every copy is missing"},
    416: {"description": "The range is outside the file"},
    503: {"description": "No copy can be reached now; the message names the sources tried"},
}


@router.get("/media/{media_id}/content", response_class=Response, responses=_CONTENT_RESPONSES)
@router.head(
    "/media/{media_id}/content",
    response_class=Response,
    responses=_CONTENT_RESPONSES,
    operation_id="media_content_head",
)
async def media_content(media_id: str, request: Request, ctx: Ctx, _: ReadOrLink) -> Response:
    """The media's bytes from a reachable location (online sources first, then by priority)."""
    limiter = source_limiter(request)
    opened = await anyio.to_thread.run_sync(content_svc.open_media, ctx, media_id, limiter=limiter)
    return content_response(request, opened, immutable=True, limiter=limiter)


@router.get("/files/{file_id}/content", response_class=Response, responses=_CONTENT_RESPONSES)
@router.head(
    "/files/{file_id}/content",
    response_class=Response,
    responses=_CONTENT_RESPONSES,
    operation_id="file_content_head",
)
async def file_content(file_id: RowId, request: Request, ctx: Ctx, _: ReadOrLink) -> Response:
    """The bytes of one location."""
    limiter = source_limiter(request)
    opened = await anyio.to_thread.run_sync(content_svc.open_file, ctx, file_id, limiter=limiter)
    return content_response(request, opened, immutable=False, limiter=limiter)


@router.get(
    "/media/{media_id}/thumbnail",
    response_class=Response,
    responses={200: {"description": "A WebP picture", "content": {"image/webp": {}}}},
)
async def media_thumbnail(
    media_id: str,
    request: Request,
    ctx: Ctx,
    _: Read,
    size: Annotated[
        str, Query(pattern="^(small|preview)$", description="small (320 px) or preview (1280 px)")
    ] = "small",
) -> Response:
    """A thumbnail (WebP), cached by media id; a placeholder for audio and other kinds, or while no copy can
    be reached (then marked ``X-Mediamesh-Placeholder`` and cached briefly)."""
    thumb = await anyio.to_thread.run_sync(
        thumbs_svc.thumbnail, ctx, media_id, size, limiter=source_limiter(request)
    )
    etag = f'"{thumb.path.stem}"'
    headers = {"ETag": etag, **UNTRUSTED_CONTENT}
    if thumb.placeholder:
        headers["Cache-Control"] = "private, max-age=60"
        reason = thumb.reason or "placeholder"
        headers["X-Mediamesh-Placeholder"] = "".join(c if 32 <= ord(c) < 127 else " " for c in reason)[:200]
    else:
        headers["Cache-Control"] = "private, max-age=31536000, immutable"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return FileResponse(thumb.path, media_type="image/webp", headers=headers)


class Link(BaseModel):
    url: str = Field(
        description="Works without a token until expires_at: absolute, from MEDIAMESH_PUBLIC_URL or the "
        "address the request came to."
    )
    path: str = Field(description="The same link relative to the server.")
    expires_at: str


@router.post("/media/{media_id}/link", response_model=Link)
def media_link(
    media_id: str,
    request: Request,
    ctx: Ctx,
    token: Read,
    ttl: Annotated[
        int, Query(ge=60, le=links.MAX_TTL, description="Seconds the link works.")
    ] = links.DEFAULT_TTL,
) -> dict[str, Any]:
    """A signed content URL for players that cannot send a token (a browser's video tag, VLC). It works
    only while the token that asked for it does."""
    media_svc.show_media(ctx, media_id)  # 404 / 422 for what is not a media id of this catalog
    path = request.app.url_path_for("media_content", media_id=media_id.strip().lower())
    return links.make_link(ctx, path, ttl, int(token["id"]), str(request.base_url))


@router.post("/files/{file_id}/link", response_model=Link)
def file_link(
    file_id: RowId,
    request: Request,
    ctx: Ctx,
    token: Read,
    ttl: Annotated[
        int, Query(ge=60, le=links.MAX_TTL, description="Seconds the link works.")
    ] = links.DEFAULT_TTL,
) -> dict[str, Any]:
    """A signed content URL for one location (works only while the token that asked for it does)."""
    path = request.app.url_path_for("file_content", file_id=str(file_id))
    return links.make_link(ctx, path, ttl, int(token["id"]), str(request.base_url))


@router.get("/files", response_class=FastJSON, responses={200: {"model": FilePage}})
async def list_files(
    request: Request,
    ctx: Ctx,
    _: Read,
    source: str | None = None,
    path_prefix: str | None = None,
    state: str | None = None,
    limit: Limit = 100,
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> FastJSON:
    """A page of locations."""
    page = await run_query(request, media_svc.list_files, ctx, source, path_prefix, state, limit, cursor)
    return FastJSON(page)


@router.post("/sources/{id_or_name}/scans", status_code=202)
def start_scan(id_or_name: str, request: Request, _: Write, body: ScanStart | None = None) -> dict[str, Any]:
    body = body or ScanStart()
    return request.app.state.scans.start(id_or_name, body.path, body.confirm_missing)  # type: ignore[no-any-return]


@router.get("/scans")
def list_scans(
    request: Request,
    ctx: Ctx,
    _: Read,
    source: str | None = None,
    status: Annotated[str | None, Query(pattern="^(queued|running|completed|interrupted|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Queued scans (of this server), then recorded ones, newest first; running ones show live progress."""
    queued = request.app.state.scans.queued()
    if source is not None:
        name = source_svc.source_ref(ctx, source)[1]
        queued = [q for q in queued if q["source"] == name]
    data = queued if status in (None, "queued") else []
    if status != "queued":
        data += scan_svc.list_scans(ctx, source, status, limit)
    return {"data": data[:limit], "count": len(data[:limit])}


@router.get("/scans/{scan_id}")
def show_scan(scan_id: RowId, ctx: Ctx, _: Read) -> dict[str, Any]:
    """A scan record; while it runs: counts so far, the folder being read, files and bytes per second."""
    return get_scan(ctx, scan_id)


@router.post("/scans/{scan_id}/cancel")
def cancel_scan(scan_id: RowId, request: Request, _: Write) -> dict[str, Any]:
    """Stop a running scan: it ends interrupted, and the next scan of the source resumes its work."""
    return request.app.state.scans.cancel(scan_id)  # type: ignore[no-any-return]
