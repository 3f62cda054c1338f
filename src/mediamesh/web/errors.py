"""Every error answers ``{"error": {"code", "message"}}`` with a 4xx status; bad input is never a 500."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mediamesh.errors import MediameshError

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=dict(headers or {})
    )


def _methods_of(request: Request) -> list[str]:
    """Every method of every route at this path (Starlette's 405 names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


#: Renders an error as a web page: (request, status, message) -> response.
HtmlErrors = Callable[[Request, int, str], Response]


def install(app: FastAPI, html: HtmlErrors | None = None) -> None:
    """JSON errors for the API; with ``html``, web pages get their errors as pages of the UI."""

    def answer(
        request: Request, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        if html is not None and not request.url.path.startswith(("/api/", "/metrics", "/dav")):
            return html(request, status, message)
        return error_response(status, code, message, headers)

    @app.exception_handler(MediameshError)
    async def mediamesh_error(request: Request, exc: MediameshError) -> Response:
        return answer(request, exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return answer(
            request, 422, "invalid_input", f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_methods_of(request))
        return answer(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:  # a bug: logged, never a traceback
        log.exception("unhandled error")
        return answer(request, 500, "internal_error", "an internal error happened; it was logged")
