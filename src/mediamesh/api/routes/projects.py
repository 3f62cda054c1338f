"""``/api/v1/projects`` and ``/api/v1/project-templates``: the same service layer as ``mediamesh project``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mediamesh.api.responses import FastJSON
from mediamesh.api.schemas import AUTHENTICATED, MediaPage
from mediamesh.errors import NotFound
from mediamesh.services import media as media_svc
from mediamesh.services import projects as svc
from mediamesh.services.sources import ROW_ID
from mediamesh.web.deps import Ctx, run_query
from mediamesh.web.security import Read, Write

router = APIRouter(prefix="/api/v1", tags=["projects"], responses=AUTHENTICATED)


class Rule(BaseModel):
    """Every field given must match; a rule needs at least one."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, max_length=1000, examples=["Projects/Wedding-2024/**"])
    sources: list[str] | None = Field(None, max_length=100, description="Source ids or names.")
    kinds: list[str] | None = Field(None, max_length=4, examples=[["video", "image"]])
    extensions: list[str] | None = Field(None, max_length=100, examples=[["mov", "mp4"]])
    min_size: int | None = Field(None, ge=0, le=2**62)
    max_size: int | None = Field(None, ge=0, le=2**62)
    modified_after: str | None = Field(None, max_length=40, examples=["2024-06-01"])
    modified_before: str | None = Field(None, max_length=40)

    def spec(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Wedding-2024"])
    description: str = Field("", max_length=10_000)
    rules: list[Rule] = Field(default_factory=list, max_length=100)


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    rules: list[Rule] | None = Field(None, max_length=100, description="Replaces every rule.")


class MediaRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: str = Field(min_length=1, max_length=100)


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=1000, examples=["Projects/{project}/**"])
    sources: list[str] | None = Field(None, max_length=100)
    kinds: list[str] | None = Field(None, max_length=4)


@router.get("/projects")
def list_projects(ctx: Ctx, _: Read) -> dict[str, Any]:
    """Every project with its rules, counts per kind, size, media on offline sources only, single copies."""
    data = svc.list_projects(ctx)
    return {"data": data, "count": len(data)}


@router.post("/projects", status_code=201)
def create_project(body: ProjectCreate, ctx: Ctx, _: Write) -> dict[str, Any]:
    """A project, filled at once by its rules from the catalog (no source is read)."""
    return svc.create_project(ctx, body.name, body.description, [r.spec() for r in body.rules])


@router.post("/projects/preview")
async def preview_rule(body: Rule, request: Request, ctx: Ctx, _: Read) -> dict[str, Any]:
    """How many locations and media a rule would match, before saving it. Previews pass every location
    of the catalog: they run on the API's few catalog threads, so many at once wait instead of
    starving the server."""
    return await run_query(request, svc.preview_rule, ctx, body.spec())


@router.get("/projects/{id_or_name}")
def show_project(id_or_name: str, ctx: Ctx, _: Read) -> dict[str, Any]:
    return svc.show_project(ctx, id_or_name)


@router.patch("/projects/{id_or_name}")
def update_project(id_or_name: str, body: ProjectUpdate, ctx: Ctx, _: Write) -> dict[str, Any]:
    """Rename, describe or replace the rules; memberships follow at once, without a rescan."""
    rules = [r.spec() for r in body.rules] if body.rules is not None else None
    return svc.update_project(ctx, id_or_name, body.name, body.description, rules)


@router.delete("/projects/{id_or_name}")
def remove_project(id_or_name: str, ctx: Ctx, _: Write) -> dict[str, Any]:
    """Forget a project (media and files are untouched)."""
    return svc.remove_project(ctx, id_or_name)


@router.get("/projects/{id_or_name}/media", response_class=FastJSON, responses={200: {"model": MediaPage}})
async def project_media(
    id_or_name: str,
    request: Request,
    ctx: Ctx,
    _: Read,
    state: str | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=media_svc.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> FastJSON:
    """The project's media, each with every location and its state."""
    page = await run_query(
        request, media_svc.list_media, ctx, None, state, False, kind, limit, cursor, None, False, id_or_name
    )
    return FastJSON(page)


@router.post("/projects/{id_or_name}/media", status_code=201)
def add_media(id_or_name: str, body: MediaRef, ctx: Ctx, _: Write) -> dict[str, Any]:
    """Put a media item into the project by hand (it follows the content: moves, renames, other copies)."""
    return svc.add_media(ctx, id_or_name, body.media_id)


@router.delete("/projects/{id_or_name}/media/{media_id}")
def remove_media(id_or_name: str, media_id: str, ctx: Ctx, _: Write) -> dict[str, Any]:
    """Take a media item out by hand; this wins over the rules until it is added again."""
    return svc.remove_media(ctx, id_or_name, media_id)


@router.get("/media/{media_id}/projects", tags=["catalog"])
def media_projects(media_id: str, ctx: Ctx, _: Read) -> dict[str, Any]:
    """The projects a media item is in, and why (rule, template and location, or by hand)."""
    return svc.explain(ctx, media_id)


@router.get("/project-templates")
def list_templates(ctx: Ctx, _: Read) -> dict[str, Any]:
    data = svc.list_templates(ctx)
    return {"data": data, "count": len(data)}


@router.post("/project-templates", status_code=201)
def add_template(body: TemplateCreate, ctx: Ctx, _: Write) -> dict[str, Any]:
    """``Projects/{project}/**``: one project per folder name found, made and filled now and at every scan."""
    return svc.add_template(ctx, body.path, body.sources, body.kinds)


@router.post("/project-templates/preview")
async def preview_template(body: TemplateCreate, request: Request, ctx: Ctx, _: Read) -> dict[str, Any]:
    """The projects a template would make (up to 100 names) and what it would match, before saving it
    (on the catalog threads, like rule previews)."""
    return await run_query(request, svc.preview_template, ctx, body.path, body.sources, body.kinds)


@router.delete("/project-templates/{template_id}")
def remove_template(
    template_id: Annotated[str, Path(max_length=40, description="The template's id.")], ctx: Ctx, _: Write
) -> dict[str, Any]:
    """Stop a template; the projects it made stay."""
    # A string, not RowId: "preview" is another route's word here, so a DELETE of it is a 404, not a 422.
    if not ROW_ID.fullmatch(template_id):
        raise NotFound(f"no project template {template_id!r}")
    return svc.remove_template(ctx, int(template_id))


@router.post("/projects/apply")
def apply_rules(ctx: Ctx, _: Write) -> dict[str, Any]:
    """Re-apply every rule and template to the whole catalog (idempotent; no source is read)."""
    return svc.apply_rules(ctx)
