"""``/api/v1/webhooks``: URLs that get events as signed POSTs (admin only; see services/webhooks.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from mediamesh.api.schemas import AUTHENTICATED
from mediamesh.services import webhooks as svc
from mediamesh.web.deps import Ctx
from mediamesh.web.security import Admin

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=AUTHENTICATED)
Events = Field(
    None,
    max_length=50,
    description="Event types or prefixes (media.added, scan.*); empty or absent: every event.",
)


class WebhookCreate(BaseModel):
    name: str = Field(max_length=64, examples=["home-assistant"])
    url: str = Field(max_length=2000, examples=["https://hooks.home.lan/mediamesh"])
    events: list[str] | None = Events
    secret: str | None = Field(
        None, min_length=16, max_length=200, description="Signing secret; default: a new random one."
    )


class WebhookUpdate(BaseModel):
    url: str | None = Field(None, max_length=2000)
    events: list[str] | None = Events
    enabled: bool | None = Field(
        None, description="False: nothing is sent; true again: from the newest event."
    )


@router.get("")
def list_webhooks(ctx: Ctx, _: Admin) -> dict[str, Any]:
    data = svc.list_webhooks(ctx)
    return {"data": data, "count": len(data)}


@router.post("", status_code=201)
def create_webhook(body: WebhookCreate, ctx: Ctx, _: Admin) -> dict[str, Any]:
    """Register a webhook. The answer holds its signing secret, shown this once. The URL must be in
    MEDIAMESH_WEBHOOK_ALLOW."""
    return svc.create_webhook(ctx, body.name, body.url, body.events, body.secret)


@router.get("/{id_or_name}")
def show_webhook(id_or_name: str, ctx: Ctx, _: Admin) -> dict[str, Any]:
    return svc.show_webhook(ctx, id_or_name)


@router.patch("/{id_or_name}")
def update_webhook(id_or_name: str, body: WebhookUpdate, ctx: Ctx, _: Admin) -> dict[str, Any]:
    return svc.update_webhook(ctx, id_or_name, url=body.url, events=body.events, enabled=body.enabled)


@router.delete("/{id_or_name}")
def remove_webhook(id_or_name: str, ctx: Ctx, _: Admin) -> dict[str, Any]:
    return svc.remove_webhook(ctx, id_or_name)


@router.get("/{id_or_name}/deliveries")
def webhook_deliveries(
    id_or_name: str, ctx: Ctx, _: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """The delivery log, newest first: event, attempt, outcome, HTTP status, error, duration."""
    data = svc.deliveries(ctx, id_or_name, limit)
    return {"data": data, "count": len(data)}


@router.post("/{id_or_name}/test")
def test_webhook(id_or_name: str, ctx: Ctx, _: Admin) -> dict[str, Any]:
    """Send a ``ping`` event now and say how it went."""
    return svc.ping_webhook(ctx, id_or_name)
