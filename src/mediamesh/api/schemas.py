"""Response shapes shared by the routes, so that OpenAPI documents every answer a route can give."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses."""
    described = {
        400: "The request cannot be parsed (a body that is not JSON)",
        401: "No valid token (Authorization: Bearer TOKEN)",
        403: "The token's scope is too small, or the address is not allowed",
        404: "Not found",
        409: "Conflicts with the current state",
        416: "Range not satisfiable",
        421: "Host name not allowed (MEDIAMESH_ALLOWED_HOSTS)",
        422: "Invalid input",
        503: "A source cannot be reached now",
    }
    return {s: {"model": ErrorBody, "description": described.get(s, "Error")} for s in statuses}


#: What any route may answer: the allowlist (403), the host check (421) and bad input (422).
COMMON = errors(400, 403, 421, 422)
#: What a route behind a token may answer besides.
AUTHENTICATED = errors(400, 401, 403, 404, 409, 421, 422, 503)


class Location(BaseModel):
    source: str
    path: str
    state: Literal["present", "missing", "offline"]
    size: int
    mtime_ns: int
    missing_since: str | None


class Media(BaseModel):
    id: str = Field(description="BLAKE3-256 of the content, as b3sum prints it")
    size: int
    kind: str
    state: Literal["present", "missing", "offline"]
    copies: int = Field(description="Present locations")
    locations: list[Location]


class MediaPage(BaseModel):
    data: list[Media]
    count: int
    next: str | None = Field(description="cursor of the next page, or null on the last")


class FileRow(BaseModel):
    id: int
    source: str
    path: str
    size: int
    mtime_ns: int
    media_id: str
    state: Literal["present", "missing", "offline"]


class FilePage(BaseModel):
    data: list[FileRow]
    count: int
    next: int | None
