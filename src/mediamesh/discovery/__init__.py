"""Finding NAS and shares on the LAN: what hosts announce (mDNS/DNS-SD in ``mdns.py``, WS-Discovery in
``wsd.py``) and what a host offers when asked (SMB shares and NFS exports in ``shares.py``).

Discovery only listens, and asks the hosts that announced themselves or that the user typed; it never
sweeps an address range. Orchestration, caching and the on/off setting are in services/discovery.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Announced:
    """A host heard on the LAN: its addresses, the name it gave, and the services it offers."""

    address: str
    names: set[str] = field(default_factory=set)
    services: dict[str, int] = field(default_factory=dict)  # smb | nfs | sftp -> port
    model: str | None = None
    via: set[str] = field(default_factory=set)  # mdns | wsd | typed
