"""Webhooks: events sent as signed JSON POSTs to URLs an admin registered, with retries and a delivery log.

A webhook is a way to make the server send requests, so where they may go is the admin's decision
(``MEDIAMESH_WEBHOOK_ALLOW``: networks and host names; empty, the default, means no webhook at all). The
target is resolved and checked at registration and again at every delivery, and the request goes to the
address that was checked (a name that resolves elsewhere a second later gets nowhere). Redirects are not
followed; the answer's body is not read beyond a few bytes.

Each webhook has a cursor in the event log: events are delivered one at a time, in order. A failed
delivery is tried again after 2 s, 10 s, 1 min, 5 min and 30 min, then given up (logged as ``failed``)
and the next event goes. The signature is HMAC-SHA256 over ``"{t}.{body}"`` with the webhook's secret,
sent as ``X-Mediamesh-Signature: t=<unix time>,v1=<hex>`` (shown once at creation, kept sealed).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, insert, select, update

from mediamesh import __version__
from mediamesh.catalog import events as event_log
from mediamesh.catalog.events import Event
from mediamesh.catalog.schema import webhook_deliveries, webhooks
from mediamesh.catalog.times import iso, now_utc
from mediamesh.context import Context
from mediamesh.crypto import SecretBox
from mediamesh.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

#: Seconds before each retry of a failed delivery; after the last, the event is given up for this webhook.
BACKOFF = (2.0, 10.0, 60.0, 300.0, 1800.0)
TIMEOUT = 10.0
KEEP_DELIVERIES = 500
SIGNATURE_HEADER = "X-Mediamesh-Signature"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- where webhooks may go -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Allowlist:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Allowlist:
        nets, names = [], set()
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                names.add(part.lower().rstrip("."))
        return cls(tuple(nets), frozenset(names))

    @property
    def empty(self) -> bool:
        return not self.networks and not self.names

    def allows(self, host: str, address: Address) -> bool:
        """An address in an allowed network; or one of an allowed name, unless it is a loopback, link-local,
        multicast or unspecified address that no network entry names (a name must not reach the server's
        own services by resolving to 127.0.0.1)."""
        if any(address in net for net in self.networks):
            return True
        special = (
            address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified
        )
        return host.lower().rstrip(".") in self.names and not special


def allowlist(ctx: Context) -> Allowlist:
    return Allowlist.parse(ctx.settings.webhook_allow)


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str) -> Target:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("a webhook URL looks like https://host[:port]/path")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("put no user name or password in a webhook URL; requests are signed instead")
    if parts.fragment:
        raise InvalidInput("a webhook URL has no #fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput(f"the port of {url!r} is not a number from 1 to 65535") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path)


def resolve(ctx: Context, target: Target) -> Address:
    """The address a delivery goes to: the first the name resolves to that the allowlist allows.
    Raises Forbidden (not allowed, or webhooks are off) or InvalidInput (the name does not resolve)."""
    allow = allowlist(ctx)
    if allow.empty:
        raise Forbidden(
            "webhooks are off: set MEDIAMESH_WEBHOOK_ALLOW to the networks or host names they may reach "
            "(for example 192.168.1.0/24 or hooks.home.lan)"
        )
    try:
        literal: Address | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        candidates = [literal]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise InvalidInput(f"the webhook's host {target.host!r} does not resolve") from None
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in candidates:
        if allow.allows(target.host, address):
            return address
    shown = ", ".join(sorted({str(a) for a in candidates}))
    raise Forbidden(
        f"{target.host} ({shown}) is not in MEDIAMESH_WEBHOOK_ALLOW; webhooks may only reach what it names"
    )


# -- the registry ----------------------------------------------------------------------------------------
def _public(conn: Connection, row: Any) -> dict[str, Any]:
    last = conn.execute(
        select(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == row.id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(1)
    ).first()
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "events": row.events or [],
        "enabled": row.enabled,
        "cursor": row.cursor,
        "created_at": iso(row.created_at),
        "last_delivery": _delivery(last) if last is not None else None,
    }


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "attempt": row.attempt,
        "outcome": row.outcome,
        "http_status": row.http_status,
        "error": row.error,
        "duration_ms": row.duration_ms,
        "at": iso(row.at),
    }


def _find(conn: Connection, id_or_name: str) -> Any:
    query = select(webhooks)
    row = (
        conn.execute(query.where(webhooks.c.id == int(id_or_name))).first()
        if id_or_name.isdecimal() and len(id_or_name) < 19
        else None
    )
    row = row or conn.execute(query.where(webhooks.c.name == id_or_name)).first()
    if row is None:
        raise NotFound(f"no webhook {id_or_name!r}")
    return row


def _name(name: str) -> str:
    clean = name.strip().lower()
    if not clean or len(clean) > 64 or not set(clean) <= _NAME_OK:
        raise InvalidInput("a webhook name is 1-64 letters, digits, '-', '_' or '.'")
    return clean


def _patterns(events: list[str] | None) -> list[str]:
    try:
        return event_log.validate_patterns(events or [])
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def create_webhook(
    ctx: Context, name: str, url: str, events: list[str] | None = None, secret: str | None = None
) -> dict[str, Any]:
    """Register a webhook; the answer carries its signing secret, shown this once. It gets the events
    from now on (none from before it existed)."""
    name = _name(name)
    resolve(ctx, parse_url(url))
    secret = secret or "whsec_" + secrets.token_urlsafe(32)
    if len(secret) < 16:
        raise InvalidInput("a webhook secret has at least 16 characters")
    now = now_utc()
    with ctx.catalog.write(bump=False) as conn:
        if conn.execute(select(webhooks.c.id).where(webhooks.c.name == name)).first() is not None:
            raise Conflict(f"a webhook named {name!r} already exists")
        conn.execute(
            insert(webhooks).values(
                name=name,
                url=url.strip(),
                secret=SecretBox.from_settings(ctx.settings).seal({"secret": secret}),
                events=_patterns(events),
                enabled=True,
                cursor=event_log.last_id(conn),
                created_at=now,
                updated_at=now,
            )
        )
        row = _find(conn, name)
        return {**_public(conn, row), "secret": secret}


def list_webhooks(ctx: Context) -> list[dict[str, Any]]:
    with ctx.catalog.read() as conn:
        return [_public(conn, r) for r in conn.execute(select(webhooks).order_by(webhooks.c.name))]


def show_webhook(ctx: Context, id_or_name: str) -> dict[str, Any]:
    with ctx.catalog.read() as conn:
        return _public(conn, _find(conn, id_or_name))


def update_webhook(
    ctx: Context,
    id_or_name: str,
    *,
    url: str | None = None,
    events: list[str] | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    """Change where it goes, what it gets, or switch it on or off. Switched on again, it goes on from
    the newest event (what happened while it was off is not sent: that could be days of events)."""
    values: dict[str, Any] = {"updated_at": now_utc()}
    if url is not None:
        resolve(ctx, parse_url(url))
        values["url"] = url.strip()
    if events is not None:
        values["events"] = _patterns(events)
    with ctx.catalog.write(bump=False) as conn:
        row = _find(conn, id_or_name)
        if enabled is not None:
            values["enabled"] = enabled
            if enabled and not row.enabled:
                values["cursor"] = event_log.last_id(conn)
        conn.execute(update(webhooks).where(webhooks.c.id == row.id).values(**values))
        return _public(conn, _find(conn, str(row.id)))


def remove_webhook(ctx: Context, id_or_name: str) -> dict[str, Any]:
    with ctx.catalog.write(bump=False) as conn:
        row = _find(conn, id_or_name)
        conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == row.id))
        conn.execute(delete(webhooks).where(webhooks.c.id == row.id))
    return {"id": row.id, "name": row.name, "removed": True}


def deliveries(ctx: Context, id_or_name: str, limit: int = 50) -> list[dict[str, Any]]:
    with ctx.catalog.read() as conn:
        row = _find(conn, id_or_name)
        rows = conn.execute(
            select(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == row.id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        ).all()
    return [_delivery(r) for r in rows]


def ping_webhook(ctx: Context, id_or_name: str) -> dict[str, Any]:
    """Send a ``ping`` now and say how it went (recorded in the delivery log like any other)."""
    with ctx.catalog.read() as conn:
        row = _find(conn, id_or_name)
    body = {"id": None, "type": "ping", "at": iso(now_utc()), "data": {"webhook": row.name}}
    outcome = _send(ctx, row, body)
    _log(ctx, row.id, None, "ping", 1, "delivered" if outcome.ok else "failed", outcome)
    return {"delivered": outcome.ok, "http_status": outcome.status, "error": outcome.error}


# -- sending ---------------------------------------------------------------------------------------------
def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None
    duration_ms: float


class _Pinned(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _send(ctx: Context, row: Any, payload: dict[str, Any]) -> Outcome:
    started = time.monotonic()

    def done(ok: bool, status: int | None, error: str | None) -> Outcome:
        return Outcome(ok, status, error, round((time.monotonic() - started) * 1000, 1))

    try:
        target = parse_url(row.url)
        address = resolve(ctx, target)
    except (InvalidInput, Forbidden) as exc:
        return done(False, None, exc.message)
    secret = str(SecretBox.from_settings(ctx.settings).open(row.secret)["secret"])
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"mediamesh/{__version__}",
        "X-Mediamesh-Event": str(payload["type"]),
        "X-Mediamesh-Delivery": str(payload["id"]),
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
    }
    kind = _PinnedTLS if target.scheme == "https" else _Pinned
    conn = kind(target.host, target.port, str(address), TIMEOUT)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(4096)  # a little, so that the connection closes cleanly; never all of it
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return done(False, None, f"{exc.__class__.__name__}: {exc}"[:300])
    finally:
        conn.close()
    if 200 <= status < 300:
        return done(True, status, None)
    why = "redirects are not followed" if 300 <= status < 400 else "the receiver did not answer 2xx"
    return done(False, status, f"HTTP {status}: {why}")


def _log(
    ctx: Context,
    webhook_id: int,
    event_id: int | None,
    type_: str,
    attempt: int,
    outcome: str,
    result: Outcome,
) -> None:
    with ctx.catalog.write(bump=False) as conn:
        conn.execute(
            insert(webhook_deliveries).values(
                webhook_id=webhook_id,
                event_id=event_id,
                event_type=type_,
                attempt=attempt,
                outcome=outcome,
                http_status=result.status,
                error=result.error,
                duration_ms=result.duration_ms,
                at=now_utc(),
            )
        )
        newest = conn.execute(
            select(func.max(webhook_deliveries.c.id)).where(webhook_deliveries.c.webhook_id == webhook_id)
        ).scalar_one()
        if newest % 50 == 0:  # now and then, the log is cut to its newest rows
            keep = (
                select(webhook_deliveries.c.id)
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .order_by(webhook_deliveries.c.id.desc())
                .limit(KEEP_DELIVERIES)
            )
            conn.execute(
                delete(webhook_deliveries).where(
                    webhook_deliveries.c.webhook_id == webhook_id,
                    webhook_deliveries.c.id.not_in(keep.scalar_subquery()),
                )
            )


@dataclass
class _Pending:
    attempts: int = 0
    next_try: float = 0.0


class WebhookSender:
    """Delivers the event log to every enabled webhook, on a thread of its own (one per server)."""

    def __init__(self, ctx: Context, backoff: tuple[float, ...] = BACKOFF) -> None:
        self.ctx = ctx
        self.backoff = backoff
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: dict[int, _Pending] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mediamesh-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT + 5)

    def wake(self, _: list[Event] | None = None) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:
                log.exception("delivering webhooks failed")
            self._wake.wait(1.0)
            self._wake.clear()

    def deliver_due(self) -> None:
        """One round: for each enabled webhook, its events in order, until one fails or none is left."""
        with self.ctx.catalog.read() as conn:
            hooks = conn.execute(select(webhooks).where(webhooks.c.enabled.is_(True))).all()
        for hook in hooks:
            if not self._stop.is_set():
                self._deliver(hook)

    def _deliver(self, hook: Any) -> None:
        pending = self._pending.setdefault(hook.id, _Pending())
        if time.monotonic() < pending.next_try:
            return
        cursor = int(hook.cursor)
        with self.ctx.catalog.read() as conn:
            page = event_log.after(conn, cursor, 200)
        for event in page:
            if self._stop.is_set():
                return
            if event_log.matches(hook.events or [], event.type):
                result = _send(self.ctx, hook, event.public())
                pending.attempts += 1
                if not result.ok and pending.attempts <= len(self.backoff):
                    _log(self.ctx, hook.id, event.id, event.type, pending.attempts, "retrying", result)
                    pending.next_try = time.monotonic() + self.backoff[pending.attempts - 1]
                    self._advance(hook.id, cursor)
                    return
                outcome = "delivered" if result.ok else "failed"
                _log(self.ctx, hook.id, event.id, event.type, pending.attempts, outcome, result)
                if not result.ok:
                    log.warning("webhook %s gave up on event %s: %s", hook.name, event.id, result.error)
                pending.attempts, pending.next_try = 0, 0.0
            cursor = event.id
        self._advance(hook.id, cursor)

    def _advance(self, webhook_id: int, cursor: int) -> None:
        with self.ctx.catalog.write(bump=False) as conn:
            conn.execute(
                update(webhooks)
                .where(webhooks.c.id == webhook_id, webhooks.c.cursor < cursor)
                .values(cursor=cursor)
            )
