"""XML helpers shared by the XMPP client, the Jingle layer and the emulator.

Parsing goes through :mod:`defusedxml` (untrusted input: no entity expansion,
no external entities, no DTDs).  Elements use ElementTree's Clark notation
(``{namespace}tag``).  Serialisation is our own because ElementTree writes
``ns0:`` prefixes, while XMPP (RFC 6120 §4.8.5) expects the content namespace
to be the default one, so every element whose namespace differs from its
parent's gets its own ``xmlns`` attribute instead.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Iterable, Iterator, Optional
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

__all__ = [
    "NS",
    "Element",
    "XmlError",
    "element",
    "parse",
    "to_string",
    "split",
    "find",
    "findall",
    "child_text",
]

Element = ET.Element

#: The namespaces this project speaks, by short name.
NS = {
    "client": "jabber:client",
    "framing": "urn:ietf:params:xml:ns:xmpp-framing",
    "stream": "http://etherx.jabber.org/streams",
    "sasl": "urn:ietf:params:xml:ns:xmpp-sasl",
    "bind": "urn:ietf:params:xml:ns:xmpp-bind",
    "session": "urn:ietf:params:xml:ns:xmpp-session",
    "stanzas": "urn:ietf:params:xml:ns:xmpp-stanzas",
    "streams": "urn:ietf:params:xml:ns:xmpp-streams",
    "ping": "urn:xmpp:ping",
    "disco_info": "http://jabber.org/protocol/disco#info",
    "extdisco": "urn:xmpp:extdisco:1",
    "cxfr": "urn:xmpp:cxfr",
    "jmi": "urn:xmpp:jingle-message:0",
    "jingle": "urn:xmpp:jingle:1",
    "jingle_errors": "urn:xmpp:jingle:errors:1",
    "rtp": "urn:xmpp:jingle:apps:rtp:1",
    "rtp_info": "urn:xmpp:jingle:apps:rtp:info:1",
    "rtcp_fb": "urn:xmpp:jingle:apps:rtp:rtcp-fb:0",
    "hdrext": "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0",
    "ssma": "urn:xmpp:jingle:apps:rtp:ssma:0",
    "msid": "urn:xmpp:jingle:apps:rtp:msid:0",
    "grouping": "urn:xmpp:jingle:apps:grouping:0",
    "ice_udp": "urn:xmpp:jingle:transports:ice-udp:1",
    "dtls": "urn:xmpp:jingle:apps:dtls:0",
    "genesys": "genesys",
    "pubsub": "http://jabber.org/protocol/pubsub",
    "pubsub_event": "http://jabber.org/protocol/pubsub#event",
    "json": "urn:xmpp:json:0",
}

_XML_NS = "http://www.w3.org/XML/1998/namespace"


class XmlError(ValueError):
    """Raised for input that is not well-formed or not allowed (DTDs, entities)."""


def q(ns: str, tag: str) -> str:
    """Clark name for ``tag`` in the namespace called ``ns`` in :data:`NS`."""
    return "{%s}%s" % (NS[ns], tag)


def element(
    tag: str,
    attrs: Optional[dict] = None,
    *children: Element,
    text: Optional[str] = None,
    **kwattrs: object,
) -> Element:
    """Build an element.  ``tag`` is a Clark name; ``None`` attribute values are dropped."""
    el = ET.Element(tag)
    merged = dict(attrs or {})
    merged.update(kwattrs)
    for key, value in merged.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        el.set(key, str(value))
    for child in children:
        el.append(child)
    if text is not None:
        el.text = text
    return el


def sub(parent: Element, tag: str, attrs: Optional[dict] = None, *, text: Optional[str] = None, **kw: object) -> Element:
    """Append a new child built like :func:`element` and return it."""
    child = element(tag, attrs, text=text, **kw)
    parent.append(child)
    return child


def split(tag: str) -> tuple[str, str]:
    """``{ns}local`` → ``(ns, local)``; an unqualified tag has namespace ``""``."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def parse(text: str | bytes, *, max_bytes: int = 1 << 20) -> Element:
    """Parse one complete XML element from untrusted ``text``.

    :raises XmlError: for malformed XML, oversized input, DTDs or entity tricks.
    """
    size = len(text)
    if size > max_bytes:
        raise XmlError(f"XML too large: {size} bytes (limit {max_bytes})")
    try:
        return DET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise XmlError(f"XML rejected: {exc.__class__.__name__}") from exc
    except ET.ParseError as exc:
        raise XmlError(f"malformed XML: {exc}") from exc


