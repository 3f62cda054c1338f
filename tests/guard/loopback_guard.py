"""The loopback-only guard of every test and benchmark process: a connection or a name look-up for
anything but this machine fails at once, whatever a test, a benchmark or generated input asks for.

Installed in the test runner by tests/conftest.py and in each benchmark by its first lines; processes
they start (``mediamesh serve``, the CLI) get it too: ``tests/guard`` is put on their PYTHONPATH, where
its ``sitecustomize`` installs it at start-up (``MEDIAMESH_LOOPBACK_ONLY=1``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

GUARD_DIR = os.path.dirname(os.path.abspath(__file__))
_real = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.socket.sendto)


#: Networks a test made itself, in network namespaces (tests/servers/lan.py): a process started inside
#: one may reach them, and send to the multicast groups of discovery there (nowhere else can it reach).
TEST_NETS = [
    ipaddress.ip_network(n.strip()) for n in os.environ.get("MEDIAMESH_TEST_NETS", "").split(",") if n.strip()
]
DISCOVERY_GROUPS = {"224.0.0.251", "ff02::fb", "239.255.255.250", "ff02::c"}


def is_loopback(host: object) -> bool:
    text = str(host).split("%")[0]
    if text == "localhost":
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    return bool(TEST_NETS) and (text in DISCOVERY_GROUPS or any(address in net for net in TEST_NETS))


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address[0]!r}")


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(self, args[-1])
    return int(_real[3](self, data, *args))


def _connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _real[0](self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _real[1](self, address)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not is_loopback(host.decode() if isinstance(host, bytes) else host):
        raise socket.gaierror(socket.EAI_NONAME, f"tests resolve only loopback names, not {host!r}")
    return _real[2](host, *args, **kwargs)


def install(children: bool = True) -> None:
    """Guard this process and, with ``children``, every Python process it starts from now on."""
    socket.socket.connect = _connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _getaddrinfo
    socket.socket.sendto = _sendto  # type: ignore[method-assign,assignment]
    if children:
        os.environ["MEDIAMESH_LOOPBACK_ONLY"] = "1"
        path = os.environ.get("PYTHONPATH", "")
        if GUARD_DIR not in path.split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (GUARD_DIR, path) if p)


def uninstall() -> None:
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.socket.sendto = _real  # type: ignore[method-assign]


def installed() -> bool:
    return socket.getaddrinfo is _getaddrinfo
