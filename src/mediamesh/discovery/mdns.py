"""mDNS/DNS-SD browsing (python-zeroconf): Synology, QNAP, TrueNAS, macOS and Linux with Avahi announce
their SMB, NFS and SSH services this way; ``_device-info._tcp`` carries a model name.

An announcement names its addresses itself, and anyone on the LAN can announce anything: only addresses
on a network this machine is on (not loopback) are taken, so no announcement can point the server at its
own loopback services or at a host beyond the LAN. At most :data:`MAX_NAMES` names are resolved."""

from __future__ import annotations

import ipaddress
import threading
import time

import ifaddr
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


#: Names resolved per browse (each takes up to a second): a device that announces thousands stalls nothing.
MAX_NAMES = 128


def on_link_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of this machine's interfaces, loopback left out."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            network = ipaddress.ip_network(f"{address}/{ip.network_prefix}", strict=False)
            if not network.network_address.is_loopback:
                networks.append(network)
    return networks


def on_link(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """An address an announcement may lead the server to: unicast, on one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified:
        return False
    return any(ip.version == n.version and ip in n for n in networks)


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
            names = sorted(heard.names)[:MAX_NAMES]
        networks = on_link_networks()
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
                if not on_link(address, networks):
                    continue
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
