"""Shares mounted by the kernel's own client (option A of docs/deploy.md), for hosts that allow it.

mediamesh reads network sources itself by default and needs no privilege. Where an operator prefers the
kernel's SMB or NFS client (``MEDIAMESH_MOUNT_SHARES=on``, root or CAP_SYS_ADMIN), a source added with
``--kernel-mount`` is mounted here at ``{MEDIAMESH_MOUNTS_DIR}/{name}`` and read as a local folder that
must be a mount point (so an unmounted share is "not mounted", never an empty folder).

Nothing here may hang the server: every command runs in a child process with a deadline, the mounts are
``soft`` with short time-outs, read-only, ``nosuid,nodev,noexec``; a password goes to ``mount.cifs`` in a
0600 file that is removed as soon as the command returns, never on a command line. Stale mounts (a
``statfs`` that does not answer) are found by a child process, so a hung mount blocks only that child.

The commands go through a :class:`MountRunner`, so that the orchestration is tested with a runner that
records the commands and fakes the kernel's answers (tests/test_kernel_mounts.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

#: Seconds a mount or unmount may take; a statfs of a healthy mount answers in milliseconds.
MOUNT_TIMEOUT = 20.0
STATFS_TIMEOUT = 5.0

#: Options every kernel mount gets: read-only (mediamesh never writes to media), no device files, no
#: set-uid or programs run from the share, and soft time-outs so a dead server fails reads instead of
#: hanging them.
COMMON_OPTIONS = ("ro", "nosuid", "nodev", "noexec")
CIFS_OPTIONS = ("soft", "echo_interval=5", "actimeo=1")
NFS_OPTIONS = ("soft", "timeo=50", "retrans=2")


class MountTimeout(Exception):
    """A mount command did not finish in time (a server that does not answer)."""


@dataclass(frozen=True, slots=True)
class RunResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class MountRunner(Protocol):
    """Runs one command (mount, umount, stat -f) with a deadline; raises MountTimeout past it."""

    def run(self, argv: list[str], timeout: float) -> RunResult: ...


class SystemRunner:
    """The real commands, in child processes. A child stuck in the kernel (a hard mount) may not die when
    killed; it is then left to a reaper thread instead of being waited for."""

    def run(self, argv: list[str], timeout: float) -> RunResult:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            threading.Thread(target=proc.wait, name="mediamesh-mount-reaper", daemon=True).start()
            raise MountTimeout(f"{argv[0]} gave no answer in {timeout:.0f} s") from None
        return RunResult(proc.returncode, out, err)


@dataclass(frozen=True, slots=True)
class MountSpec:
    """What to mount where: ``fs`` is cifs or nfs, ``device`` what mount(8) takes (//host/share/sub or
    host:/export/sub), ``options`` without the credentials."""

    fs: str
    device: str
    target: str
    options: tuple[str, ...]
    user: str | None = None


#: A host name or an IPv4/IPv6 address: never a leading '-' (mount(8) would read an option).
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*|[0-9A-Fa-f:.]+")


def spec_for(url: str, target: str) -> MountSpec:
    """The kernel mount of an ``smb://`` or ``nfs://`` location at ``target``; ValueError with a user's
    message for anything else."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("smb", "nfs") or not host:
        raise ValueError(f"the kernel can mount smb:// and nfs:// locations, not {url!r}")
    if not _HOST.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or address")
    path = unquote(parts.path).rstrip("/")
    user = unquote(parts.username) if parts.username else None
    if not path.strip("/"):
        raise ValueError(f"{url!r} names no share or export")
    # A comma would end a mount option, a line break a line of the credentials file.
    if any(c in path + (user or "") for c in ",\n\r\0") or ".." in path.split("/"):
        raise ValueError(f"{url!r} holds characters a mount option cannot carry")
    shown_host = f"[{host}]" if ":" in host else host
    if parts.scheme == "smb":
        port = (f"port={parts.port}",) if parts.port else ()
        return MountSpec(
            "cifs", f"//{shown_host}{path}", target, (*COMMON_OPTIONS, *CIFS_OPTIONS, *port), user
        )
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    version = query.get("version", "4.1")
    if version not in ("4.0", "4.1", "4.2", "3"):
        raise ValueError(f"NFS version {version!r} is not one the kernel mounts here (4.1, 4.0, 4.2, 3)")
    port = (f"port={parts.port}",) if parts.port else ()
    return MountSpec(
        "nfs", f"{shown_host}:{path}", target, (*COMMON_OPTIONS, *NFS_OPTIONS, f"vers={version}", *port)
    )


