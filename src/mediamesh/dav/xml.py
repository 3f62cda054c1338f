"""PROPFIND bodies in, multistatus answers out (RFC 4918), written piece by piece so that a listing of any
size streams. The request body is parsed by defusedxml: no entities, no external references, so a
client's XML cannot make the server expand or fetch anything."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import quote
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from mediamesh.errors import InvalidInput
from mediamesh.services.namespace import Node

DAV = "DAV:"
#: The live properties of every resource here (class 1: no locks, so no lock properties).
LIVE = (
    "displayname",
    "resourcetype",
    "getcontentlength",
    "getlastmodified",
    "getetag",
    "getcontenttype",
)
HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">\n'
TAIL = "</D:multistatus>\n"
# Characters XML 1.0 cannot hold at all (a file name may have them): shown as U+FFFD in display names.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class Request:
    """What a PROPFIND asks: every property (``allprop``), their names only, or these ``(ns, name)``."""

    mode: str  # allprop | propname | prop
    wanted: tuple[tuple[str, str], ...] = ()


def parse_propfind(body: bytes) -> Request:
    """An empty body is ``allprop`` (RFC 4918 9.1); anything else must be a ``DAV:propfind``."""
    if not body.strip():
        return Request("allprop")
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise InvalidInput("a PROPFIND body may not hold a DTD or entities") from exc
    except (ElementTree.ParseError, ValueError) as exc:
        raise InvalidInput(f"the PROPFIND body is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{DAV}}}propfind":
        raise InvalidInput("a PROPFIND body is a DAV:propfind element")
    for child in root:
        if child.tag == f"{{{DAV}}}allprop":
            return Request("allprop")
        if child.tag == f"{{{DAV}}}propname":
            return Request("propname")
        if child.tag == f"{{{DAV}}}prop":
            return Request("prop", tuple(_qname(p) for p in child))
    raise InvalidInput("a DAV:propfind holds allprop, propname or prop")


def _qname(element: Element) -> tuple[str, str]:
    tag = str(element.tag)
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def escape(text: str) -> str:
    text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def href(prefix: str, names: list[str], folder: bool) -> str:
    """An absolute path below ``prefix``, each name percent-encoded (a name may hold ``#``, ``?``, ``%``
    or spaces)."""
    path = quote(prefix.rstrip("/"), safe="/") + "/" + "/".join(quote(n, safe="") for n in names)
    return escape(path + ("/" if folder and not path.endswith("/") else ""))


def _values(node: Node) -> dict[str, str]:
    """The live properties this node has, as XML content."""
    values = {"displayname": escape(node.name)}
    if node.folder:
        values["resourcetype"] = "<D:collection/>"
        return values
    values["resourcetype"] = ""
    values["getcontentlength"] = str(node.size)
    if node.mtime_ns is not None:
        values["getlastmodified"] = formatdate(node.mtime_ns / 1e9, usegmt=True)
    if node.media_id is not None:
        values["getetag"] = f"&quot;{node.media_id}&quot;"
    values["getcontenttype"] = escape(node.content_type)
    return values


def response(link: str, node: Node, asked: Request) -> str:
    """One ``D:response`` of a multistatus: the properties asked for (200), and those asked for that this
    resource does not have (404)."""
    values = _values(node)
    found: list[str] = []
    missing: list[str] = []
    if asked.mode == "propname":
        found = [f"<D:{n}/>" for n in values]
    elif asked.mode == "allprop":
        found = [f"<D:{n}>{v}</D:{n}>" if v else f"<D:{n}/>" for n, v in values.items()]
    else:
        for i, (ns, name) in enumerate(asked.wanted):
            if ns == DAV and name in values:
                value = values[name]
                found.append(f"<D:{name}>{value}</D:{name}>" if value else f"<D:{name}/>")
            elif ns:
                missing.append(f'<p{i}:{escape(name)} xmlns:p{i}="{escape(ns).replace(chr(34), "&quot;")}"/>')
            else:
                missing.append(f'<{escape(name)} xmlns=""/>')
    parts = [f"<D:response><D:href>{link}</D:href>"]
    if found or not missing:
        parts.append(
            f"<D:propstat><D:prop>{''.join(found)}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        )
    if missing:
        parts.append(
            f"<D:propstat><D:prop>{''.join(missing)}</D:prop>"
            "<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"
        )
    parts.append("</D:response>\n")
    return "".join(parts)


FINITE_DEPTH = (
    '<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n'
)
