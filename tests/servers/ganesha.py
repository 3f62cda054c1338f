"""A private NFS server for the tests: nfs-ganesha with its VFS backend, NFSv4 only (no rpcbind), on a
free port of 127.0.0.1, exporting a folder of the test's as ``/media`` (read-only).

ganesha keeps its state (NFSv4 recovery) in the work folder and starts without a grace period, so a
client can open files at once; it runs in a session of its own so that the tests can stop and kill it.
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

from tests.servers.samba import free_port

EXPORT = "media"


@dataclass
class GaneshaServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: Only clients whose source port is below 1024 (the ``secure`` convention of Linux exports).
    privileged_port: bool = False

    @property
    def share_dir(self) -> Path:
        return self.workdir / "share"

    def url(self, sub: str = "") -> str:
        return f"nfs://127.0.0.1:{self.port}/{EXPORT}" + (f"/{sub}" if sub else "")

    def _conf(self) -> Path:
        d = self.workdir
        for name in ("share", "recovery"):
            (d / name).mkdir(parents=True, exist_ok=True)
        conf = d / "ganesha.conf"
        conf.write_text(f"""NFS_CORE_PARAM {{
    NFS_Port = {self.port};
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Protocols = 4;
    Enable_UDP = false;
    Bind_addr = 127.0.0.1;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
NFSV4 {{
    Graceless = true;
    Lease_Lifetime = 10;
    RecoveryBackend = fs;
    RecoveryRoot = {d}/recovery;
    Minor_Versions = 0, 1;
}}
EXPORT {{
    Export_Id = 1;
    Path = {self.share_dir};
    Pseudo = /{EXPORT};
    Access_Type = RO;
    Squash = No_Root_Squash;
    SecType = sys;
    Protocols = 4;
    Transports = TCP;
    PrivilegedPort = {"true" if self.privileged_port else "false"};
    Attr_Expiration_Time = 0;
    FSAL {{ Name = VFS; }}
}}
MDCACHE {{
    # The tests change the folder behind ganesha's back (as the NAS's own users do): no stale cache.
    Dir_Chunk = 0;
    Attr_Expiration_Time = 0;
}}
LOG {{ Default_Log_Level = WARN; }}
""")
        return conf

    def start(self) -> GaneshaServer:
        ganesha = shutil.which("ganesha.nfsd") or "/usr/bin/ganesha.nfsd"
        if not os.path.exists(ganesha):
            raise RuntimeError("ganesha.nfsd is not installed: run 'make test', which installs nfs-ganesha")
        conf = self._conf()
        self.proc = subprocess.Popen(
            [
                ganesha,
                "-F",
                "-L",
                str(self.workdir / "ganesha.log"),
                "-f",
                str(conf),
                "-p",
                str(self.workdir / "pid"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.workdir / "ganesha.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"ganesha exited with {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"ganesha did not listen on 127.0.0.1:{self.port} within {seconds} s")

    def _signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def pause(self) -> None:
        """SIGSTOP the server (a hung NAS)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server (a crash); start() brings it back on the same port."""
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        self._signal(signal.SIGCONT)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
