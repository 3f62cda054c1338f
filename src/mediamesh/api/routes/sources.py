"""``/api/v1/sources``: the same service layer as ``mediamesh source``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from mediamesh.api.schemas import AUTHENTICATED
from mediamesh.errors import Forbidden
from mediamesh.services import sources as svc
from mediamesh.web.deps import Ctx
from mediamesh.web.security import Read, Write

WATCH_HELP = (
    "How the server learns of changes: auto (notifications where the source has them, else polling), "
    "notify, poll or off; on means auto."
)

router = APIRouter(prefix="/api/v1/sources", tags=["sources"], responses=AUTHENTICATED)
mounts_router = APIRouter(prefix="/api/v1/mounts", tags=["sources"], responses=AUTHENTICATED)


@mounts_router.get("")
def list_mounts(ctx: Ctx, _: Read) -> dict[str, Any]:
    """Each source's mount state: ``in-app`` (read over the network by mediamesh), ``mounted`` or ``not
    mounted`` (a folder that must be a mount point), ``folder`` (a plain folder), ``unknown`` (not probed
    yet); with the kernel mount that the server keeps for it, if any (option A, docs/deploy.md)."""
    data = svc.mount_states(ctx)
    return {"data": data, "count": len(data)}


class _Where(BaseModel):
    """Where a source is: a location as typed, or a kind with its form fields (the web UI's form)."""

    model_config = ConfigDict(extra="forbid")
    location: str | None = Field(
        None, max_length=4096, examples=["smb://media@192.168.0.19/video", "/mnt/media"]
    )
    kind: str | None = Field(None, max_length=16, description="With fields: the kind they describe.")
    fields: dict[str, str] | None = Field(
        None,
        max_length=32,
        description="Instead of location: the kind's form fields (GET /api/v1/sources/kinds), "
        'such as {"host": "nas.local", "share": "video"}.',
    )

    def where(self) -> str | None:
        return svc.location_text(self.location, self.kind, self.fields)


class SourceCreate(_Where):
    name: str = Field(max_length=64, examples=["nas19"])
    password: str | None = Field(None, max_length=1024, description="Stored encrypted, never returned.")
    private_key: str | None = Field(
        None, max_length=16384, description="An OpenSSH private key (SFTP), stored encrypted, never returned."
    )
    include: list[str] = Field(default_factory=list, max_length=100)
    exclude: list[str] = Field(default_factory=list, max_length=100)
    force: bool = Field(False, description="Register even if the location cannot be reached now.")
    schedule: str | None = Field(
        None, max_length=200, description="Scan on a schedule: an interval (6h, 1d) or cron (0 3 * * *)."
    )
    priority: int = Field(0, ge=-1000, le=1000, description="Content is served from higher first.")
    watch: str | None = Field(None, max_length=16, description=WATCH_HELP)
    expect_mount: bool | None = Field(
        None,
        description="A local folder that must be a mount point (a share the host mounts): while nothing "
        "is mounted there it is offline, 'not mounted'. Default: a folder that is a mount point now, or "
        "sits directly in MEDIAMESH_MOUNTS_DIR.",
    )
    kernel_mount: bool = Field(
        False,
        description="Admin only, with MEDIAMESH_MOUNT_SHARES=on: the server mounts this smb:// or nfs:// "
        "location with the kernel's client at MEDIAMESH_MOUNTS_DIR/{name} and reads it as a local folder.",
    )


class SourceUpdate(_Where):
    password: str | None = Field(None, max_length=1024)
    private_key: str | None = Field(
        None, max_length=16384, description="An OpenSSH private key (SFTP), stored encrypted, never returned."
    )
    include: list[str] | None = Field(None, max_length=100)
    exclude: list[str] | None = Field(None, max_length=100)
    enabled: bool | None = Field(None, description="False unmounts the source; true mounts it again.")
    force: bool = False
    schedule: str | None = Field(None, max_length=200, description='"" or "off" removes the schedule.')
    priority: int | None = Field(None, ge=-1000, le=1000)
    watch: str | None = Field(None, max_length=16, description=WATCH_HELP)
    expect_mount: bool | None = Field(
        None, description="The folder must be a mount point (true), or is a plain folder (false)."
    )
    worker_paths: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        None,
        max_length=32,
        description='Where scan workers read this source as a local folder, by worker name: {"nas": '
        '"/volume1/video"} (docs/scale-out.md); "" removes a worker\'s path. Merged into the current ones.',
    )


class LocationTest(_Where):
    password: str | None = Field(None, max_length=1024, description="Used for this test only, not stored.")
    private_key: str | None = Field(None, max_length=16384, description="Used for this test only.")
    source: str | None = Field(
        None, max_length=64, description="A registered source whose stored password to use if none is given."
    )


@router.get("")
def list_sources(ctx: Ctx, _: Read) -> dict[str, Any]:
    data = svc.list_sources(ctx)
    return {"data": data, "count": len(data)}


@router.get("/kinds")
def source_kinds(_: Read) -> dict[str, Any]:
    """The kinds of source this server can read: location syntax, form fields (which are secret), and
    features."""
    data = svc.source_kinds()
    return {"data": data, "count": len(data)}


@router.post("", status_code=201)
def add_source(body: SourceCreate, ctx: Ctx, token: Write) -> dict[str, Any]:
    if body.kernel_mount and token["scope"] != "admin":
        raise Forbidden("a kernel mount runs mount(8) as root on the server: it needs an admin token")
    return svc.add_source(
        ctx,
        body.name,
        body.where() or "",
        body.include,
        body.exclude,
        body.force,
        body.password,
        schedule=body.schedule,
        priority=body.priority,
        private_key=body.private_key,
        watch=body.watch,
        expect_mount=body.expect_mount,
        kernel_mount=body.kernel_mount,
    )


@router.post("/test")
def test_location(body: LocationTest, ctx: Ctx, _: Write) -> dict[str, Any]:
    """Try a location before registering it: reachable or not and why, latency, capacity. Nothing is saved."""
    location = body.where() or ""
    return svc.test_location(ctx, location, body.password, body.source, body.private_key)


@router.get("/{id_or_name}")
def show_source(id_or_name: str, ctx: Ctx, _: Read) -> dict[str, Any]:
    return svc.show_source(ctx, id_or_name)


@router.patch("/{id_or_name}")
def update_source(id_or_name: str, body: SourceUpdate, ctx: Ctx, token: Write) -> dict[str, Any]:
    """Change a source. Pointing a local source at another folder needs an admin token; a new SMB server,
    share or user needs the password again."""
    if body.enabled is not None and body.model_fields_set == {"enabled"}:
        return svc.set_mounted(ctx, id_or_name, body.enabled)
    return svc.update_source(
        ctx,
        id_or_name,
        location=body.where(),
        include=body.include,
        exclude=body.exclude,
        password=body.password,
        enabled=body.enabled,
        force=body.force,
        schedule=body.schedule,
        priority=body.priority,
        may_move_local=token["scope"] == "admin",
        private_key=body.private_key,
        watch=body.watch,
        expect_mount=body.expect_mount,
        worker_paths=body.worker_paths,
    )


@router.delete("/{id_or_name}")
def remove_source(id_or_name: str, ctx: Ctx, _: Write) -> dict[str, Any]:
    return svc.remove_source(ctx, id_or_name)


@router.post("/{id_or_name}/check")
def check_source(id_or_name: str, ctx: Ctx, _: Write) -> dict[str, Any]:
    return svc.check_source(ctx, id_or_name)
