"""mDNS/DNS-SD browsing (python-zeroconf): Synology, QNAP, TrueNAS, macOS and Linux with Avahi announce
their SMB, NFS and SSH services this way; ``_device-info._tcp`` carries a model name."""

from __future__ import annotations

import threading
import time

from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

from mediamesh.discovery import Announced

#: DNS-SD types listened for, and the kind of source each one offers (None: a hint about the host).
TYPES: dict[str, str | None] = {
    "_smb._tcp.local.": "smb",
    "_nfs._tcp.local.": "nfs",
    "_sftp-ssh._tcp.local.": "sftp",
    "_device-info._tcp.local.": None,  # a model name (Synology and Apple send one)
    "_adisk._tcp.local.": None,  # a Time Machine disk: a NAS
}


class _Heard(ServiceListener):
    def __init__(self) -> None:
        self.names: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

    def _seen(self, type_: str, name: str) -> None:
        with self.lock:
            self.names.add((type_, name))

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._seen(type_, name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self._seen(type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        pass


def browse(seconds: float) -> list[Announced]:
    """Listen for ``seconds``, then resolve what was heard (each answer is bounded too)."""
    zc = Zeroconf()
    heard = _Heard()
    try:
        browser = ServiceBrowser(zc, list(TYPES), listener=heard)
        time.sleep(seconds)
        browser.cancel()
        hosts: dict[str, Announced] = {}
        models: dict[str, str] = {}  # instance name -> model (a _device-info record may carry no address)
        with heard.lock:
            names = sorted(heard.names)
        for type_, name in names:
            info = zc.get_service_info(type_, name, timeout=1000)
            if info is None:
                continue
            instance = name.removesuffix("." + type_)
            model = (info.properties or {}).get(b"model")
            if model:
                models[instance] = model.decode("utf-8", "replace")[:100]
            kind = TYPES[type_]
            if kind is None:
                continue
            for address in info.parsed_addresses():
                host = hosts.setdefault(address, Announced(address))
                host.via.add("mdns")
                host.names.add(instance)
                if info.port:
                    host.services[kind] = info.port
        for host in hosts.values():
            host.model = next((models[n] for n in sorted(host.names) if n in models), None)
        return list(hosts.values())
    finally:
        zc.close()
