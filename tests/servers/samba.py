"""A private Samba server for the tests: its own smb.conf, a free port on 127.0.0.1, a user with a password.

smbd exits when its standard input reaches EOF (as under CI), so it gets a pipe that stays open. The
share is read-only and files are read as root (``force user``), so the tests can serve any temporary
folder; the login still needs the test user's password.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

USER = "mmtest"
PASSWORD = "correct horse battery"
SHARE = "media"
#: The same folder, writable: another computer copying onto the share (mediamesh itself only reads).
WRITABLE_SHARE = "media-rw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SambaServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def share_dir(self) -> Path:
        return self.workdir / "share"

    def url(self, sub: str = "", user: str = USER) -> str:
        return f"smb://{user}@127.0.0.1:{self.port}/{SHARE}" + (f"/{sub}" if sub else "")

    def put(self, data: bytes, remote: str) -> None:
        """Write a file onto the share through smbd, as a PC copying onto the NAS would (its folders made
        first). Through the writable share: mediamesh's own share is read-only."""
        import smbclient

        kw = {"port": self.port, "username": USER, "password": PASSWORD, "connection_cache": {}}
        base = rf"\\127.0.0.1\{WRITABLE_SHARE}"
        try:
            folder = "\\".join(remote.split("/")[:-1])
            if folder:
                smbclient.makedirs(base + "\\" + folder, exist_ok=True, **kw)
            with smbclient.open_file(base + "\\" + remote.replace("/", "\\"), mode="wb", **kw) as fh:
                fh.write(data)
        finally:
            smbclient.reset_connection_cache(connection_cache=kw["connection_cache"])

    def _conf(self) -> Path:
        d = self.workdir
        for name in ("private", "lock", "state", "cache", "pid", "ncalrpc", "share"):
            (d / name).mkdir(parents=True, exist_ok=True)
        conf = d / "smb.conf"
        conf.write_text(f"""[global]
  workgroup = WORKGROUP
  server role = standalone server
  smb ports = {self.port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  ncalrpc dir = {d}/ncalrpc
  log file = {d}/log.smbd
  passdb backend = tdbsam:{d}/private/passdb.tdb
  server min protocol = SMB2_10
  map to guest = never
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  wide links = no
[{SHARE}]
  path = {self.share_dir}
  read only = yes
  valid users = {USER}
  force user = root
[{SHARE}-rw]
  path = {self.share_dir}
  read only = no
  valid users = {USER}
  force user = root
""")
        return conf

    def set_password(self, password: str) -> None:
        """Change the test user's password (new logons need it; sessions already made stay)."""
        subprocess.run(
            [shutil.which("smbpasswd") or "/usr/bin/smbpasswd", "-c", str(self._conf()), "-a", "-s", USER],
            input=f"{password}\n{password}\n".encode(),
            check=True,
            capture_output=True,
        )

    def start(self, reset_password: bool = True) -> SambaServer:
        smbd = shutil.which("smbd") or "/usr/sbin/smbd"
        if not os.path.exists(smbd):
            raise RuntimeError("smbd is not installed: run 'make test', which installs samba")
        conf = self._conf()
        if subprocess.run(["id", USER], check=False, capture_output=True).returncode != 0:
            useradd = shutil.which("useradd") or "/usr/sbin/useradd"
            subprocess.run([useradd, "-M", "-s", "/usr/sbin/nologin", USER], check=True)
        if reset_password:
            self.set_password(PASSWORD)
        # Its own session: on shutdown smbd signals its whole process group, which must not be ours.
        self.proc = subprocess.Popen(
            [smbd, "--foreground", "--no-process-group", f"--configfile={conf}", "-d", "1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def wait_ready(self, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.workdir / "log.smbd").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"smbd exited with {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"smbd did not listen on 127.0.0.1:{self.port} within {seconds} s")

    def pause(self) -> None:
        """SIGSTOP every smbd process of this server (a hung NAS)."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: int) -> None:
        """Signal smbd and every child it forked (they share its process group)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the server (a crash); start() brings it back on the same port."""
        self._signal_all(signal.SIGCONT)
        self._signal_all(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        self._signal_all(signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal_all(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._signal_all(signal.SIGKILL)  # children that outlived the parent
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc = None
