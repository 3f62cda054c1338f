"""schemathesis against the app's own OpenAPI: every operation, with and without a token, must answer
as documented and never with a server error. Generated locations cannot leave this machine: the
session-wide loopback guard (conftest.py) refuses any other connection or name look-up."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.types import ASGIApp, Receive, Scope, Send

from mediamesh.server import create_app
from mediamesh.services import tokens as token_svc
from tests.conftest import make_settings


class NoDelay:
    """Bad-token slow-down is tested on its own; here it would only make generated calls wait."""

    def delay(self, host: str) -> float:
        return 0.0


def from_loopback(app: ASGIApp) -> ASGIApp:
    """The in-process transport calls its client "testclient"; the allowlist wants an address. The schema
    itself needs a token: the one request that loads it carries one."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") == "/api/v1/openapi.json" and not any(
            k == b"authorization" for k, _ in scope["headers"]
        ):
            scope = {
                **scope,
                "headers": [*scope["headers"], (b"authorization", f"Bearer {SCHEMA_TOKEN}".encode())],
            }
        await app({**scope, "client": ("127.0.0.1", 40000)}, receive, send)

    return wrapped


# Built at collection: schemathesis makes one test per operation from the schema.
DATA = Path(tempfile.mkdtemp(prefix="mediamesh-schema-"))
APP = create_app(make_settings(DATA, health_interval=3600))
APP.state.failed_logins = NoDelay()
SCHEMA_TOKEN = token_svc.create_token(APP.state.ctx, "schema", "read")[1]


def load() -> schemathesis.schemas.BaseSchema:
    # Starting scans of what the fuzzer registers (it may register "/") would read this whole machine.
    loaded = schemathesis.openapi.from_asgi("/api/v1/openapi.json", from_loopback(APP))
    # The event stream never ends by itself (Server-Sent Events), and this client waits for whole bodies:
    # a case that reached it waited forever. tests/test_events_api.py reads it as a client does.
    return loaded.exclude(method="POST", path_regex=r"/scans$").exclude(method="GET", path_regex=r"/events$")


anonymous = load()
authenticated = load()


@authenticated.auth(refresh_interval=None)
class AdminToken:
    """A fresh admin token for every case (a case may revoke the one it was given)."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:  # type: ignore[type-arg]
        return token_svc.create_token(APP.state.ctx, "fuzz", "admin")[1]

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:  # type: ignore[type-arg]
        case.headers["Authorization"] = f"Bearer {data}"


# Every check but "schema-valid input is accepted": a well-formed request may still be refused for what
# it says (a password for a local folder, a schedule that is no schedule) with a documented 4xx.
EXCLUDED: list[CheckFunction] = [positive_data_acceptance]
SEEN: Counter[int] = Counter()
# MEDIAMESH_FUZZ_EXAMPLES=500 for a longer hunt than CI's.
FUZZ = settings(
    max_examples=int(os.environ.get("MEDIAMESH_FUZZ_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module", autouse=True)
def running() -> Iterator[None]:
    with TestClient(APP):  # the lifespan: scan queue, probes and scheduler run as in serve
        yield
    shutil.rmtree(DATA, ignore_errors=True)


@authenticated.parametrize()
@FUZZ
def test_with_an_admin_token(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
    response = case.call_and_validate(excluded_checks=EXCLUDED)
    SEEN[response.status_code // 100] += 1


@anonymous.parametrize()
@FUZZ
def test_without_a_token(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
    response = case.call_and_validate(excluded_checks=EXCLUDED)
    if case.path != "/api/v1/health":
        assert response.status_code in (400, 401, 403, 405, 421, 422), (case.method, case.path, response.text)


def test_the_token_run_reached_the_routes() -> None:
    """Guards the harness: with the token, most answers must come from the routes, not from 401s."""
    if not SEEN:
        pytest.skip("run with the schemathesis tests above")
    assert SEEN[2] > 100, SEEN
