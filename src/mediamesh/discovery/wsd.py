"""WS-Discovery, as Windows (and Samba hosts running wsdd) announce themselves: a Probe multicast to
239.255.255.250:3702, the ProbeMatches answered, then the computer's name asked of the host that
answered (a WS-Transfer Get to its own address: an address in an answer that is not the sender's is never
followed). Replies are parsed by defusedxml."""

from __future__ import annotations

import http.client
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from mediamesh.discovery import Announced

GROUP = ("239.255.255.250", 3702)
NS = {
    "soap": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsd": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "wsdp": "http://schemas.xmlsoap.org/ws/2006/02/devprof",
    "pub": "http://schemas.microsoft.com/windows/pub/2005/07",
}
_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="{soap}" xmlns:wsa="{wsa}" xmlns:wsd="{wsd}" xmlns:wsdp="{wsdp}">'
    "<soap:Header><wsa:To>{to}</wsa:To><wsa:Action>{action}</wsa:Action>"
    "<wsa:MessageID>urn:uuid:{id}</wsa:MessageID>{extra}</soap:Header><soap:Body>{body}</soap:Body>"
    "</soap:Envelope>"
)
#: The largest reply read (a ProbeMatch is about 1 KB; metadata a few).
MAX_REPLY = 64 << 10
#: Hosts taken from one probe, whose names are then asked for 8 at a time: answers that flood in stall nothing.
MAX_HOSTS = 64


def _message(to: str, action: str, body: str, extra: str = "") -> bytes:
    return _ENVELOPE.format(**NS, to=to, action=action, id=uuid.uuid4(), body=body, extra=extra).encode()


def probe_message() -> bytes:
    return _message(
        "urn:schemas-xmlsoap-org:ws:2005:04:discovery",
        "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe",
        "<wsd:Probe><wsd:Types>wsdp:Device</wsd:Types></wsd:Probe>",
    )


def resolve_message(endpoint: str) -> bytes:
    return _message(
        "urn:schemas-xmlsoap-org:ws:2005:04:discovery",
        "http://schemas.xmlsoap.org/ws/2005/04/discovery/Resolve",
        f"<wsd:Resolve><wsa:EndpointReference><wsa:Address>{escape(endpoint)}</wsa:Address>"
        "</wsa:EndpointReference></wsd:Resolve>",
    )


def parse_match(data: bytes, sender: str) -> tuple[str, str | None] | None:
    """(endpoint, metadata URL or None) of a ProbeMatch or ResolveMatch from ``sender``, or None. A
    ProbeMatch may leave its URL out (wsdd does: it is then asked for with a Resolve); a URL naming another
    host than the sender is dropped: only hosts that answered are asked anything."""
    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        return None
    match = root.find(".//wsd:ProbeMatch", NS)
    if match is None:
        match = root.find(".//wsd:ResolveMatch", NS)
    if match is None:
        return None
    endpoint = (match.findtext("wsa:EndpointReference/wsa:Address", "", NS) or "").strip()
    types = match.findtext("wsd:Types", "", NS) or ""
    if not endpoint or ("Computer" not in types and "Device" not in types and types):
        return None
    for xaddr in (match.findtext("wsd:XAddrs", "", NS) or "").split():
        parts = urlsplit(xaddr)
        if parts.scheme == "http" and (parts.hostname or "").strip("[]") == sender:
            return endpoint, xaddr
    return endpoint, None


def computer_name(metadata: bytes) -> str | None:
    """``NAME`` of ``<pub:Computer>NAME/Workgroup:WG</pub:Computer>`` (or ``/Domain:``) in a Get reply."""
    try:
        root = ElementTree.fromstring(metadata, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        return None
    text = root.findtext(".//pub:Computer", None, NS)
    if not text:
        return None
    return text.split("/", 1)[0].strip()[:64] or None


def _get_name(endpoint: str, url: str, timeout: float) -> str | None:
    parts = urlsplit(url)
    body = _message(
        endpoint,
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
        "",
        "<wsa:ReplyTo><wsa:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
        "</wsa:Address></wsa:ReplyTo>",
    )
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("POST", parts.path or "/", body, {"Content-Type": "application/soap+xml"})
        reply = conn.getresponse()
        return computer_name(reply.read(MAX_REPLY)) if reply.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def probe(seconds: float) -> list[Announced]:
    """Send a Probe (again once, UDP may drop it), gather the answers for ``seconds`` (asking with a Resolve
    for the address of those that leave it out), then ask each host that answered for its name. Windows
    PCs and Samba hosts that run wsdd answer."""
    endpoints: dict[str, str] = {}
    urls: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # this network only
        message = probe_message()
        sock.sendto(message, GROUP)
        deadline = time.monotonic() + seconds
        resent = False
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(min(left, 0.5))
            try:
                data, (sender, _) = sock.recvfrom(MAX_REPLY)
            except TimeoutError:
                if not resent:
                    sock.sendto(message, GROUP)
                    resent = True
                continue
            found = parse_match(data, sender)
            if found is None:
                continue
            endpoint, url = found
            if sender not in endpoints and len(endpoints) >= MAX_HOSTS:
                continue
            if url is not None:
                urls[sender] = url
            elif sender not in endpoints:
                sock.sendto(resolve_message(endpoint), GROUP)
            endpoints[sender] = endpoint

    def named(address: str) -> Announced:
        host = Announced(address, via={"wsd"}, services={"smb": 445})
        url = urls.get(address)
        name = _get_name(endpoints[address], url, timeout=min(2.0, seconds)) if url else None
        if name:
            host.names.add(name)
        return host

    with ThreadPoolExecutor(8, thread_name_prefix="mediamesh-wsd") as pool:
        return list(pool.map(named, sorted(endpoints)))
