"""``/api/v1/tokens`` (admin): create (shown once; optionally limited to some sources or projects), list,
revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from mediamesh.api.schemas import AUTHENTICATED
from mediamesh.services import tokens as svc
from mediamesh.web.deps import Ctx, RowId
from mediamesh.web.security import Admin

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"], responses=AUTHENTICATED)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    scope: str = Field(pattern="^(read|write|admin)$")
    sources: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Limit a read token to these sources (by name): it then opens the WebDAV view only.",
    )
    projects: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Limit a read token to these projects (by name): it then opens the WebDAV view only.",
    )


@router.get("")
def list_tokens(ctx: Ctx, _: Admin) -> dict[str, Any]:
    data = svc.list_tokens(ctx)
    return {"data": data, "count": len(data)}


@router.post("", status_code=201)
def create_token(body: TokenCreate, ctx: Ctx, caller: Admin) -> dict[str, Any]:
    token, value = svc.create_token(
        ctx, body.name, body.scope, caller["scope"], source_names=body.sources, project_names=body.projects
    )
    return {**token, "token": value}


@router.delete("/{token_id}")
def revoke_token(token_id: RowId, request: Request, ctx: Ctx, _: Admin) -> dict[str, Any]:
    revoked = svc.revoke_token(ctx, token_id)
    request.app.state.token_cache.forget(token_id)
    return revoked