@dataclass
class MountState:
    """What is known of one kernel mount; shown by GET /api/v1/mounts."""

    source: str
    url: str
    target: str
    state: str = "unmounted"  # mounted, failed, stale, unmounted
    error: str | None = None
    since: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "from": self.url,
            "target": self.target,
            "state": self.state,
            "error": self.error,
            "since": self.since,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class KernelMounts:
    """Mounts, checks and unmounts the kernel mounts of sources; state per source name. Owned by the app
    context: one per process."""

    runner: MountRunner
    #: Where credential files are written for the moment of a mount (in the data dir, 0700).
    secrets_dir: Path
    enabled: bool = False
    timeout: float = MOUNT_TIMEOUT
    states: dict[str, MountState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mount(
        self, source: str, url: str, target: str, secret: Mapping[str, Any] | None = None
    ) -> MountState:
        """Mount ``url`` at ``target`` (made if missing); never raises for a mount that fails: the state
        says why, and the source then reads as not mounted."""
        state = MountState(source, url, target)
        try:
            spec = spec_for(url, target)
        except ValueError as exc:
            return self._record(state, "failed", str(exc))
        if not self.enabled:
            return self._record(state, "failed", "kernel mounts are off (MEDIAMESH_MOUNT_SHARES=off)")
        try:
            os.makedirs(target, mode=0o755, exist_ok=True)
        except OSError as exc:
            return self._record(state, "failed", f"cannot make {target}: {exc.strerror}")
        options = list(spec.options)
        cred_path: str | None = None
        try:
            if spec.fs == "cifs":
                cred_path = self._credentials(spec.user, (secret or {}).get("password"))
                options.append(f"credentials={cred_path}" if cred_path else "guest")
            argv = ["mount", "-t", spec.fs, "-o", ",".join(options), "--", spec.device, target]
            result = self.runner.run(argv, self.timeout)
        except MountTimeout as exc:
            return self._record(state, "failed", f"mount: {exc}")
        except OSError as exc:
            return self._record(state, "failed", f"mount could not run: {exc.strerror or exc}")
        finally:
            if cred_path is not None:
                Path(cred_path).unlink(missing_ok=True)
        if result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            return self._record(
                state, "failed", message[-1] if message else f"mount exited {result.returncode}"
            )
        return self._record(state, "mounted", None)

    def _credentials(self, user: str | None, password: str | None) -> str | None:
        """A 0600 file for mount.cifs (``credentials=``), so that the password is on no command line."""
        if user is None and password is None:
            return None
        self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="cifs-", dir=self.secrets_dir)  # mkstemp makes it 0600
        with os.fdopen(fd, "w") as fh:
            if user is not None:
                fh.write(f"username={user}\n")
            if password is not None:
                fh.write(f"password={password}\n")
        return path

    def alive(self, target: str) -> str | None:
        """None when the mount at ``target`` answers a statfs in time; else why not (stale)."""
        try:
            result = self.runner.run(["stat", "-f", "-c", "%T", target], STATFS_TIMEOUT)
        except MountTimeout:
            return f"the mount at {target} does not answer (statfs took over {STATFS_TIMEOUT:.0f} s)"
        except OSError as exc:
            return f"stat could not run: {exc.strerror or exc}"
        if result.returncode != 0:
            return f"the mount at {target} fails: {result.stderr.strip() or result.returncode}"
        return None

    def check(
        self, source: str, url: str, target: str, secret: Mapping[str, Any] | None = None
    ) -> MountState:
        """Keep a source's mount up: a stale mount is detached and mounted again; a failed or missing one
        is mounted again. Called by each round of health probes."""
        state = self.states.get(source)
        if state is None or state.state != "mounted" or state.url != url:
            if self._mounted(target) is False:
                return self.mount(source, url, target, secret)
            # Mounted already (by the CLI, or before this process started): adopted, not mounted twice.
            state = self._record(MountState(source, url, target), "mounted", None)
        why = self.alive(target)
        if why is None:
            return state
        self._record(state, "stale", why)
        self.unmount(source, target, forget=False)
        return self.mount(source, url, target, secret)

    def _mounted(self, target: str) -> bool | None:
        """Whether something is mounted at ``target``; None when asking hung (a stale mount is there)."""
        try:
            return self.runner.run(["mountpoint", "-q", target], STATFS_TIMEOUT).returncode == 0
        except MountTimeout:
            return None
        except OSError:
            return False

    def unmount(self, source: str, target: str, forget: bool = True) -> None:
        """Detach the mount (lazily, so a hung server cannot hold this up); the folder stays."""
        if self.enabled:
            # A lazy unmount that fails or hangs: nothing more to do; the state says unmounted.
            with contextlib.suppress(MountTimeout, OSError):
                self.runner.run(["umount", "-l", target], self.timeout)
        with self._lock:
            if forget:
                self.states.pop(source, None)
            elif source in self.states:
                self.states[source].state = "unmounted"

    def public(self, source: str) -> dict[str, Any] | None:
        with self._lock:
            state = self.states.get(source)
            return state.public() if state is not None else None

    def _record(self, state: MountState, status: str, error: str | None) -> MountState:
        state.state, state.error, state.since = status, error, _now()
        with self._lock:
            self.states[state.source] = state
        return state
