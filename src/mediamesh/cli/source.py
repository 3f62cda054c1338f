"""``mediamesh source add|list|show|check|remove|prune``."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mediamesh.cli.output import JsonOption, context, emit, fail, human_size, out
from mediamesh.cli.scan import render_summary, scan_in_phases
from mediamesh.errors import InvalidInput
from mediamesh.services import bootstrap
from mediamesh.services import sources as svc
from mediamesh.services.watch import describe_watch

app = typer.Typer(
    rich_markup_mode=None, help="Register and inspect sources (folders, shares).", no_args_is_help=True
)

HEALTH_STYLE = {"online": "green", "degraded": "yellow", "offline": "red", "unknown": "dim"}


def _render_one(s: dict[str, Any]) -> None:
    h = s["health"]
    style = HEALTH_STYLE.get(h["status"], "")
    out.print(f"[bold]{s['name']}[/] (id {s['id']}, {s['kind']}) {escape(s['location'])}")
    line = f"  health: [{style}]{h['status']}[/]"
    if h["latency_ms"] is not None:
        line += f", {h['latency_ms']:.1f} ms"
    if h["capacity_bytes"]:
        line += f", {human_size(h['free_bytes'])} free of {human_size(h['capacity_bytes'])}"
    out.print(line)
    if h["error"]:
        out.print(f"  error: {h['error']}", markup=False)
    if not s["enabled"]:
        out.print("  unmounted: no probes, no scans ('mediamesh source mount' to connect again)")
    elif s["mount"]:
        m = s["mount"]
        since = f" since {m['connected_since']}" if m["connected_since"] else ""
        out.print(f"  mount: {m['state']}{since} (held by {m['holder']})")
    out.print(f"  files: {s['files']['present']} present, {s['files']['missing']} missing")
    for label in ("include", "exclude"):
        if s[label]:
            out.print(f"  {label}: {', '.join(s[label])}", markup=False)
    if s.get("schedule"):
        out.print(
            f"  schedule: {s['schedule']} (next scan at {s['next_scan_at'] or '-'}, in serve)", markup=False
        )
    if s.get("priority"):
        out.print(f"  priority: {s['priority']}")
    out.print(f"  watch: {describe_watch(s)}", markup=False)
    for worker, path in sorted((s.get("worker_paths") or {}).items()):
        out.print(f"  worker {worker} reads it at {path}", markup=False)
    scan = s["last_scan"]
    if scan:
        out.print(
            f"  last scan: #{scan['id']} {scan['status']} at {scan['finished_at'] or scan['started_at']}"
        )
        if scan["error"]:
            out.print(f"    {scan['error']}", markup=False)


def _here(location: str) -> str:
    """A folder typed relative to where the command runs (``./media``, ``~/Videos``, ``media``) is that
    folder; URLs and absolute paths are left as they are. Only the CLI does this: for the API, the
    server's working directory means nothing to whoever sends the request."""
    text = location.strip()
    if not text or text.startswith("/") or "://" in text:
        return location
    return os.path.abspath(os.path.expanduser(text))


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Unique name: lowercase letters, digits, '.', '_', '-'."),
    location: str = typer.Argument(
        ...,
        help="/abs/path, file:///abs/path, smb://[user@]host[:port]/share[/sub], "
        "sftp://[user@]host[:port]/abs/path or nfs://host[:port]/export[/sub].",
    ),
    include: list[str] = typer.Option([], "--include", help="Only index files matching this glob (repeat)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Never index what matches this glob (repeat)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    force: bool = typer.Option(False, "--force", help="Register even if the location cannot be reached now."),
    schedule: str | None = typer.Option(
        None, "--schedule", help="Scan by itself (in serve): an interval (6h, 1d) or cron ('0 3 * * *')."
    ),
    priority: int = typer.Option(0, "--priority", help="Serve content from higher-priority sources first."),
    scan: bool = typer.Option(False, "--scan", help="Scan it at once (the index, then enrichment)."),
    watch: str = typer.Option(
        "auto", "--watch", help="Learn of changes (in serve): auto, notify, poll or off (on = auto)."
    ),
    key_file: Path | None = typer.Option(
        None, "--key-file", help="SFTP: log on with this private key (its passphrase by --password-stdin)."
    ),
    expect_mount: bool | None = typer.Option(
        None,
        "--expect-mount/--no-expect-mount",
        help="The folder must be a mount point (a share the host mounts), else it is 'not mounted'. "
        "Default: yes for a mount point, or a folder directly in MEDIAMESH_MOUNTS_DIR.",
    ),
    kernel_mount: bool = typer.Option(
        False,
        "--kernel-mount",
        help="Mount this smb:// or nfs:// location with the kernel at MEDIAMESH_MOUNTS_DIR/NAME and read "
        "it as a folder (needs MEDIAMESH_MOUNT_SHARES=on and root; docs/deploy.md).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register a source after checking that it is a readable folder (or share)."""
    location = _here(location)
    private_key = _read_key(key_file)
    password = _read_password(password_stdin, None if private_key else location)
    with context() as ctx:
        source = svc.add_source(
            ctx,
            name,
            location,
            include,
            exclude,
            force,
            password,
            schedule=schedule,
            priority=priority,
            private_key=private_key,
            watch=watch,
            expect_mount=expect_mount,
            kernel_mount=kernel_mount,
        )
        if not as_json:
            out.print(f"added source [bold]{escape(source['name'])}[/] (id {source['id']})")
            _render_one(source)
            _say_trusted(location, source)
            if not scan:
                out.print(f"next: 'mediamesh scan {source['name']}' (or add --scan next time)", markup=False)
            if not schedule:
                out.print(
                    "tip: --schedule 1d (with 'mediamesh source update') keeps it scanned", markup=False
                )
        if scan:
            source["scan"] = scan_in_phases(ctx, source["name"], "", False, False, as_json)
    if as_json:
        emit(source, True, lambda _: None)
    elif scan:
        render_summary(source["scan"])
    if scan and source["scan"]["status"] != "completed":
        raise typer.Exit(1)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Every source with its health and file counts."""
    with context() as ctx:
        data = svc.list_sources(ctx)

    def render(rows: list[dict[str, Any]]) -> None:
        if not rows:
            out.print("no sources yet: add one with 'mediamesh source add NAME /path'")
            return
        table = Table("id", "name", "kind", "location", "health", "present", "missing", "last scan")
        for s in rows:
            status = s["health"]["status"]
            scan = s["last_scan"]
            table.add_row(
                str(s["id"]),
                s["name"],
                s["kind"],
                escape(s["location"]),
                f"[{HEALTH_STYLE.get(status, '')}]{status}[/]",
                str(s["files"]["present"]),
                str(s["files"]["missing"]),
                f"#{scan['id']} {scan['status']}" if scan else "-",
            )
        out.print(table)

    emit(data, as_json, render)


@app.command("show")
def show(name: str, as_json: bool = JsonOption) -> None:
    """One source in detail."""
    with context() as ctx:
        data = svc.show_source(ctx, name)
    emit(data, as_json, _render_one)


@app.command("check")
def check(name: str, as_json: bool = JsonOption) -> None:
    """Probe a source now: reachable, latency, capacity, same filesystem as registered."""
    with context() as ctx:
        data = svc.check_source(ctx, name)
    emit(data, as_json, _render_one)
    if data["health"]["status"] == "offline":
        raise typer.Exit(1)


@app.command("remove")
def remove(name: str, as_json: bool = JsonOption) -> None:
    """Forget a source and its file records (the files themselves are never touched)."""
    with context() as ctx:
        data = svc.remove_source(ctx, name)
    emit(
        data,
        as_json,
        lambda d: out.print(f"removed source {d['name']} ({d['files_forgotten']} file records forgotten)"),
    )


@app.command("prune")
def prune(name: str, as_json: bool = JsonOption) -> None:
    """Forget the records of files marked missing on a source (explicit; never done automatically)."""
    with context() as ctx:
        data = svc.prune_missing(ctx, name)
    emit(
        data,
        as_json,
        lambda d: out.print(f"forgot {d['files_forgotten']} missing file records of {d['source']}"),
    )


def _read_password(password_stdin: bool, location: str | None = None) -> str | None:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if (
        location
        and location.startswith(("smb://", "sftp://"))
        and "@" in location.split("/")[2]
        and sys.stdin.isatty()
    ):
        return getpass.getpass(f"password for {location}: ")
    return None


def _read_key(key_file: Path | None) -> str | None:
    if key_file is None:
        return None
    try:
        text = key_file.expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(
            f"cannot read the key file {key_file}: {getattr(exc, 'strerror', None) or exc}", 2
        ) from None
    if "PRIVATE KEY" not in text:
        raise fail(f"{key_file} holds no private key (give the key, not the .pub file)", 2)
    return text


def _say_trusted(typed: str, source: dict[str, Any]) -> None:
    """A host key trusted on first use is shown, with how to check it: the user decides whether to keep it."""
    key = (source.get("identity") or {}).get("host_key")
    if key and "fingerprint=" not in typed and "fingerprint=" in source["location"]:
        out.print(
            f"  trusted the server's host key on first use: {key}\n"
            "  check it on the server with 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub'; "
            "a different key is refused from now on",
            markup=False,
        )


@app.command("update")
def update(
    name: str,
    location: str | None = typer.Option(None, "--location", help="A new location (the share moved)."),
    include: list[str] | None = typer.Option(None, "--include", help="Replace the include globs (repeat)."),
    exclude: list[str] | None = typer.Option(None, "--exclude", help="Replace the exclude globs (repeat)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read a new password from stdin."),
    force: bool = typer.Option(
        False, "--force", help="Change it even if the new location is unreachable now."
    ),
    schedule: str | None = typer.Option(
        None, "--schedule", help="An interval (6h), a cron expression, or 'off' to stop scanning by itself."
    ),
    priority: int | None = typer.Option(None, "--priority", help="Serve content from higher first."),
    watch: str | None = typer.Option(
        None, "--watch", help="Learn of changes (in serve): auto, notify, poll or off (on = auto)."
    ),
    key_file: Path | None = typer.Option(None, "--key-file", help="SFTP: a new private key to log on with."),
    expect_mount: bool | None = typer.Option(
        None,
        "--expect-mount/--no-expect-mount",
        help="The folder must be a mount point (a share the host mounts), or is a plain folder.",
    ),
    worker_path: list[str] | None = typer.Option(
        None,
        "--worker-path",
        help="WORKER=PATH: the scan worker of that name reads this source at PATH, a local folder "
        "(a NAS's /volume1/video); WORKER= removes it. Repeat for more workers.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a source's location, globs, password, schedule, priority, watch, mount expectation or
    worker paths. File records and media ids stay."""
    password = _read_password(password_stdin)
    private_key = _read_key(key_file)
    with context() as ctx:
        data = svc.update_source(
            ctx,
            name,
            location=_here(location) if location is not None else None,
            include=include or None,
            exclude=exclude or None,
            password=password,
            force=force,
            schedule=schedule,
            priority=priority,
            private_key=private_key,
            watch=watch,
            expect_mount=expect_mount,
            worker_paths=_worker_paths(worker_path),
        )
    emit(data, as_json, _render_one)
    if location is not None and not as_json:
        _say_trusted(location, data)


def _worker_paths(given: list[str] | None) -> dict[str, str] | None:
    if not given:
        return None
    out: dict[str, str] = {}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep:
            raise InvalidInput(f"--worker-path {item!r}: give WORKER=PATH (or WORKER= to remove it)")
        out[name.strip()] = path
    return out


@app.command("mounts")
def mounts(as_json: bool = JsonOption) -> None:
    """Each source's mount state: read by mediamesh (in-app), mounted or not mounted (a folder that must
    be a mount point), or a plain folder; with any kernel mount the server keeps."""
    with context() as ctx:
        data = svc.mount_states(ctx)

    def render(rows: list[dict[str, Any]]) -> None:
        table = Table("source", "state", "location", "mount point", box=None)
        for r in rows:
            kernel = r["kernel_mount"]
            state = r["state"] + (f" (kernel: {kernel['state']})" if kernel else "")
            table.add_row(r["source"], state, escape(r["location"]), escape(r["mount_point"] or ""))
        out.print(table)
        for r in rows:
            if r["state"] == "not mounted" and r["error"]:
                out.print(f"{r['source']}: {r['error']}", markup=False)

    emit(data, as_json, render)


@app.command("mount")
def mount(name: str, as_json: bool = JsonOption) -> None:
    """Connect a source again (after unmount) and probe it now; the server keeps it connected."""
    with context() as ctx:
        data = svc.set_mounted(ctx, name, True)
    emit(data, as_json, _render_one)
    if data["health"]["status"] == "offline":
        raise typer.Exit(1)


@app.command("unmount")
def unmount(name: str, as_json: bool = JsonOption) -> None:
    """Disconnect a source and leave it alone: no probes, no scans; its files show offline, unchanged."""
    with context() as ctx:
        data = svc.set_mounted(ctx, name, False)
    emit(data, as_json, _render_one)


@app.command("apply")
def apply_file(
    path: Path = typer.Argument(..., help="A sources.yaml (see docs/sources.md)."),
    as_json: bool = JsonOption,
) -> None:
    """Add or update the sources a sources.yaml declares (never removes any)."""
    with context() as ctx:
        results = bootstrap.apply(ctx, path)

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            out.print(f"{r['name']}: {r['result']}" + (f" ({escape(r['error'])})" if r.get("error") else ""))

    emit(results, as_json, render)
    if any(r["result"] == "error" for r in results):
        raise typer.Exit(1)
