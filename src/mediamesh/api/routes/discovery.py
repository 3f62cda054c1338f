"""``/api/v1/discovery`` (admin): NAS and shares on this network, for the add-source page and scripts."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mediamesh.api.schemas import AUTHENTICATED
from mediamesh.services import discovery as svc
from mediamesh.web.security import Admin

router = APIRouter(prefix="/api/v1/discovery", tags=["discovery"], responses=AUTHENTICATED)


def _limiter(request: Request) -> anyio.CapacityLimiter:
    """One discovery at a time: a second request waits, then takes the first one's (cached) answer."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "discovery_limiter", None)
    if limiter is None:
        limiter = request.app.state.discovery_limiter = anyio.CapacityLimiter(1)
    return limiter


@router.get("")
async def discover(
    request: Request,
    _: Admin,
    host: Annotated[
        str | None, Query(max_length=255, description="Ask this host for its shares instead of listening.")
    ] = None,
    seconds: Annotated[
        float, Query(ge=0.5, le=svc.MAX_SECONDS, description="How long to listen for announcements.")
    ] = svc.SECONDS,
    fresh: Annotated[bool, Query(description="Look again now, not the answer kept for a minute.")] = False,
) -> dict[str, Any]:
    """Hosts that announce themselves (mDNS, WS-Discovery), or the one named, with the SMB shares and NFS
    exports they list, each as a location and the add-source form's fields, and whether it is registered
    already. Kept for a minute. 403 when MEDIAMESH_DISCOVERY=off."""
    discovery: svc.Discovery = request.app.state.discovery
    return await anyio.to_thread.run_sync(
        discovery.find, host, seconds, None, None, fresh, limiter=_limiter(request)
    )


class ShareQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1, max_length=255)
    user: str = Field(min_length=1, max_length=128)
    password: str = Field(max_length=1024)


@router.post("/shares")
async def shares_with_a_password(body: ShareQuery, request: Request, _: Admin) -> dict[str, Any]:
    """The shares one host lists to a user who logs in (some NAS list nothing to a guest). Never kept."""
    discovery: svc.Discovery = request.app.state.discovery
    return await anyio.to_thread.run_sync(
        discovery.find, body.host, svc.SECONDS, body.user, body.password, limiter=_limiter(request)
    )
