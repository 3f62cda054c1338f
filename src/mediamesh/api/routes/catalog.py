"""Media, files and scans: read through the same services as the CLI; scans started in the background."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mediamesh.api.deps import Ctx
from mediamesh.api.security import Read, Write
from mediamesh.services import media as media_svc
from mediamesh.services.scans import get_scan

router = APIRouter(prefix="/api/v1", tags=["catalog"])

Limit = Annotated[int, Query(ge=1, le=media_svc.MAX_LIMIT)]


class ScanStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field("", max_length=4096, description="Scan only this folder (relative to the root).")
    confirm_missing: bool = False


@router.get("/media")
def list_media(
    ctx: Ctx,
    _: Read,
    source: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    duplicates: bool = False,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    return media_svc.list_media(ctx, source, state, duplicates, kind, limit, cursor)


@router.get("/media/{media_id}")
def show_media(media_id: str, ctx: Ctx, _: Read) -> dict[str, Any]:
    return media_svc.show_media(ctx, media_id)


@router.get("/files")
def list_files(
    ctx: Ctx,
    _: Read,
    source: str | None = None,
    path_prefix: str | None = None,
    state: str | None = None,
    limit: Limit = 100,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    return media_svc.list_files(ctx, source, path_prefix, state, limit, cursor)


@router.post("/sources/{id_or_name}/scans", status_code=202)
def start_scan(id_or_name: str, request: Request, _: Write, body: ScanStart | None = None) -> dict[str, Any]:
    body = body or ScanStart()
    return request.app.state.scans.start(id_or_name, body.path, body.confirm_missing)  # type: ignore[no-any-return]


@router.get("/scans/{scan_id}")
def show_scan(scan_id: int, ctx: Ctx, _: Read) -> dict[str, Any]:
    return get_scan(ctx, scan_id)
