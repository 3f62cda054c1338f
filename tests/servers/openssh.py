"""A private OpenSSH server for the tests: its own sshd_config, a throw-away host key, a free port on
127.0.0.1, and a user with a password and an authorized key.

The user is an ordinary account (``mmsftp``, a shell, no home) so that SFTP runs with its rights, as on
a NAS; its folders are made world-readable for it. ``b3sum`` on the server is switched by ``with_b3sum``:
the account's PATH starts with a folder of the tests (sshd's ``SetEnv``) holding either the real
command or one that is "not found", so a test can offer the command or take it away.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.samba import free_port

USER = "mmsftp"
PASSWORD = "correct horse sftp"


@dataclass
class SshServer:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mediamesh-sshd-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    with_b3sum: bool = True
    b3sum_answer: str | None = None

    @property
    def share_dir(self) -> Path:
        """The folder the tests serve (world-readable: the user reads it with its own rights)."""
        return self.workdir / "share"

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_key"

    def url(self, sub: str = "", user: str = USER) -> str:
        path = f"{self.share_dir}/{sub}" if sub else str(self.share_dir)
        return f"sftp://{user}@127.0.0.1:{self.port}{path}"

    def host_key_fingerprint(self) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.workdir / "host_key.pub")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return out.split()[1]  # "256 SHA256:... comment (ED25519)"

    def _prepare(self) -> Path:
        d = self.workdir
        d.chmod(0o755)
        self.share_dir.mkdir(exist_ok=True)
        self.share_dir.chmod(0o755)
        bin_dir = d / "bin"
        bin_dir.mkdir(exist_ok=True)
        bin_dir.chmod(0o755)
        b3sum = bin_dir / "b3sum"
        if b3sum.is_symlink() or b3sum.exists():
            b3sum.unlink()
        real = shutil.which("b3sum") or "/usr/bin/b3sum"
        if self.b3sum_answer is not None:  # a lying server: right for the empty check, one answer for files
            b3sum.write_text(f'#!/bin/sh\n[ $# -eq 0 ] && exec {real}\necho "{self.b3sum_answer}  $2"\n')
            b3sum.chmod(0o755)
        elif self.with_b3sum:
            b3sum.symlink_to(real)
        else:  # shadows any b3sum further down the PATH, as a server without one answers
            b3sum.write_text('#!/bin/sh\necho "sh: 1: b3sum: not found" >&2\nexit 127\n')
            b3sum.chmod(0o755)
        if not (d / "host_key").exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True
            )
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.client_key)], check=True
            )
            auth = d / "authorized_keys"
            auth.write_text((d / "client_key.pub").read_text())
            auth.chmod(0o644)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        conf = d / "sshd_config"
        conf.write_text(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers {USER}
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
SetEnv PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin
Subsystem sftp internal-sftp
LogLevel ERROR
""")
        return conf

    def start(self) -> SshServer:
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            raise RuntimeError("sshd is not installed: run 'make test', which installs openssh-server")
        if subprocess.run(["id", USER], check=False, capture_output=True).returncode != 0:
            useradd = shutil.which("useradd") or "/usr/sbin/useradd"
            subprocess.run([useradd, "-M", "-s", "/bin/sh", USER], check=True)
        subprocess.run(
            [shutil.which("chpasswd") or "/usr/sbin/chpasswd"],
            input=f"{USER}:{PASSWORD}\n".encode(),
            check=True,
        )
        conf = self._prepare()
        # -D: no daemon; -e: errors to stderr. Its own session, so that signals reach it and its children.
        self.proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "sshd.log", "ab"),  # noqa: SIM115 - kept for the server's life
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def set_b3sum(self, available: bool, answer: str | None = None) -> None:
        """Offer b3sum or not; with ``answer``, one that prints that digest for every file."""
        self.with_b3sum, self.b3sum_answer = available, answer
        self._prepare()

    def wait_ready(self, seconds: float = 20) -> None:
        import socket

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.workdir / "sshd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port} within {seconds} s")

    def _signal_all(self, sig: int) -> None:
        """Signal sshd and every session process it forked (they share its process group)."""
        if self.proc is None:
            return
        # Sessions run in process groups of their own (setsid in the child): found by parentage, before
        # the listener dies and they are handed to init.
        sessions = _descendants(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def pause(self) -> None:
        """SIGSTOP the server and its sessions (a hung NAS)."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server and its sessions (a crash); start() brings it back on the same port."""
        self._signal_all(signal.SIGCONT)
        self._signal_all(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.kill()
        self.proc = None


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