# Characters XML 1.0 cannot carry at all (§2.2); they are replaced rather than producing ill-formed output.
_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    # A literal CR would be normalised to LF by the receiving parser (XML §2.11): send it as a reference.
    return escape(_INVALID.sub("\ufffd", value)).replace("\r", "&#13;")


def _attr(value: str) -> str:
    return quoteattr(_INVALID.sub("\ufffd", value), {"\r": "&#13;", "\n": "&#10;", "\t": "&#9;"})


def _attr_name(name: str) -> str:
    ns, local = split(name)
    if not ns:
        return local
    if ns == _XML_NS:
        return "xml:" + local
    raise ValueError(f"namespaced attribute not supported: {name}")


def _write(el: Element, default_ns: Optional[str], stream_declared: bool, out: list[str]) -> None:
    ns, local = split(el.tag)
    if ns == NS["stream"]:
        # <stream:features/> and <stream:error/> keep the conventional prefix
        # (RFC 7395 §3.3 examples); their children stay in the default namespace.
        name = "stream:" + local
        out.append("<" + name)
        if not stream_declared:
            out.append(" xmlns:stream=" + quoteattr(ns))
            stream_declared = True
    else:
        name = local
        out.append("<" + name)
        if ns != default_ns:
            out.append(" xmlns=" + quoteattr(ns))
        default_ns = ns
    for key, value in el.attrib.items():
        out.append(" %s=%s" % (_attr_name(key), _attr(value)))
    children = list(el)
    if not children and not el.text:
        out.append("/>")
    else:
        out.append(">")
        if el.text:
            out.append(_text(el.text))
        for child in children:
            _write(child, default_ns, stream_declared, out)
            if child.tail:
                out.append(_text(child.tail))
        out.append("</%s>" % name)


def to_string(el: Element, *, parent_ns: Optional[str] = None) -> str:
    """Serialise ``el`` with default-namespace declarations only.

    :param parent_ns: namespace assumed to be in scope already (pass
        ``"jabber:client"`` to omit it from top-level stanzas).
    """
    out: list[str] = []
    _write(el, parent_ns, False, out)
    return "".join(out)


def find(el: Optional[Element], ns: str, tag: str) -> Optional[Element]:
    """First child of ``el`` named ``tag`` in namespace ``NS[ns]`` (or ``None``)."""
    if el is None:
        return None
    return el.find(q(ns, tag))


def findall(el: Optional[Element], ns: str, tag: str) -> list[Element]:
    """All children of ``el`` named ``tag`` in namespace ``NS[ns]``."""
    if el is None:
        return []
    return el.findall(q(ns, tag))


def children_in(el: Element, ns: str) -> Iterator[Element]:
    """Children of ``el`` in namespace ``NS[ns]``."""
    prefix = "{%s}" % NS[ns]
    return (child for child in el if child.tag.startswith(prefix))


def child_text(el: Optional[Element], ns: str, tag: str) -> Optional[str]:
    """Text of the first matching child, stripped, or ``None``."""
    child = find(el, ns, tag)
    if child is None:
        return None
    return (child.text or "").strip()


def local_names(elements: Iterable[Element]) -> list[str]:
    """Local names of ``elements`` (handy in errors and tests)."""
    return [split(e.tag)[1] for e in elements]
