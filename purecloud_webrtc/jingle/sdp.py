"""Pure translation between SDP and Jingle (docs/protocol.rst §4.9).

Covers XEP-0166 contents, XEP-0167 RTP descriptions, XEP-0176 ICE-UDP
transports, XEP-0293 RTCP feedback, XEP-0294 header extensions, XEP-0320 DTLS
fingerprints, XEP-0338 grouping, XEP-0339 sources and the non-standard msid
``<stream/>`` that stanza 12 (genesys-cloud-streaming-client ≥13) puts on the
wire.  Nothing here does I/O or touches asyncio: every function is a plain
transformation, safe to call from any thread (in practice the core thread runs
it).

Why the SDP is parsed by hand rather than with :class:`aiortc.sdp.SessionDescription`:
aiortc's parser (1.16) drops things this mapping must carry -- extmap
directions, ``a=rtcp-rsize``, ``a=ptime``/``a=maxptime``, whether ``a=rtcp-fb``
was written for ``*`` or per payload type, whether an rtpmap gave a channel
count, the order of fmtp parameters and their spelling (it turns some into
``int``), candidates' ``generation``/``network-id``, ``b=`` lines, and ssrc
attributes other than cname/msid/mslabel/label -- and it reports malformed
input with bare ``assert`` statements.  aiortc stays the judge of the SDP we
*write*: the tests feed it through ``setRemoteDescription``.

What SDP can say but Jingle (as Genesys' stacks speak it) cannot, and so is
deliberately lost in :func:`sdp_to_jingle`:

* ``o=``, ``s=``, ``t=``, ``c=`` and ``a=rtcp:`` lines: regenerated as
  boilerplate by :func:`jingle_to_sdp` (the port becomes 9, or 0 for a content
  without transport; the profile becomes ``UDP/TLS/RTP/SAVPF``).
* ``a=ice-lite``: stanza has a field for it but never serialises it
  (PROTOCOL §4.2), so a lite peer cannot be signalled over Jingle at all.
* ``a=ice-options`` (``trickle``, ``renomination``), ``a=msid-semantic``,
  session-level ``b=`` lines, extmap extension attributes, ``a=sctp-port``,
  ``a=max-message-size``, ``a=sctpmap`` and any attribute not in the §4.9
  table (``a=rid``, ``a=simulcast``, ``a=crypto``...).
* Candidate fields other than the ones in the §4.9 table (``ufrag``,
  ``network-cost``); an explicit ``/sendrecv`` on an extmap (it is the default).
* Data channels: an ``m=application`` section becomes a content with an empty
  ``<description xmlns="urn:xmpp:jingle:transports:webrtc-datachannel:0"/>``
  (the shape WRS used) plus its transport, so that m-line order and BUNDLE mids
  survive; :func:`jingle_to_sdp` writes it back as a *rejected* m-line
  (``m=application 0 UDP/DTLS/SCTP webrtc-datachannel``) because the softphone
  never negotiates data channels and the SCTP port is not carried.

Session-level SDP attributes that apply to every media section (ICE
credentials, fingerprints, setup, direction, extmaps, ``a=extmap-allow-mixed``,
``a=end-of-candidates``) are copied into every content, which is what they
mean.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

from .._xml import NS, Element, element, find, findall, q, split, sub

__all__ = [
    "Role",
    "SdpError",
    "sdp_to_jingle",
    "jingle_to_sdp",
    "candidate_to_element",
    "element_to_candidate",
    "split_candidates",
    "transport_info_content",
    "parse_transport_info",
    "TransportCredentials",
    "transport_credentials",
    "with_credentials",
    "direction_to_senders",
    "senders_to_direction",
]

#: Which party wrote a description: the gateway is always the Jingle
#: initiator, this SDK the responder (PROTOCOL §4).
Role = Literal["initiator", "responder"]

#: WRS' data-channel description namespace (PROTOCOL §4.9, last row); not in
#: :data:`purecloud_webrtc._xml.NS` because nothing else speaks it.
NS_DATACHANNEL = "urn:xmpp:jingle:transports:webrtc-datachannel:0"
#: XEP-0343's ``<sctpmap/>`` namespace: how stanza marks a data-channel transport.
NS_DTLS_SCTP = "urn:xmpp:jingle:transports:dtls-sctp:1"

_ROLES = ("initiator", "responder")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_SETUPS = ("actpass", "active", "passive", "holdconn")

# RFC 3551 tables 4 and 5: static payload types may appear in an m-line
# without an rtpmap, but aiortc builds its codec list from rtpmap lines only,
# so the translation fills the well-known name, clock rate and channels in.
_STATIC_PAYLOADS: dict[str, dict[int, tuple[str, int, Optional[int]]]] = {
    "audio": {
        0: ("PCMU", 8000, 1),
        3: ("GSM", 8000, 1),
        4: ("G723", 8000, 1),
        5: ("DVI4", 8000, 1),
        6: ("DVI4", 16000, 1),
        7: ("LPC", 8000, 1),
        8: ("PCMA", 8000, 1),
        9: ("G722", 8000, 1),
        10: ("L16", 44100, 2),
        11: ("L16", 44100, 1),
        12: ("QCELP", 8000, 1),
        13: ("CN", 8000, 1),
        15: ("G728", 8000, 1),
        16: ("DVI4", 11025, 1),
        17: ("DVI4", 22050, 1),
        18: ("G729", 8000, 1),
    },
    "video": {
        26: ("JPEG", 90000, None),
        31: ("H261", 90000, None),
        32: ("MPV", 90000, None),
        34: ("H263", 90000, None),
    },
}

# SDP candidate extension keys carried in Jingle, with their XEP-0176 (or
# stanza, for tcptype) attribute names.  ``network-id`` is libwebrtc's
# spelling of what XEP-0176 calls ``network``.
_CANDIDATE_EXTENSIONS = {
    "raddr": "rel-addr",
    "rport": "rel-port",
    "tcptype": "tcptype",
    "generation": "generation",
    "network-id": "network",
}
_CANDIDATE_INT_EXTENSIONS = ("rport", "generation", "network-id")
# Attributes a <candidate/> must have to be written back as an SDP candidate.
_CANDIDATE_REQUIRED = ("foundation", "component", "protocol", "priority", "ip", "port", "type")

_LINE_RE = re.compile(r"^([a-z])=(.*)$")
_MLINE_RE = re.compile(r"^(\S+) (\d+)(?:/\d+)? (\S+)(?: (.*))?$")
_TOKEN_RE = re.compile(r"^\S+$")


class SdpError(ValueError):
    """Raised for SDP or Jingle that cannot be translated; the message says what is wrong."""


# --------------------------------------------------------------------------
# senders <-> direction
# --------------------------------------------------------------------------


def _check_role(role: str) -> None:
    if role not in _ROLES:
        raise ValueError(f"role must be 'initiator' or 'responder', not {role!r}")


def _other(role: str) -> str:
    return "responder" if role == "initiator" else "initiator"


def direction_to_senders(role: Role, direction: str) -> str:
    """Map an SDP direction written by ``role`` to a Jingle ``senders`` value.

    ``sendonly`` means "the writer sends", so it becomes the writer's role;
    ``recvonly`` becomes the other role (PROTOCOL §4.9).

    :param role: the party that wrote the SDP.
    :param direction: ``sendrecv``, ``sendonly``, ``recvonly`` or ``inactive``.
    :raises ValueError: for an unknown role or direction.
    """
    _check_role(role)
    if direction == "sendrecv":
        return "both"
    if direction == "inactive":
        return "none"
    if direction == "sendonly":
        return role
    if direction == "recvonly":
        return _other(role)
    raise ValueError(f"unknown SDP direction {direction!r}")


def senders_to_direction(role: Role, senders: str) -> str:
    """Map a Jingle ``senders`` value in a description written by ``role`` to an SDP direction.

    :param role: the party that wrote the Jingle description.
    :param senders: ``both``, ``initiator``, ``responder`` or ``none``.
    :raises ValueError: for an unknown role or senders value.
    """
    _check_role(role)
    if senders == "both":
        return "sendrecv"
    if senders == "none":
        return "inactive"
    if senders == role:
        return "sendonly"
    if senders == _other(role):
        return "recvonly"
    raise ValueError(f"unknown Jingle senders value {senders!r}")


# --------------------------------------------------------------------------
# SDP reading
# --------------------------------------------------------------------------


@dataclass
class _Attr:
    lineno: int
    name: str
    value: Optional[str]


@dataclass
class _Section:
    """One ``m=`` section: the m-line fields and its lines in order."""

    lineno: int
    kind: str
    port: int
    proto: str
    fmts: list[str]
    attrs: list[_Attr] = field(default_factory=list)
    bandwidths: list[tuple[str, str]] = field(default_factory=list)

    def first(self, name: str) -> Optional[_Attr]:
        return next((a for a in self.attrs if a.name == name), None)


@dataclass
class _Sdp:
    session: list[_Attr]
    media: list[_Section]

    def session_first(self, name: str) -> Optional[_Attr]:
        return next((a for a in self.session if a.name == name), None)


def _split_required_attr(text: str) -> tuple[str, Optional[str]]:
    name, colon, value = text.partition(":")
    return name.strip(), (value if colon else None)


def _parse_sdp(sdp: str) -> _Sdp:
    if not isinstance(sdp, str):
        raise SdpError(f"SDP must be a str, not {type(sdp).__name__}")
    session: list[_Attr] = []
    media: list[_Section] = []
    seen_version = False
    for lineno, raw in enumerate(sdp.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _LINE_RE.match(line)
        if match is None:
            raise SdpError(f"malformed SDP line {lineno}: {raw!r} is not '<letter>=<value>'")
        kind, value = match.group(1), match.group(2)
        if not seen_version:
            if kind != "v":
                raise SdpError(f"malformed SDP: must start with 'v=0', line {lineno} is {raw!r}")
            if value.strip() != "0":
                raise SdpError(f"unsupported SDP version {value!r} (line {lineno})")
            seen_version = True
            continue
        if kind == "m":
            m = _MLINE_RE.match(value)
            if m is None:
                raise SdpError(f"malformed m-line {lineno}: {raw!r}")
            fmts = (m.group(4) or "").split()
            media.append(_Section(lineno, m.group(1), int(m.group(2)), m.group(3), fmts))
        elif kind == "a":
            name, attr_value = _split_required_attr(value)
            if not name:
                raise SdpError(f"malformed attribute line {lineno}: {raw!r}")
            (media[-1].attrs if media else session).append(_Attr(lineno, name, attr_value))
        elif kind == "b" and media:
            bwtype, colon, bw = value.partition(":")
            if not colon or not bwtype or not bw:
                raise SdpError(f"malformed b= line {lineno}: {raw!r}")
            media[-1].bandwidths.append((bwtype, bw))
        # o=, s=, t=, c=, session-level b= and the rest are regenerated or
        # not representable (module docstring).
    if not seen_version:
        raise SdpError("malformed SDP: empty, no 'v=0' line")
    return _Sdp(session, media)


def _int(text: Optional[str], what: str, low: int, high: int) -> int:
    try:
        number = int(text if text is not None else "")
    except ValueError:
        raise SdpError(f"{what}: {text!r} is not an integer") from None
    if not low <= number <= high:
        raise SdpError(f"{what}: {number} is outside {low}..{high}")
    return number


def _require(attr: _Attr, what: str) -> str:
    if attr.value is None or not attr.value.strip():
        raise SdpError(f"line {attr.lineno}: a={attr.name} needs a value ({what})")
    return attr.value.strip()


def _params(text: str) -> list[tuple[str, Optional[str]]]:
    # fmtp parameters keep their order and spelling; an entry without '='
    # (red's "111/111", telephone-event's "0-15") has no value (PROTOCOL §10).
    result: list[tuple[str, Optional[str]]] = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        key, equals, value = item.partition("=")
        result.append((key.strip(), value.strip()) if equals else (item, None))
    return result


@dataclass
class _Codec:
    pt: int
    name: Optional[str] = None
    clockrate: Optional[int] = None
    channels: Optional[int] = None
    parameters: list[tuple[str, Optional[str]]] = field(default_factory=list)
    feedback: list[tuple[str, Optional[str]]] = field(default_factory=list)
    trr_int: Optional[str] = None


def _mid_of(section: _Section) -> str:
    attr = section.first("mid")
    if attr is not None:
        return _require(attr, "the media id")
    # SJJ names a content after its media type when there is no a=mid.
    return section.kind


def _section_codecs(section: _Section, mid: str) -> list[_Codec]:
    if not section.fmts:
        raise SdpError(f"m-line {section.lineno} (mid {mid!r}) lists no payload types")
    codecs: dict[int, _Codec] = {}
    for fmt in section.fmts:
        pt = _int(fmt, f"m-line {section.lineno} (mid {mid!r}) payload type", 0, 127)
        if pt in codecs:
            # Seen in pre-gathering offers of real stacks: the same format twice in the m-line. It is
            # one payload type (its rtpmap/fmtp lines say so), at its first position.
            continue
        codec = _Codec(pt)
        static = _STATIC_PAYLOADS.get(section.kind, {}).get(pt)
        if static is not None:
            codec.name, codec.clockrate, codec.channels = static
        codecs[pt] = codec
    for attr in section.attrs:
        if attr.name not in ("rtpmap", "fmtp", "rtcp-fb"):
            continue
        text = _require(attr, "payload type and description")
        pt_text, _, rest = text.partition(" ")
        rest = rest.strip()
        if attr.name == "rtcp-fb" and pt_text == "*":
            continue  # description level, handled by the caller
        pt = _int(pt_text, f"line {attr.lineno} a={attr.name} payload type", 0, 127)
        if pt not in codecs:
            # Attributes for payload types the m-line does not list have no
            # meaning (RFC 8866 §6.6); browsers never write them.
            continue
        codec = codecs[pt]
        if attr.name == "rtpmap":
            parts = rest.split("/")
            if len(parts) < 2 or not parts[0]:
                raise SdpError(f"line {attr.lineno}: malformed rtpmap {text!r}")
            codec.name = parts[0]
            codec.clockrate = _int(parts[1], f"line {attr.lineno} rtpmap clock rate", 1, 2**32 - 1)
            if len(parts) > 2:
                codec.channels = _int(parts[2], f"line {attr.lineno} rtpmap channels", 1, 255)
            elif section.kind == "audio":
                # One channel is the rtpmap default for audio, and the
                # official client writes it out (PROTOCOL §10: channels="1").
                codec.channels = 1
            else:
                codec.channels = None
        elif attr.name == "fmtp":
            codec.parameters.extend(_params(rest))
        else:
            fb_type, _, subtype = rest.partition(" ")
            if not fb_type:
                raise SdpError(f"line {attr.lineno}: rtcp-fb without a type")
            if fb_type == "trr-int":
                codec.trr_int = subtype.strip() or "0"
            else:
                codec.feedback.append((fb_type, subtype.strip() or None))
    return list(codecs.values())


def _feedback_elements(parent: Element, feedback: Sequence[tuple[str, Optional[str]]], trr_int: Optional[str]) -> None:
    for fb_type, subtype in feedback:
        sub(parent, q("rtcp_fb", "rtcp-fb"), {"type": fb_type, "subtype": subtype})
    if trr_int is not None:
        sub(parent, q("rtcp_fb", "rtcp-fb-trr-int"), {"value": trr_int})


def _rtp_description(sdp: _Sdp, section: _Section, mid: str, role: str) -> Element:
    desc = element(q("rtp", "description"), {"media": section.kind})
    codecs = _section_codecs(section, mid)

    # a=ptime/a=maxptime are media-level in SDP and per payload type in
    # XEP-0167, so every payload type gets the media's value.
    ptime = section.first("ptime")
    maxptime = section.first("maxptime")
    for codec in codecs:
        pt_el = sub(
            desc,
            q("rtp", "payload-type"),
            {
                "id": codec.pt,
                "name": codec.name,
                "clockrate": codec.clockrate,
                "channels": codec.channels,
                "ptime": _require(ptime, "milliseconds") if ptime is not None else None,
                "maxptime": _require(maxptime, "milliseconds") if maxptime is not None else None,
            },
        )
        for name, value in codec.parameters:
            sub(pt_el, q("rtp", "parameter"), {"name": name, "value": value})
        _feedback_elements(pt_el, codec.feedback, codec.trr_int)

    # a=rtcp-fb:* applies to every payload type: description-level rtcp-fb (SJJ).
    wildcard: list[tuple[str, Optional[str]]] = []
    wildcard_trr: Optional[str] = None
    for attr in section.attrs:
        if attr.name != "rtcp-fb" or attr.value is None:
            continue
        pt_text, _, rest = attr.value.strip().partition(" ")
        if pt_text != "*":
            continue
        fb_type, _, subtype = rest.strip().partition(" ")
        if not fb_type:
            raise SdpError(f"line {attr.lineno}: rtcp-fb without a type")
        if fb_type == "trr-int":
            wildcard_trr = subtype.strip() or "0"
        else:
            wildcard.append((fb_type, subtype.strip() or None))
    _feedback_elements(desc, wildcard, wildcard_trr)

    for bwtype, bw in section.bandwidths:
        sub(desc, q("rtp", "bandwidth"), {"type": bwtype}, text=bw)

    # Session-level extmaps (RFC 8285 §5) apply to every media section.
    extmaps = [a for a in sdp.session if a.name == "extmap"] + [a for a in section.attrs if a.name == "extmap"]
    for attr in extmaps:
        parts = _require(attr, "id and URI").split()
        if len(parts) < 2:
            raise SdpError(f"line {attr.lineno}: malformed extmap {attr.value!r}")
        ext_id, _, ext_dir = parts[0].partition("/")
        _int(ext_id, f"line {attr.lineno} extmap id", 1, 255)
        senders = None
        if ext_dir:
            if ext_dir not in _DIRECTIONS:
                raise SdpError(f"line {attr.lineno}: unknown extmap direction {ext_dir!r}")
            senders = direction_to_senders(role, ext_dir)  # type: ignore[arg-type]
            if senders == "both":
                senders = None  # XEP-0294 default
        # Extension attributes after the URI are not carried (module docstring).
        sub(desc, q("hdrext", "rtp-hdrext"), {"id": ext_id, "uri": parts[1], "senders": senders})
    if section.first("extmap-allow-mixed") is not None or sdp.session_first("extmap-allow-mixed") is not None:
        sub(desc, q("hdrext", "extmap-allow-mixed"))

    if section.first("rtcp-mux") is not None:
        sub(desc, q("rtp", "rtcp-mux"))
    if section.first("rtcp-rsize") is not None:
        sub(desc, q("rtp", "rtcp-reduced-size"))

    sources: dict[str, Element] = {}
    for attr in section.attrs:
        if attr.name != "ssrc":
            continue
        text = _require(attr, "ssrc and attribute")
        ssrc_text, _, source_attr = text.partition(" ")
        ssrc = str(_int(ssrc_text, f"line {attr.lineno} ssrc", 0, 2**32 - 1))
        source_attr = source_attr.strip()
        if not source_attr:
            raise SdpError(f"line {attr.lineno}: a=ssrc without an attribute")
        source = sources.get(ssrc)
        if source is None:
            source = sources[ssrc] = element(q("ssma", "source"), {"ssrc": ssrc})
        name, colon, value = source_attr.partition(":")
        sub(source, q("ssma", "parameter"), {"name": name, "value": value if colon else None})
    if sources:
        # XEP-0167 description ssrc: the first source, as stanza does.
        desc.set("ssrc", next(iter(sources)))
        for source in sources.values():
            desc.append(source)
    for attr in section.attrs:
        if attr.name != "ssrc-group":
            continue
        parts = _require(attr, "semantics and ssrcs").split()
        group = sub(desc, q("ssma", "ssrc-group"), {"semantics": parts[0]})
        for ssrc_text in parts[1:]:
            ssrc = str(_int(ssrc_text, f"line {attr.lineno} ssrc-group ssrc", 0, 2**32 - 1))
            sub(group, q("ssma", "source"), {"ssrc": ssrc})
    for attr in section.attrs:
        if attr.name != "msid":
            continue
        parts = _require(attr, "stream id and track").split()
        sub(desc, q("msid", "stream"), {"id": parts[0], "track": parts[1] if len(parts) > 1 else None})
    return desc


def _transport(sdp: _Sdp, section: _Section, include_candidates: bool) -> Optional[Element]:
    def pick(name: str) -> Optional[_Attr]:
        return section.first(name) or sdp.session_first(name)

    ufrag = pick("ice-ufrag")
    pwd = pick("ice-pwd")
    fingerprints = [a for a in section.attrs if a.name == "fingerprint"] or [
        a for a in sdp.session if a.name == "fingerprint"
    ]
    candidates = [a for a in section.attrs if a.name == "candidate"]
    if ufrag is None and pwd is None and not fingerprints and not candidates:
        return None
    transport = element(
        q("ice_udp", "transport"),
        {
            "ufrag": _require(ufrag, "ICE username fragment") if ufrag is not None else None,
            "pwd": _require(pwd, "ICE password") if pwd is not None else None,
        },
    )
    setup_attr = pick("setup")
    setup: Optional[str] = None
    if setup_attr is not None:
        setup = _require(setup_attr, "DTLS role")
        if setup not in _SETUPS:
            raise SdpError(f"line {setup_attr.lineno}: unknown a=setup value {setup!r}")
    for attr in fingerprints:
        parts = _require(attr, "hash function and fingerprint").split()
        if len(parts) != 2:
            raise SdpError(f"line {attr.lineno}: malformed fingerprint {attr.value!r}")
        sub(transport, q("dtls", "fingerprint"), {"hash": parts[0], "setup": setup}, text=parts[1])
    if include_candidates:
        for attr in candidates:
            try:
                transport.append(candidate_to_element("candidate:" + (attr.value or "")))
            except SdpError as exc:
                raise SdpError(f"line {attr.lineno}: {exc}") from None
        if section.first("end-of-candidates") is not None or sdp.session_first("end-of-candidates") is not None:
            sub(transport, q("ice_udp", "gathering-complete"))
    return transport


def _rejected(section: _Section) -> bool:
    """Port 0 rejects a section, unless ``a=bundle-only`` puts it on the BUNDLE transport (RFC 8843 §6)."""
    return section.port == 0 and section.first("bundle-only") is None


def _transport_rejects(transport: Optional[Element]) -> bool:
    """Whether a content is rejected: no transport, or one without ICE credentials or fingerprint (stanza's
    reading, and XEP-0176's: a transport that cannot run ICE and DTLS negotiates nothing)."""
    if transport is None:
        return True
    return not (transport.get("ufrag") and transport.get("pwd") and find(transport, "dtls", "fingerprint") is not None)


def sdp_to_jingle(sdp: str, role: Role, *, include_candidates: bool = True) -> list[Element]:
    """Translate an SDP offer or answer written by ``role`` into the children of a ``<jingle>``.

    The result is the ``<content>`` elements in m-line order followed by the
    BUNDLE (or other) ``<group>`` elements, the order the official client puts
    on the wire (PROTOCOL §10).  Every content has ``creator="initiator"``
    (the gateway created them all, §4.3); ``senders`` is computed for
    ``role`` and left out when it is ``both``.  Audio payload types always
    carry ``channels`` (``1`` when the rtpmap gave none, as observed in §10).
    ``m=application`` becomes a data-channel content, and what cannot be
    carried at all (``a=ice-lite``, ``a=ice-options``...) is listed in the
    module docstring.

    :param sdp: the SDP text (CRLF or LF line endings).
    :param role: the party that wrote the SDP.
    :param include_candidates: ``False`` drops ``a=candidate`` and
        ``a=end-of-candidates`` lines, for a responder that trickles them in
        ``transport-info`` instead (§4.3, §9).
    :returns: new elements, ready to append to a ``<jingle>`` element.
    :raises SdpError: for SDP that is malformed or cannot be translated.
    :raises ValueError: for an unknown ``role``.
    """
    _check_role(role)
    parsed = _parse_sdp(sdp)
    if not parsed.media:
        raise SdpError("SDP has no m= line, so there is no content to translate")
    session_direction = next((a.name for a in parsed.session if a.name in _DIRECTIONS), None)
    contents: list[Element] = []
    names: set[str] = set()
    for section in parsed.media:
        mid = _mid_of(section)
        if mid in names:
            raise SdpError(f"m-line {section.lineno}: mid {mid!r} is used twice (content names must be unique)")
        names.add(mid)
        direction = next((a.name for a in section.attrs if a.name in _DIRECTIONS), session_direction) or "sendrecv"
        senders = direction_to_senders(role, direction)
        content = element(
            q("jingle", "content"),
            {"creator": "initiator", "name": mid, "senders": None if senders == "both" else senders},
        )
        if section.kind in ("audio", "video"):
            content.append(_rtp_description(parsed, section, mid, role))
        elif section.kind == "application":
            content.append(element("{%s}description" % NS_DATACHANNEL))
        else:
            raise SdpError(f"m-line {section.lineno}: unsupported media type {section.kind!r}")
        if _rejected(section):
            # A rejected section keeps its description (so m-line order and payloads survive) and gets
            # a transport with no ICE credentials, fingerprint or candidates: stanza's shape for it.
            content.append(element(q("ice_udp", "transport")))
        else:
            transport = _transport(parsed, section, include_candidates)
            if transport is not None:
                content.append(transport)
        contents.append(content)

    groups: list[Element] = []
    for attr in parsed.session:
        if attr.name != "group":
            continue
        parts = _require(attr, "semantics and mids").split()
        group = element(q("grouping", "group"), {"semantics": parts[0]})
        for name in parts[1:]:
            sub(group, q("grouping", "content"), {"name": name})
        groups.append(group)
    return contents + groups


# --------------------------------------------------------------------------
# Jingle reading
# --------------------------------------------------------------------------


def _required_attr(el: Element, name: str, where: str) -> str:
    value = el.get(name)
    if value is None or not value.strip():
        raise SdpError(f"{where}: <{split(el.tag)[1]}> has no {name!r} attribute")
    if not _TOKEN_RE.match(value.strip()):
        raise SdpError(f"{where}: <{split(el.tag)[1]}> attribute {name}={value!r} contains whitespace")
    return value.strip()


def _token(value: str, where: str) -> str:
    if not _TOKEN_RE.match(value.strip()):
        raise SdpError(f"{where}: {value!r} is not a single token")
    return value.strip()


def _clean(value: str, where: str) -> str:
    # Values land inside one SDP line: a line break would inject lines.
    if "\r" in value or "\n" in value:
        raise SdpError(f"{where}: value {value!r} contains a line break")
    return value


def _session_id(jingle: Element) -> int:
    # o= wants a numeric session id (RFC 8866 §5.2); derive a stable one from
    # the sid so that the same session-initiate always gives the same SDP.
    digest = hashlib.sha256((jingle.get("sid") or "").encode("utf-8")).digest()
    return int.from_bytes(digest[:7], "big")


def _description_of(content: Element, where: str) -> Element:
    for child in content:
        if split(child.tag)[1] == "description":
            return child
    raise SdpError(f"{where} has no <description>")


def _feedback_lines(parent: Element, pt: str, where: str) -> list[str]:
    lines = []
    for fb in findall(parent, "rtcp_fb", "rtcp-fb"):
        fb_type = _required_attr(fb, "type", where)
        subtype = fb.get("subtype")
        lines.append(f"a=rtcp-fb:{pt} {fb_type}" + (f" {_clean(subtype, where)}" if subtype else ""))
    for trr in findall(parent, "rtcp_fb", "rtcp-fb-trr-int"):
        lines.append(f"a=rtcp-fb:{pt} trr-int {_clean(trr.get('value') or '0', where)}")
    return lines


def _transport_lines(transport: Optional[Element], where: str) -> list[str]:
    if transport is None:
        return []
    lines = []
    ufrag = transport.get("ufrag")
    pwd = transport.get("pwd")
    if ufrag:
        lines.append(f"a=ice-ufrag:{_clean(ufrag, where)}")
    if pwd:
        lines.append(f"a=ice-pwd:{_clean(pwd, where)}")
    fingerprints = findall(transport, "dtls", "fingerprint")
    for fp in fingerprints:
        value = (fp.text or "").strip()
        if not value:
            raise SdpError(f"{where}: <fingerprint> is empty")
        lines.append(f"a=fingerprint:{_required_attr(fp, 'hash', where)} {_clean(value, where)}")
    if fingerprints:
        # SDP has one a=setup per section: take the first fingerprint's (§4.9).
        setup = fingerprints[0].get("setup")
        if setup:
            if setup not in _SETUPS:
                raise SdpError(f"{where}: unknown fingerprint setup {setup!r}")
            lines.append(f"a=setup:{setup}")
    return lines


def _candidate_lines(transport: Optional[Element], where: str) -> list[str]:
    if transport is None:
        return []
    lines = []
    for cand in findall(transport, "ice_udp", "candidate"):
        try:
            lines.append("a=" + element_to_candidate(cand))
        except SdpError as exc:
            raise SdpError(f"{where}: {exc}") from None
    if find(transport, "ice_udp", "gathering-complete") is not None:
        lines.append("a=end-of-candidates")
    return lines


def _rtp_section(content: Element, name: str, desc: Element, transport: Optional[Element], role: str) -> list[str]:
    where = f"content {name!r}"
    media = _required_attr(desc, "media", where)
    payloads = findall(desc, "rtp", "payload-type")
    if not payloads:
        raise SdpError(f"{where} has no <payload-type>")
    pts: list[str] = []
    for pt_el in payloads:
        if pt_el.get("id") is None or not pt_el.get("id", "").strip():
            raise SdpError(f"{where}: <payload-type> without id")
        pts.append(str(_int(pt_el.get("id"), f"{where} payload-type id", 0, 127)))
    if len(set(pts)) != len(pts):
        raise SdpError(f"{where}: a payload-type id is used twice")

    # A content without a usable transport is rejected: port 0, and nothing of ICE or DTLS.
    rejected = _transport_rejects(transport)
    lines = [f"m={media} {'0' if rejected else '9'} UDP/TLS/RTP/SAVPF {' '.join(pts)}"]
    lines.append("c=IN IP4 0.0.0.0")
    for bw in findall(desc, "rtp", "bandwidth"):
        lines.append(f"b={_required_attr(bw, 'type', where)}:{_clean((bw.text or '').strip(), where)}")
    lines.append("a=rtcp:9 IN IP4 0.0.0.0")
    transport_lines = _transport_lines(transport, where)  # checked even when rejected: bad input is an error
    candidate_lines = _candidate_lines(transport, where)
    if rejected:
        transport_lines = candidate_lines = []
    lines += transport_lines
    lines.append(f"a=mid:{name}")

    for ext in findall(desc, "hdrext", "rtp-hdrext"):
        ext_id = str(_int(ext.get("id"), f"{where} rtp-hdrext id", 1, 255))
        uri = _required_attr(ext, "uri", where)
        ext_senders = ext.get("senders", "both")
        try:
            ext_dir = senders_to_direction(role, ext_senders)  # type: ignore[arg-type]
        except ValueError as exc:
            raise SdpError(f"{where}: rtp-hdrext {uri}: {exc}") from None
        lines.append(f"a=extmap:{ext_id}{'' if ext_dir == 'sendrecv' else '/' + ext_dir} {uri}")
    if find(desc, "hdrext", "extmap-allow-mixed") is not None:
        lines.append("a=extmap-allow-mixed")

    lines.append(f"a={_direction(content, role)}")
    for stream in findall(desc, "msid", "stream"):
        msid = _required_attr(stream, "id", where)
        if stream.get("track"):
            msid += " " + _required_attr(stream, "track", where)
        lines.append(f"a=msid:{msid}")
    # The 2017 conference bridge also put <rtcp-mux/> in the transport
    # (PROTOCOL §4.2); accept it there, aiortc refuses a section without it.
    if find(desc, "rtp", "rtcp-mux") is not None or find(transport, "ice_udp", "rtcp-mux") is not None:
        lines.append("a=rtcp-mux")
    if find(desc, "rtp", "rtcp-reduced-size") is not None:
        lines.append("a=rtcp-rsize")

    ptime: Optional[str] = None
    maxptime: Optional[str] = None
    for pt, pt_el in zip(pts, payloads):
        clockrate = pt_el.get("clockrate")
        channels = pt_el.get("channels")
        if pt_el.get("name"):
            codec_name = _required_attr(pt_el, "name", where)
        else:
            # A static payload type may come without a name (RFC 3551), but
            # aiortc only knows codecs that have an rtpmap line.
            static = _STATIC_PAYLOADS.get(media, {}).get(int(pt))
            if static is None:
                raise SdpError(f"{where}: dynamic payload-type {pt} has no name")
            codec_name = static[0]
            clockrate = clockrate or str(static[1])
            channels = channels or (str(static[2]) if static[2] else None)
        if not clockrate:
            raise SdpError(f"{where}: payload-type {pt} ({codec_name}) has no clockrate")
        clock = _int(clockrate, f"{where} payload-type {pt} clockrate", 1, 2**32 - 1)
        rtpmap = f"a=rtpmap:{pt} {codec_name}/{clock}"
        # libwebrtc (and SJJ) leave the default single channel implicit.
        if channels and _int(channels, f"{where} payload-type {pt} channels", 1, 255) != 1:
            rtpmap += f"/{int(channels)}"
        lines.append(rtpmap)
        lines += _feedback_lines(pt_el, pt, where)
        params = []
        for param in findall(pt_el, "rtp", "parameter"):
            key = param.get("name")
            if not key:
                raise SdpError(f"{where}: payload-type {pt} has a <parameter> without name")
            value = param.get("value")
            params.append(_clean(key if value is None else f"{key}={value}", where))
        if params:
            lines.append(f"a=fmtp:{pt} {';'.join(params)}")
        # SDP has one ptime per section: the first payload type's wins.
        ptime = ptime or pt_el.get("ptime")
        maxptime = maxptime or pt_el.get("maxptime")
    lines += _feedback_lines(desc, "*", where)
    # Passed through as text: XEP-0167 says integer, but some SDP writers
    # use fractions ("a=ptime:20.5") and aiortc ignores both lines anyway.
    if ptime:
        lines.append(f"a=ptime:{_token(ptime, where + ' ptime')}")
    if maxptime:
        lines.append(f"a=maxptime:{_token(maxptime, where + ' maxptime')}")

    for group in findall(desc, "ssma", "ssrc-group"):
        semantics = _required_attr(group, "semantics", where)
        ssrcs = [
            str(_int(source.get("ssrc"), f"{where} ssrc-group source", 0, 2**32 - 1))
            for source in findall(group, "ssma", "source")
        ]
        lines.append(f"a=ssrc-group:{semantics} {' '.join(ssrcs)}".rstrip())
    for source in findall(desc, "ssma", "source"):
        ssrc = _int(source.get("ssrc"), f"{where} source ssrc", 0, 2**32 - 1)
        for param in findall(source, "ssma", "parameter"):
            key = _required_attr(param, "name", where)
            value = param.get("value")
            lines.append(_clean(f"a=ssrc:{ssrc} {key}" + (f":{value}" if value is not None else ""), where))
    lines += candidate_lines
    return lines


def _direction(content: Element, role: str) -> str:
    senders = content.get("senders", "both")
    try:
        return senders_to_direction(role, senders)  # type: ignore[arg-type]
    except ValueError:
        raise SdpError(f"content {content.get('name')!r}: unknown senders value {senders!r}") from None


def _datachannel_section(content: Element, name: str, transport: Optional[Element], role: str) -> list[str]:
    # Rejected on purpose (module docstring): the softphone never negotiates
    # data channels and the SCTP port is not carried.
    lines = ["m=application 0 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0"]
    _transport_lines(transport, f"content {name!r}")  # checked, not written: a rejected section has no ICE/DTLS
    lines.append(f"a=mid:{name}")
    lines.append(f"a={_direction(content, role)}")
    return lines


def jingle_to_sdp(jingle: Element, role: Role) -> str:
    """Translate a ``<jingle>`` (session-initiate, session-accept, content-*) written by ``role`` into SDP.

    The result is what aiortc 1.16 accepts in ``setRemoteDescription``:
    ``v=0``/``o=``/``s=``/``t=`` boilerplate, ``a=group`` lines from
    ``<group>``, ``a=msid-semantic:WMS *`` when a content carries a
    ``<stream>`` (aiortc only takes the remote track id from ``a=msid`` with
    it), then one ``m=`` section per content in document order.  Sections are
    ``UDP/TLS/RTP/SAVPF`` on port 9, or port 0 for a content without
    transport; data-channel contents come back rejected (module docstring).
    ``a=ssrc`` lines come from the ``<source>`` elements only: the
    description's ``ssrc`` attribute repeats the first of them.  When
    payload types disagree on ``ptime``/``maxptime``, the first one's wins
    (SDP has one per section).

    :param jingle: a ``{urn:xmpp:jingle:1}jingle`` element.
    :param role: the party that wrote it (the gateway's session-initiate:
        ``"initiator"``; our own session-accept: ``"responder"``).
    :returns: SDP text with CRLF line endings, ending with CRLF.
    :raises SdpError: when there is no content, or a content cannot be
        expressed in SDP (no description, payload-type without id, bad
        candidate, unknown senders...).
    :raises ValueError: for an unknown ``role``.
    """
    _check_role(role)
    if jingle.tag != q("jingle", "jingle"):
        raise SdpError(f"expected a <jingle xmlns={NS['jingle']!r}> element, got {jingle.tag!r}")
    contents = findall(jingle, "jingle", "content")
    if not contents:
        raise SdpError("<jingle> has no <content>, so there is no media to describe")

    lines = ["v=0", f"o=- {_session_id(jingle)} 2 IN IP4 0.0.0.0", "s=-", "t=0 0"]
    for group in findall(jingle, "grouping", "group"):
        semantics = _required_attr(group, "semantics", "<group>")
        names = [_required_attr(c, "name", "<group>") for c in findall(group, "grouping", "content")]
        lines.append(f"a=group:{' '.join([semantics] + names)}")
    if any(findall(find(c, "rtp", "description"), "msid", "stream") for c in contents):
        lines.append("a=msid-semantic:WMS *")

    names_seen: set[str] = set()
    for content in contents:
        name = _required_attr(content, "name", "<content>")
        if name in names_seen:
            raise SdpError(f"content name {name!r} is used twice")
        names_seen.add(name)
        transport = find(content, "ice_udp", "transport")
        if not any(split(c.tag)[1] == "description" for c in content) and transport is not None and any(
                split(c.tag) == (NS_DTLS_SCTP, "sctpmap") for c in transport):
            # stanza 12 writes a data channel as a content with no <description> and an
            # XEP-0343 <sctpmap/> in its transport; it is still a data channel (rejected below).
            lines += _datachannel_section(content, name, transport, role)
            continue
        desc = _description_of(content, f"content {name!r}")
        desc_ns = split(desc.tag)[0]
        if desc_ns == NS["rtp"]:
            lines += _rtp_section(content, name, desc, transport, role)
        elif desc_ns == NS_DATACHANNEL:
            lines += _datachannel_section(content, name, transport, role)
        else:
            raise SdpError(f"content {name!r}: unsupported description namespace {desc_ns!r}")
    return "\r\n".join(lines) + "\r\n"


# --------------------------------------------------------------------------
# candidates and trickle ICE
# --------------------------------------------------------------------------


def candidate_to_element(candidate: str) -> Element:
    """Parse an SDP candidate into an XEP-0176 ``<candidate/>``.

    Accepts ``candidate:F C PROTO PRIO IP PORT typ T [raddr A] [rport R]
    [tcptype X] [generation G] [network-id N] ...`` with or without a leading
    ``a=``.  The protocol is written lower-case (§4.9); ``network-id`` becomes
    ``network``; other extension pairs (``ufrag``, ``network-cost``) are
    ignored.

    :raises SdpError: for a string that is not a well-formed candidate.
    """
    text = candidate.strip()
    if text.startswith("a="):
        text = text[2:]
    if not text.startswith("candidate:"):
        raise SdpError(f"bad candidate {candidate!r}: must start with 'candidate:'")
    tokens = text[len("candidate:") :].split()
    if len(tokens) < 8 or tokens[6] != "typ":
        raise SdpError(
            f"bad candidate {candidate!r}: expected 'foundation component protocol priority ip port typ type'"
        )
    foundation, component, protocol, priority, ip, port, _, cand_type = tokens[:8]
    attrs: dict[str, object] = {
        "component": _int(component, f"bad candidate {candidate!r}: component", 1, 256),
        "foundation": foundation,
        "generation": None,
        "ip": ip,
        "network": None,
        "port": _int(port, f"bad candidate {candidate!r}: port", 0, 65535),
        "priority": _int(priority, f"bad candidate {candidate!r}: priority", 0, 2**32 - 1),
        "protocol": protocol.lower(),
        "type": cand_type,
    }
    extensions = tokens[8:]
    for key, value in zip(extensions[::2], extensions[1::2]):
        name = _CANDIDATE_EXTENSIONS.get(key)
        if name is None:
            continue
        if key in _CANDIDATE_INT_EXTENSIONS:
            attrs[name] = _int(value, f"bad candidate {candidate!r}: {key}", 0, 2**32 - 1)
        else:
            attrs[name] = value
    if len(extensions) % 2 and extensions[-1] in _CANDIDATE_EXTENSIONS:
        raise SdpError(f"bad candidate {candidate!r}: {extensions[-1]!r} has no value")
    return element(q("ice_udp", "candidate"), attrs)


def element_to_candidate(el: Element) -> str:
    """Write an XEP-0176 ``<candidate/>`` as an SDP candidate (without ``a=``).

    Produces ``candidate:F C PROTO PRIO IP PORT typ T [raddr A] [rport R]
    [tcptype X] [generation G] [network-id N]`` with the protocol upper-case,
    as libwebrtc writes it.  The Jingle-only ``id`` is not carried.

    :raises SdpError: when a required attribute is missing or not a number.
    """
    for name in _CANDIDATE_REQUIRED:
        if not (el.get(name) or "").strip():
            raise SdpError(f"bad candidate: <candidate> has no {name!r} attribute")
    where = "bad candidate"
    component = el.get("component", "")
    # XEP-0176 allows the names from RFC 5245 as well as numbers.
    component_number = {"rtp": 1, "rtcp": 2}.get(component.lower()) or _int(component, f"{where}: component", 1, 256)
    parts = [
        _required_attr(el, "foundation", where),
        str(component_number),
        _required_attr(el, "protocol", where).upper(),
        str(_int(el.get("priority"), f"{where}: priority", 0, 2**32 - 1)),
        _required_attr(el, "ip", where),
        str(_int(el.get("port"), f"{where}: port", 0, 65535)),
        "typ",
        _required_attr(el, "type", where),
    ]
    for sdp_key, xml_key in _CANDIDATE_EXTENSIONS.items():
        value = el.get(xml_key)
        if value is None or not value.strip():
            continue
        if sdp_key in _CANDIDATE_INT_EXTENSIONS:
            value = str(_int(value, f"{where}: {xml_key}", 0, 2**32 - 1))
        else:
            value = _required_attr(el, xml_key, where)
        parts += [sdp_key, value]
    return "candidate:" + " ".join(parts)


def split_candidates(sdp: str) -> tuple[str, list[tuple[str, str]]]:
    """Take the candidates out of an SDP, for sending them as ``transport-info``.

    aiortc puts every gathered candidate in its local description (§9), while
    the official client sends ``session-accept`` without candidates and then
    one ``transport-info`` each; this is the first half of that.

    :returns: ``(sdp_without_candidates, [(mid, "candidate:..."), ...])``
        in SDP order.  ``a=end-of-candidates`` lines are removed too.  The mid
        is the enclosing m-section's ``a=mid`` (its media type without one,
        as :func:`sdp_to_jingle` names contents).  Line endings are kept.
    :raises SdpError: for a candidate outside any media section.
    """
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.splitlines()
    kept: list[str] = []
    found: list[tuple[int, str]] = []  # (section index, candidate)
    section_mids: list[str] = []
    section = -1
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("m="):
            section += 1
            section_mids.append(stripped[2:].split(" ", 1)[0])
        elif stripped.startswith("a=mid:") and section >= 0:
            section_mids[section] = stripped[len("a=mid:") :].strip()
        if stripped.startswith("a=candidate:"):
            if section < 0:
                raise SdpError(f"a=candidate outside any media section: {stripped!r}")
            found.append((section, stripped[2:]))
            continue
        if stripped == "a=end-of-candidates":
            continue
        kept.append(line)
    text = newline.join(kept)
    if sdp.endswith(("\r\n", "\n")) and kept:
        text += newline
    return text, [(section_mids[index], cand) for index, cand in found]


def transport_info_content(
    mid: str,
    ufrag: Optional[str],
    candidate: Optional[str] = None,
    *,
    gathering_complete: bool = False,
    creator: str = "initiator",
) -> Element:
    """Build the ``<content>`` of one trickle-ICE ``transport-info`` (PROTOCOL §4.4, §4.5).

    The shape is the one the official client sends (§10): the transport has a
    ``ufrag`` but no ``pwd``, and the candidate carries no
    ``generation``/``id``/``network``.

    :param mid: the content name (the candidate's ``sdpMid``).
    :param ufrag: our ICE username fragment, or ``None`` to leave it out
        (the 2017 stack did for end-of-candidates).
    :param candidate: an SDP candidate (with or without ``a=``), or ``None``.
    :param gathering_complete: add ``<gathering-complete/>`` (end of candidates).
    :param creator: the content creator; ``"initiator"`` is spec-correct (§4.4).
    :raises SdpError: for a malformed candidate.
    :raises ValueError: when neither a candidate nor ``gathering_complete`` is given.
    """
    if candidate is None and not gathering_complete:
        raise ValueError("transport_info_content needs a candidate or gathering_complete=True")
    content = element(q("jingle", "content"), {"creator": creator, "name": mid})
    transport = sub(content, q("ice_udp", "transport"), {"ufrag": ufrag})
    if candidate is not None:
        cand = candidate_to_element(candidate)
        for name in ("generation", "id", "network"):
            cand.attrib.pop(name, None)
        transport.append(cand)
    if gathering_complete:
        sub(transport, q("ice_udp", "gathering-complete"))
    return content


def parse_transport_info(jingle: Element) -> list[tuple[str, Optional[str], Optional[str]]]:
    """Read the candidates of a ``transport-info`` ``<jingle>``.

    :returns: ``[(content name, ufrag or None, "candidate:..." or None), ...]``
        in document order; ``None`` in the third place stands for
        ``<gathering-complete/>`` (end of candidates for that content).  A
        transport without either contributes nothing.
    :raises SdpError: for a content without name or ice-udp transport, or a
        malformed candidate.
    """
    result: list[tuple[str, Optional[str], Optional[str]]] = []
    contents = findall(jingle, "jingle", "content")
    if not contents:
        raise SdpError("transport-info has no <content>")
    for content in contents:
        name = _required_attr(content, "name", "transport-info <content>")
        transport = find(content, "ice_udp", "transport")
        if transport is None:
            raise SdpError(f"transport-info content {name!r} has no ice-udp <transport>")
        ufrag = transport.get("ufrag") or None
        for cand in findall(transport, "ice_udp", "candidate"):
            try:
                result.append((name, ufrag, element_to_candidate(cand)))
            except SdpError as exc:
                raise SdpError(f"transport-info content {name!r}: {exc}") from None
        if find(transport, "ice_udp", "gathering-complete") is not None:
            result.append((name, ufrag, None))
    return result


@dataclass(frozen=True)
class TransportCredentials:
    """The ICE credentials (and DTLS fingerprints, when given) a ``transport-info`` carries."""

    ufrag: str
    pwd: str
    #: ``(hash, fingerprint, setup or None)`` triples
    fingerprints: tuple[tuple[str, str, Optional[str]], ...] = ()


def transport_credentials(jingle: Element) -> Optional[TransportCredentials]:
    """The new ICE credentials of a ``transport-info`` that restarts ICE (XEP-0176: a transport with a
    ``ufrag`` *and* a ``pwd``); ``None`` for plain trickle, whose transports carry a ufrag at most.

    :raises SdpError: when contents disagree on the credentials, or a fingerprint is empty.
    """
    found: Optional[TransportCredentials] = None
    for content in findall(jingle, "jingle", "content"):
        transport = find(content, "ice_udp", "transport")
        if transport is None or not transport.get("ufrag") or not transport.get("pwd"):
            continue
        where = f"transport-info content {content.get('name')!r}"
        fingerprints = []
        for fp in findall(transport, "dtls", "fingerprint"):
            value = (fp.text or "").strip()
            if not value:
                raise SdpError(f"{where}: <fingerprint> is empty")
            setup = fp.get("setup")
            if setup is not None and setup not in _SETUPS:
                raise SdpError(f"{where}: unknown fingerprint setup {setup!r}")
            fingerprints.append((_required_attr(fp, "hash", where), _clean(value, where), setup))
        creds = TransportCredentials(_clean(transport.get("ufrag", ""), where), _clean(transport.get("pwd", ""), where),
                                     tuple(fingerprints))
        if found is not None and (found.ufrag, found.pwd) != (creds.ufrag, creds.pwd):
            raise SdpError("transport-info contents carry different ICE credentials (BUNDLE has one transport)")
        found = found or creds
    return found


def with_credentials(sdp: str, creds: TransportCredentials) -> str:
    """``sdp`` with every section's ICE credentials (and fingerprints and setup, when ``creds`` has them)
    replaced by ``creds``, and its candidates removed: the description after an ICE restart."""
    out = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line or line.startswith(("a=candidate:", "a=end-of-candidates")):
            continue
        if line.startswith("a=ice-ufrag:"):
            line = f"a=ice-ufrag:{creds.ufrag}"
        elif line.startswith("a=ice-pwd:"):
            line = f"a=ice-pwd:{creds.pwd}"
        elif creds.fingerprints and line.startswith("a=fingerprint:"):
            if out and out[-1].startswith("a=fingerprint:"):
                continue
            line = "\n".join(f"a=fingerprint:{h} {v}" for h, v, _ in creds.fingerprints)
        elif creds.fingerprints and creds.fingerprints[0][2] and line.startswith("a=setup:"):
            line = f"a=setup:{creds.fingerprints[0][2]}"
        out.extend(line.split("\n"))
    return "\r\n".join(out) + "\r\n"
