"""The event stream (``GET /api/v1/events``, Server-Sent Events) and webhooks, over real HTTP: the server
runs in this process under uvicorn on 127.0.0.1, webhooks go to a receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from mediamesh.api.routes import events as events_route
from mediamesh.cli.serve import SHUTDOWN_GRACE
from mediamesh.server import create_app
from mediamesh.services import projects as project_svc
from mediamesh.services import tokens as token_svc
from mediamesh.services import webhooks as webhook_svc
from mediamesh.services.scans import run_scan
from mediamesh.services.sources import add_source
from tests.conftest import make_settings, write
from tests.test_serve import free_port


class LiveServer:
    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.app = create_app(make_settings(tmp, **settings))
        self.ctx = self.app.state.ctx
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def token(self, scope: str = "read", **kw: Any) -> str:
        return token_svc.create_token(self.ctx, f"{scope}-{time.monotonic_ns()}", scope, **kw)[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    running = LiveServer(tmp_path, webhook_allow="127.0.0.1/32")
    yield running
    running.stop()


class Stream:
    """Reads SSE messages from a streaming response on a thread of its own."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.messages: list[dict[str, str]] = []
        self.ended = threading.Event()
        self.status = 0
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=60))
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                self._ready.set()
                message: dict[str, str] = {}
                for line in response.iter_lines():
                    if not line:
                        if message:
                            self.messages.append(message)
                        message = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        message[key] = value.strip()
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()
            self.ended.set()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m["data"]) for m in self.messages if "data" in m and "event" not in m]

    def wait(self, predicate: Any, seconds: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while not predicate(self.events()):
            assert time.monotonic() < deadline, f"no such event came; got {self.messages}"
            time.sleep(0.05)
        return self.events()

    def close(self) -> None:
        self._client.close()


def test_the_stream_tells_what_changes_as_it_happens(server: LiveServer, tmp_path: Path) -> None:
    library = tmp_path / "library"
    write(library / "a.jpg", 1000)
    token = server.token("read")
    stream = Stream(f"{server.base}/api/v1/events", {"Authorization": f"Bearer {token}"})
    try:
        assert stream.status == 200
        add_source(server.ctx, "lib", str(library))
        run_scan(server.ctx, "lib")
        got = stream.wait(lambda evs: any(e["type"] == "scan.finished" for e in evs))
        types = [e["type"] for e in got]
        assert types.index("scan.started") < types.index("media.added") < types.index("scan.finished")
        added = next(e for e in got if e["type"] == "media.added")
        assert added["data"]["source"] == "lib" and added["data"]["items"][0]["path"] == "a.jpg"
        ids = [int(m["id"]) for m in stream.messages if "id" in m]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        stream.close()

    # Reconnecting with Last-Event-ID replays what came after it, and only that.
    first_id = ids[0]
    again = Stream(
        f"{server.base}/api/v1/events?types=media.*",
        {"Authorization": f"Bearer {token}", "Last-Event-ID": str(first_id)},
    )
    try:
        replayed = again.wait(lambda evs: len(evs) >= 1)
        assert [e["type"] for e in replayed] == ["media.added"]
        assert all(e["id"] > first_id for e in replayed)
    finally:
        again.close()


def test_who_may_listen(server: LiveServer, tmp_path: Path) -> None:
    write(tmp_path / "lib" / "a.jpg", 10)
    add_source(server.ctx, "lib", str(tmp_path / "lib"))
    with httpx.Client() as client:
        assert client.get(f"{server.base}/api/v1/events").status_code == 401
        limited = server.token("read", source_names=["lib"])  # the WebDAV view only
        refused = client.get(f"{server.base}/api/v1/events", headers={"Authorization": f"Bearer {limited}"})
        assert refused.status_code == 403
        bad = client.get(
            f"{server.base}/api/v1/events?types=media.deleted",
            headers={"Authorization": f"Bearer {server.token('read')}"},
        )
        assert bad.status_code == 422 and "unknown event type" in bad.json()["error"]["message"]
        recent = client.get(
            f"{server.base}/api/v1/events/recent?limit=5",
            headers={"Authorization": f"Bearer {server.token()}"},
        )
        assert recent.status_code == 200 and recent.json()["count"] == 0


def test_a_revoked_token_ends_its_stream(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_route, "RECHECK", 0.3)
    monkeypatch.setattr(events_route, "KEEPALIVE", 0.2)
    created, value = token_svc.create_token(server.ctx, "to-revoke", "read")
    stream = Stream(f"{server.base}/api/v1/events", {"Authorization": f"Bearer {value}"})
    try:
        time.sleep(0.5)
        assert not stream.ended.is_set()
        token_svc.revoke_token(server.ctx, created["id"])
        assert stream.ended.wait(15), "the stream outlived its token"
        assert stream.messages[-1].get("event") == "unauthorized"
    finally:
        stream.close()


# -- webhooks ---------------------------------------------------------------------------------------------
class Receiver:
    """An HTTP server on 127.0.0.1 that records what it is sent and answers what it is told to."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []  # status codes to answer with, in order; then 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.http.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def wait_for(check: Any, seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out: {check}"
        time.sleep(0.05)
    return value


def test_webhooks_deliver_signed_events_in_order(server: LiveServer, receiver: Receiver) -> None:
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    with httpx.Client(base_url=server.base, headers=admin) as client:
        created = client.post(
            "/api/v1/webhooks", json={"name": "Home", "url": receiver.url, "events": ["project.*"]}
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")
        shown = client.get("/api/v1/webhooks/home").json()
        assert "secret" not in shown and shown["events"] == ["project.*"]
        listed = client.get("/api/v1/webhooks").json()["data"]
        assert all("secret" not in w for w in listed)

        for name in ("One", "Two", "Three"):
            project_svc.create_project(server.ctx, name)
        wait_for(lambda: len(receiver.requests) >= 3)
        got = receiver.payloads()
        assert [p["data"]["project"] for p in got] == ["One", "Two", "Three"]
        assert {p["type"] for p in got} == {"project.created"}
        for headers, body in receiver.requests:
            t, v1 = (part.split("=", 1)[1] for part in headers["x-mediamesh-signature"].split(","))
            expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(v1, expected)
            assert abs(int(t) - time.time()) < 60
            assert headers["x-mediamesh-event"] == "project.created"
            assert headers["content-type"] == "application/json"

        # The receiver has the third request before the sender has written down its answer.
        def deliveries() -> list[dict[str, Any]]:
            data: list[dict[str, Any]] = client.get("/api/v1/webhooks/home/deliveries").json()["data"]
            return data

        wait_for(lambda: len(deliveries()) >= 3)
        log = deliveries()
        assert [d["outcome"] for d in log] == ["delivered"] * 3
        assert all(d["http_status"] == 204 for d in log)

        ping = client.post("/api/v1/webhooks/home/test").json()
        assert ping == {"delivered": True, "http_status": 204, "error": None}
        assert receiver.payloads()[-1]["type"] == "ping"

        # Switched off, nothing goes; switched on, only what happens from then on.
        assert client.patch("/api/v1/webhooks/home", json={"enabled": False}).json()["enabled"] is False
        count = len(receiver.requests)
        project_svc.create_project(server.ctx, "While-off")
        time.sleep(1.5)
        assert len(receiver.requests) == count
        client.patch("/api/v1/webhooks/home", json={"enabled": True})
        project_svc.create_project(server.ctx, "After")
        wait_for(lambda: len(receiver.requests) == count + 1)
        assert receiver.payloads()[-1]["data"]["project"] == "After"

        assert client.delete("/api/v1/webhooks/home").json()["removed"] is True
        assert client.get("/api/v1/webhooks/home").status_code == 404


def test_a_failed_delivery_is_retried_then_given_up(tmp_path: Path, receiver: Receiver) -> None:
    from mediamesh.context import Context

    ctx = Context(make_settings(tmp_path, webhook_allow="127.0.0.0/8"))
    try:
        webhook_svc.create_webhook(ctx, "flaky", receiver.url)
        sender = webhook_svc.WebhookSender(ctx, backoff=(0.05, 0.05, 0.05))
        receiver.answers = [500, 503]  # then 204
        project_svc.create_project(ctx, "First")
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 3 and time.monotonic() < deadline:
            sender.deliver_due()
            time.sleep(0.06)
        outcomes = [(d["outcome"], d["attempt"]) for d in reversed(webhook_svc.deliveries(ctx, "flaky"))]
        assert outcomes == [("retrying", 1), ("retrying", 2), ("delivered", 3)]
        assert [p["data"]["project"] for p in receiver.payloads()] == ["First"] * 3

        # A receiver that keeps failing (or redirects) is given up on after the retries; the next goes.
        receiver.answers = [302] * 4
        project_svc.create_project(ctx, "Second")
        project_svc.create_project(ctx, "Third")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            p["data"]["project"] == "Third" for p in receiver.payloads()
        ):
            sender.deliver_due()
            time.sleep(0.06)
        log = webhook_svc.deliveries(ctx, "flaky")
        failed = next(d for d in log if d["outcome"] == "failed")
        assert failed["attempt"] == 4 and "redirects are not followed" in failed["error"]
        assert receiver.payloads()[-1]["data"]["project"] == "Third"
        assert all(h.get("host", "").startswith("127.0.0.1") for h, _ in receiver.requests)
        assert not any(b"/elsewhere" in b for _, b in receiver.requests)
    finally:
        ctx.close()


def test_webhooks_go_only_where_the_admin_allows(tmp_path: Path, receiver: Receiver) -> None:
    from mediamesh.context import Context
    from mediamesh.errors import Forbidden, InvalidInput

    off = Context(make_settings(tmp_path / "off"))
    try:
        with pytest.raises(Forbidden, match="webhooks are off"):
            webhook_svc.create_webhook(off, "x", receiver.url)
    finally:
        off.close()
    ctx = Context(make_settings(tmp_path / "on", webhook_allow="127.0.0.2/32,localhost"))
    try:
        with pytest.raises(Forbidden, match="not in MEDIAMESH_WEBHOOK_ALLOW"):
            webhook_svc.create_webhook(ctx, "x", receiver.url)  # 127.0.0.1 is not allowed
        # A name that is allowed still may not reach loopback unless a network entry says so.
        with pytest.raises(Forbidden):
            webhook_svc.create_webhook(ctx, "x", f"http://localhost:{receiver.port}/hook")
        for bad in (
            "ftp://127.0.0.2/x",
            "http://user:pw@127.0.0.2/x",
            "http://127.0.0.2:99999/x",
            "nonsense",
        ):
            with pytest.raises(InvalidInput):
                webhook_svc.create_webhook(ctx, "x", bad)
        with pytest.raises(InvalidInput, match="unknown event type"):
            webhook_svc.create_webhook(ctx, "x", "http://127.0.0.2/x", ["media.deleted"])
        made = webhook_svc.create_webhook(ctx, "ok", "http://127.0.0.2:9/x")
        assert made["name"] == "ok"
    finally:
        ctx.close()


def test_webhooks_need_an_admin(server: LiveServer, receiver: Receiver) -> None:
    with httpx.Client(base_url=server.base) as client:
        for scope in ("read", "write"):
            headers = {"Authorization": f"Bearer {server.token(scope)}"}
            assert client.get("/api/v1/webhooks", headers=headers).status_code == 403
            answer = client.post("/api/v1/webhooks", headers=headers, json={"name": "x", "url": receiver.url})
            assert answer.status_code == 403
        assert not receiver.requests


def test_an_open_stream_never_keeps_the_server_from_stopping(tmp_path: Path) -> None:
    from tests.test_ui_browser import Server

    running = Server(tmp_path)
    stream = Stream(f"{running.base}/api/v1/events", {"Authorization": f"Bearer {running.admin_token}"})
    try:
        assert stream.status == 200
        started = time.monotonic()
        stderr = running.stop()
        assert time.monotonic() - started < SHUTDOWN_GRACE + 10, stderr[-2000:]
        assert stream.ended.wait(5)
        assert "Traceback" not in stderr, stderr[-3000:]
    finally:
        stream.close()
