"""API tokens: 32 random bytes, shown once, stored only as a SHA-256, with a scope (read < write < admin).

A token never creates a token with more scope than its own. A read token may be limited to some sources
or projects (by name): such a token opens only the WebDAV view, where it sees only those (see dav/).

On the first start of the server, when there is no token at all, one admin token is made, printed once,
and written to ``admin-token`` (mode 0600) in the data dir so that a new user can log in. That file is
deleted at the token's first use: a token on disk is one more thing to steal.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import func, insert, select, update

from mediamesh.catalog.schema import projects, sources, tokens
from mediamesh.catalog.times import aware, iso, now_utc
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, NotFound
from mediamesh.privatefs import write_private

SCOPES = ("read", "write", "admin")
PREFIX = "mm_"
ADMIN_TOKEN_FILE = "admin-token"
FIRST_START_NAME = "admin (first start)"


def rank(scope: str) -> int:
    return SCOPES.index(scope)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _public(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "scope": row.scope,
        "prefix": row.prefix,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "revoked": row.revoked_at is not None,
        "limits": row.limits or None,
    }


def is_limited(token: dict[str, Any]) -> bool:
    """A token limited to some sources or projects: it opens the WebDAV view, and nothing else."""
    return bool(token.get("limits"))


def describe_limits(token: dict[str, Any]) -> str:
    """``sources kids, tv; projects Holiday (WebDAV only)``: what a limited token sees."""
    limits = token.get("limits") or {}
    parts = [f"{field} {', '.join(limits[field])}" for field in ("sources", "projects") if limits.get(field)]
    return "; ".join(parts) + " (WebDAV only)"


def _limits(
    ctx: Context, scope: str, source_names: list[str] | None, project_names: list[str] | None
) -> dict[str, list[str]] | None:
    """The limits to store (names that exist now), or None for a token that sees everything."""
    if not source_names and not project_names:
        return None
    if scope != "read":
        raise InvalidInput("only a read token can be limited to some sources or projects")
    wanted = {"sources": sorted(set(source_names or ())), "projects": sorted(set(project_names or ()))}
    with ctx.catalog.read() as conn:
        for table, field in ((sources, "sources"), (projects, "projects")):
            known = set(conn.execute(select(table.c.name).where(table.c.name.in_(wanted[field]))).scalars())
            unknown = [n for n in wanted[field] if n not in known]
            if unknown:
                raise InvalidInput(f"no {field[:-1]} named {', '.join(map(repr, unknown))}")
    return wanted


def create_token(
    ctx: Context,
    name: str,
    scope: str,
    granted_by: str | None = None,
    source_names: list[str] | None = None,
    project_names: list[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """A new token and its secret value (returned once). ``granted_by`` is the creator's scope, if a token.
    ``source_names``/``project_names`` limit a read token to those (see :func:`is_limited`)."""
    if scope not in SCOPES:
        raise InvalidInput(f"invalid scope {scope!r}: use one of {', '.join(SCOPES)}")
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput("a token needs a name of 1 to 64 characters")
    if granted_by is not None and rank(scope) > rank(granted_by):
        raise InvalidInput(f"a {granted_by} token cannot create a {scope} token")
    limits = _limits(ctx, scope, source_names, project_names)
    value = PREFIX + secrets.token_urlsafe(32)
    with ctx.catalog.write() as conn:
        key = conn.execute(
            insert(tokens).values(
                name=name,
                scope=scope,
                token_hash=_hash(value),
                prefix=value[:10],
                created_at=now_utc(),
                limits=limits,
            )
        ).inserted_primary_key
        assert key is not None
        row = conn.execute(select(tokens).where(tokens.c.id == key[0])).one()
    return _public(row), value


def list_tokens(ctx: Context) -> list[dict[str, Any]]:
    with ctx.catalog.read() as conn:
        return [_public(r) for r in conn.execute(select(tokens).order_by(tokens.c.id))]


def revoke_token(ctx: Context, token_id: int) -> dict[str, Any]:
    with ctx.catalog.write() as conn:
        row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id}")
        conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=now_utc()))
        return _public(conn.execute(select(tokens).where(tokens.c.id == token_id)).one())


def verify(ctx: Context, value: str) -> dict[str, Any] | None:
    """The token a bearer value belongs to, if valid and not revoked; its last use is recorded."""
    if not value.startswith(PREFIX) or len(value) > 100:
        return None
    digest = _hash(value)
    with ctx.catalog.read() as conn:
        row = conn.execute(select(tokens).where(tokens.c.token_hash == digest)).first()
    # The lookup is by a hash of the value, so its timing tells nothing about the value itself.
    if row is None or row.revoked_at is not None or not secrets.compare_digest(row.token_hash, digest):
        return None
    now = now_utc()
    last = aware(row.last_used_at)
    if last is None and row.name == FIRST_START_NAME:
        (ctx.settings.data_dir / ADMIN_TOKEN_FILE).unlink(missing_ok=True)  # shown, and now used
    if last is None or (now - last).total_seconds() > 60:
        # At most once a minute: a busy client must not turn reads into writes (nor reset cached counts).
        with ctx.catalog.write(bump=False) as conn:
            conn.execute(update(tokens).where(tokens.c.id == row.id).values(last_used_at=now))
    return _public(row)


def by_id(ctx: Context, token_id: int) -> dict[str, Any] | None:
    """A token by id, if it exists and is not revoked (a browser session names its token this way)."""
    with ctx.catalog.read() as conn:
        row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
    return _public(row) if row is not None and row.revoked_at is None else None


def ensure_admin_token(ctx: Context) -> str | None:
    """On the very first start (no token at all): make an admin token, write it to a 0600 file in the data
    dir (deleted at the token's first use), and return it to be printed once. Otherwise None."""
    with ctx.catalog.read() as conn:
        if conn.execute(select(func.count()).select_from(tokens)).scalar_one():
            return None
    _, value = create_token(ctx, FIRST_START_NAME, "admin")
    path = ctx.settings.data_dir / ADMIN_TOKEN_FILE
    write_private(path, (value + "\n").encode())  # a left-over or a planted link is replaced, not followed
    return value
