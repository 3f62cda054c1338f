"""A LAN made by the tests on this machine: network namespaces (``ip netns``) joined by a bridge that
lives in a namespace of its own, so nothing touches the machine's own network. Each host gets one
address in a private /24 and a route for multicast; processes are started inside a host with
``ip netns exec``. Everything is removed when the LAN is closed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Host:
    namespace: str
    address: str
    lan: Lan

    def _env(self, kwargs: dict[str, Any]) -> None:
        """Python processes inside may reach this LAN (the loopback guard lets them: MEDIAMESH_TEST_NETS)."""
        kwargs["env"] = {**(kwargs.get("env") or os.environ), "MEDIAMESH_TEST_NETS": self.lan.network}

    def popen(self, command: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """A process inside this host (kept by the LAN, and stopped when it closes)."""
        self._env(kwargs)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *command], start_new_session=True, **kwargs
        )
        self.lan.procs.append(proc)
        return proc

    def run(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        self._env(kwargs)
        return subprocess.run(["ip", "netns", "exec", self.namespace, *command], check=False, **kwargs)


@dataclass
class Lan:
    """``Lan(workdir).host("nas")`` makes a host; ``close()`` stops every process and removes it all."""

    workdir: Path
    tag: str = field(default_factory=lambda: f"mm{os.getpid() % 100000}")
    subnet: str = field(default_factory=lambda: f"10.231.{os.getpid() % 250 + 1}")
    hosts: list[Host] = field(default_factory=list)
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.switch = f"{self.tag}-lan"
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    @property
    def network(self) -> str:
        return f"{self.subnet}.0/24"

    def host(self, name: str) -> Host:
        index = len(self.hosts) + 2
        namespace = f"{self.tag}-{name}"
        outside = f"{self.tag}p{index}"  # the bridge's end (names are at most 15 characters)
        _ip("netns", "add", namespace)
        _ip(
            "link",
            "add",
            "eth0",
            "netns",
            namespace,
            "type",
            "veth",
            "peer",
            "name",
            outside,
            "netns",
            self.switch,
        )
        _ip("-n", self.switch, "link", "set", outside, "master", "br0", "up")
        address = f"{self.subnet}.{index}"
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "route", "add", "224.0.0.0/4", "dev", "eth0")
        host = Host(namespace, address, self)
        self.hosts.append(host)
        return host

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.namespace], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], check=False, capture_output=True)
