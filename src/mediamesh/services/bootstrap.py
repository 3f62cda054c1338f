"""Declarative sources: a ``sources.yaml`` that a docker-compose user keeps beside the container.

    sources:
      - name: nas25
        location: smb://media@192.168.0.25/media
        password_env: NAS25_PASSWORD        # or password_file: /run/secrets/nas25, or password: ...
                                            # (SFTP: private_key_file: /run/secrets/key)
        exclude: ["Proxies/**"]
      - name: archive
        location: /mnt/archive

Applied idempotently on start (and by ``mediamesh source apply FILE``): a source that is not there is
added (registered even when unreachable now, and marked offline), one that differs is updated, and sources
added at runtime are left alone. Nothing in the file is ever removed from the catalog by omission.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediamesh.backends import parse_location
from mediamesh.context import Context
from mediamesh.errors import InvalidInput, MediameshError
from mediamesh.services import sources as svc

FIELDS = (
    "name, location, password, password_env, password_file, private_key_file, include, exclude, enabled, "
    "watch, expect_mount"
)


class DeclaredSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    location: str
    password: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    #: An SFTP source's private key (a mounted secret); ``password`` is then its passphrase, if any.
    private_key_file: Path | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    enabled: bool = True
    #: How the server learns of changes (auto, notify, poll, off; on = auto). Absent: left as it is.
    watch: str | None = None
    #: The folder must be a mount point (a share the host mounts under the parent mount). Absent: the
    #: default (a mount point now, or a folder directly in MEDIAMESH_MOUNTS_DIR).
    expect_mount: bool | None = None

    def resolve_password(self) -> str | None:
        if self.password_env:
            if self.password_env not in os.environ:
                raise InvalidInput(
                    f"source {self.name!r}: environment variable {self.password_env} is not set"
                )
            return os.environ[self.password_env]
        if self.password_file:
            try:
                return self.password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise InvalidInput(f"source {self.name!r}: cannot read {self.password_file}: {exc}") from exc
        return self.password

    def resolve_private_key(self) -> str | None:
        if self.private_key_file is None:
            return None
        try:
            return self.private_key_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"source {self.name!r}: cannot read {self.private_key_file}: {exc}") from exc


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[DeclaredSource] = Field(default_factory=list)


def load(path: Path) -> SourcesFile:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path} is not valid YAML: {exc}") from exc
    try:
        return SourcesFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{path}: {where}: {first['msg']} (fields: {FIELDS})") from None


def apply(ctx: Context, path: Path) -> list[dict[str, Any]]:
    """Apply a sources file; one result per declared source: added, updated, unchanged or error."""
    results = []
    for declared in load(path).sources:
        try:
            results.append({"name": declared.name, "result": _apply_one(ctx, declared)})
        except MediameshError as exc:
            results.append({"name": declared.name, "result": "error", "error": exc.message})
    return results


def _apply_one(ctx: Context, d: DeclaredSource) -> str:
    password, private_key = d.resolve_password(), d.resolve_private_key()
    existing = {s["name"]: s for s in svc.list_sources(ctx)}
    current = existing.get(d.name)
    if current is None:
        svc.add_source(
            ctx,
            d.name,
            d.location,
            d.include,
            d.exclude,
            force=True,
            password=password,
            private_key=private_key,
            watch=d.watch,
            expect_mount=d.expect_mount,
        )
        if not d.enabled:
            svc.update_source(ctx, d.name, enabled=False)
        return "added"
    wanted = parse_location(d.location)
    changes: dict[str, Any] = {}
    # A location declared without a host key is the stored one that trusted a key on first use: the same,
    # or every start would trust whatever key the server shows then.
    if svc.source_kind(wanted.kind).pin(wanted.display, current["identity"]) != current["location"]:
        changes["location"] = d.location
    if d.include != current["include"]:
        changes["include"] = d.include
    if d.exclude != current["exclude"]:
        changes["exclude"] = d.exclude
    if d.enabled != current["enabled"]:
        changes["enabled"] = d.enabled
    if d.watch is not None and svc.validate_watch(d.watch) != current["watch"]:
        changes["watch"] = d.watch
    if d.expect_mount is not None and d.expect_mount != current["expect_mount"]:
        changes["expect_mount"] = d.expect_mount
    if not svc.secret_matches(ctx, d.name, password=password, private_key=private_key):
        changes.update(password=password, private_key=private_key)
    if not changes:
        return "unchanged"
    svc.update_source(ctx, d.name, force=True, **changes)
    return "updated"
