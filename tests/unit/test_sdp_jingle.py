"""Table tests for the pure SDP <-> Jingle translator (purecloud_webrtc.jingle.sdp).

Every SDP in the table goes SDP -> Jingle -> XML text -> parsed XML -> SDP and
is compared with the original through an independent normaliser
(:func:`semantic`), in the manner of aiortc's own ``test_sdp.py``.  The
normaliser encodes, and :data:`DELIBERATE_LOSSES` lists, everything the
translation drops on purpose.  The table holds the fixture files under
``tests/data/sdp/`` plus an offer and an answer made by aiortc at test time.

NETWORK RULE: nothing here sends a packet anywhere but 127.0.0.1.  Fixture
SDPs use documentation addresses, but they are only ever text: no fixture is
given to a peer connection with its candidates, and only the aiortc-generated
SDPs (127.0.0.1 host candidates, restricted with
``restrict_host_addresses``) are ever connected.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Optional

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import SessionDescription, candidate_from_sdp
from hypothesis import given, settings
from hypothesis import strategies as st

from sdp_semantic import DELIBERATE_LOSSES, attrs, first, norm_candidate, semantic, values

from purecloud_webrtc import _xml
from purecloud_webrtc._negotiation import plan_offer
from purecloud_webrtc._ice import release_host_addresses, restrict_host_addresses
from purecloud_webrtc._xml import NS, element, find, findall, q
from purecloud_webrtc.jingle.sdp import (
    NS_DATACHANNEL,
    SdpError,
    candidate_to_element,
    direction_to_senders,
    element_to_candidate,
    jingle_to_sdp,
    parse_transport_info,
    sdp_to_jingle,
    senders_to_direction,
    split_candidates,
    transport_info_content,
)

pytestmark = pytest.mark.timeout(10)

DATA = Path(__file__).resolve().parents[1] / "data" / "sdp"

# (fixture, role of the party that wrote it, SDP type)
FIXTURES: list[tuple[str, str, str]] = [
    ("chrome_offer.sdp", "initiator", "offer"),
    ("chrome_answer.sdp", "responder", "answer"),
    ("chrome_answer_recvonly.sdp", "responder", "answer"),
    ("chrome_offer_datachannel.sdp", "initiator", "offer"),
    ("firefox_offer.sdp", "initiator", "offer"),
    ("firefox_answer_sendonly.sdp", "responder", "answer"),
    ("safari_offer_audio_video.sdp", "initiator", "offer"),
    ("gateway_offer.sdp", "initiator", "offer"),
    ("gateway_offer_sendonly_ptime.sdp", "initiator", "offer"),
    ("gateway_offer_inactive_feedback.sdp", "initiator", "offer"),
    ("recvonly_offer_multi_fingerprint.sdp", "initiator", "offer"),
    ("ice_lite_gateway_offer.sdp", "initiator", "offer"),
    ("static_payloads_no_rtpmap.sdp", "initiator", "offer"),
    ("legacy_planb_ssrc_params.sdp", "initiator", "offer"),
]
GENERATED: list[tuple[str, str, str]] = [
    ("aiortc:offer", "initiator", "offer"),
    ("aiortc:answer", "responder", "answer"),
]
TABLE = FIXTURES + GENERATED

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def load(name: str) -> str:
    # Fixture files are stored with LF for readable diffs; SDP is CRLF.
    return DATA.joinpath(name).read_text().replace("\r\n", "\n").replace("\n", "\r\n")


def jingle_of(children: list[_xml.Element], action: str = "session-initiate") -> _xml.Element:
    return element(q("jingle", "jingle"), {"action": action, "sid": "3b1e9c52-6f0d-4a8e-b7c4-1d2e3f405162"}, *children)


def roundtrip(sdp: str, role: str) -> tuple[str, str]:
    """SDP -> Jingle -> XML text -> parsed XML -> SDP; returns (sdp, xml text)."""
    text = _xml.to_string(jingle_of(sdp_to_jingle(sdp, role)))  # type: ignore[arg-type]
    return jingle_to_sdp(_xml.parse(text), role), text  # type: ignore[arg-type]


async def _aiortc_offer_answer() -> tuple[str, str]:
    loop = asyncio.get_running_loop()
    # Before any peer connection exists: host candidates on 127.0.0.1 only.
    restrict_host_addresses(loop, ["127.0.0.1"])
    pc1 = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc2 = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc1.addTransceiver("audio")
        await pc1.setLocalDescription(await pc1.createOffer())
        await pc2.setRemoteDescription(pc1.localDescription)
        pc2.addTrack(AudioStreamTrack())
        await pc2.setLocalDescription(await pc2.createAnswer())
        return pc1.localDescription.sdp, pc2.localDescription.sdp
    finally:
        await pc1.close()
        await pc2.close()
        release_host_addresses(loop)


@pytest.fixture(scope="module")
def aiortc_sdps() -> dict[str, str]:
    offer, answer = asyncio.run(_aiortc_offer_answer())
    return {"aiortc:offer": offer, "aiortc:answer": answer}


def table_sdp(name: str, aiortc_sdps: dict[str, str]) -> str:
    return aiortc_sdps[name] if name.startswith("aiortc:") else load(name)


# --------------------------------------------------------------------------
# the round-trip table
# --------------------------------------------------------------------------


def test_table_is_big_enough() -> None:
    assert len(TABLE) >= 12
    assert sorted(p.name for p in DATA.glob("*.sdp")) == sorted(name for name, _, _ in FIXTURES)


@pytest.mark.parametrize("name,role,kind", TABLE, ids=[row[0] for row in TABLE])
def test_roundtrip(name: str, role: str, kind: str, aiortc_sdps: dict[str, str]) -> None:
    original = table_sdp(name, aiortc_sdps)
    out, _ = roundtrip(original, role)
    assert out.endswith("\r\n") and "\n" not in out.replace("\r\n", "")
    assert out.startswith("v=0\r\no=- ")
    assert semantic(out) == semantic(original)
    # aiortc's own parser must read what we write ...
    SessionDescription.parse(out)
    # ... and the translation must be stable: a second trip changes nothing.
    assert roundtrip(out, role)[0] == out


OFFERS = [row for row in TABLE if row[2] == "offer"]


@pytest.mark.parametrize("name,role,kind", OFFERS, ids=[row[0] for row in OFFERS])
def test_aiortc_accepts_translated_offer(name: str, role: str, kind: str, aiortc_sdps: dict[str, str]) -> None:
    out, _ = roundtrip(table_sdp(name, aiortc_sdps), role)
    # Candidates are taken out: fixture addresses are documentation ranges
    # and must never be contacted.  setRemoteDescription alone sends nothing.
    remote, _ = split_candidates(out)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        restrict_host_addresses(loop, ["127.0.0.1"])
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            # As the SDK gives it: only the section it takes (aiortc refuses a rejected section without ICE).
            prepared, _ = plan_offer(remote)
            await pc.setRemoteDescription(RTCSessionDescription(prepared, "offer"))
            assert pc.signalingState == "have-remote-offer"
        finally:
            await pc.close()
            release_host_addresses(loop)

    asyncio.run(run())


def _features(jingle: _xml.Element) -> set[str]:
    found: set[str] = set()
    if findall(jingle, "grouping", "group"):
        found.add("group")
    for content in findall(jingle, "jingle", "content"):
        found.add("content")
        found.add("senders=" + content.get("senders", "both(omitted)"))
        if find(content, "rtp", "description") is None and content.find("{%s}description" % NS_DATACHANNEL) is not None:
            found.add("datachannel")
        desc = find(content, "rtp", "description")
        transport = find(content, "ice_udp", "transport")
        if desc is not None:
            if desc.get("ssrc"):
                found.add("description ssrc")
            for pt in findall(desc, "rtp", "payload-type"):
                found.add("payload-type")
                for attr in ("channels", "ptime", "maxptime"):
                    if pt.get(attr):
                        found.add(attr)
                if pt.get("channels") == "1":
                    found.add("channels=1")
                for param in findall(pt, "rtp", "parameter"):
                    found.add("parameter" if param.get("value") is not None else "value-less parameter")
                if findall(pt, "rtcp_fb", "rtcp-fb"):
                    found.add("rtcp-fb")
                if any(fb.get("subtype") for fb in findall(pt, "rtcp_fb", "rtcp-fb")):
                    found.add("rtcp-fb subtype")
                if findall(pt, "rtcp_fb", "rtcp-fb-trr-int"):
                    found.add("trr-int")
            if findall(desc, "rtcp_fb", "rtcp-fb"):
                found.add("description rtcp-fb (*)")
            if findall(desc, "rtcp_fb", "rtcp-fb-trr-int"):
                found.add("description trr-int (*)")
            for ext in findall(desc, "hdrext", "rtp-hdrext"):
                found.add("rtp-hdrext")
                if ext.get("senders"):
                    found.add("rtp-hdrext senders=" + ext.get("senders", ""))
            for tag, feature in (
                ("rtcp-mux", "rtcp-mux"),
                ("rtcp-reduced-size", "rtcp-rsize"),
                ("bandwidth", "bandwidth"),
            ):
                if find(desc, "rtp", tag) is not None:
                    found.add(feature)
            if find(desc, "hdrext", "extmap-allow-mixed") is not None:
                found.add("extmap-allow-mixed")
            for source in findall(desc, "ssma", "source"):
                for param in findall(source, "ssma", "parameter"):
                    found.add("source " + param.get("name", ""))
            if findall(desc, "ssma", "ssrc-group"):
                found.add("ssrc-group")
            if findall(desc, "msid", "stream"):
                found.add("msid stream")
        if transport is not None:
            if transport.get("ufrag") and transport.get("pwd"):
                found.add("ice-ufrag/pwd")
            fps = findall(transport, "dtls", "fingerprint")
            if fps:
                found.add("fingerprint+setup" if fps[0].get("setup") else "fingerprint")
            if len(fps) > 1:
                found.add("several fingerprints")
            for cand in findall(transport, "ice_udp", "candidate"):
                found.add("candidate")
                found.update("candidate " + k for k in cand.attrib)
            if find(transport, "ice_udp", "gathering-complete") is not None:
                found.add("gathering-complete")
    return found


def test_every_mapping_row_is_covered(aiortc_sdps: dict[str, str]) -> None:
    found: set[str] = set()
    for name, role, _ in TABLE:
        found |= _features(_xml.parse(roundtrip(table_sdp(name, aiortc_sdps), role)[1]))
    required = {
        "group", "content", "datachannel", "payload-type", "channels", "channels=1", "parameter",
        "value-less parameter", "ptime", "maxptime", "rtcp-fb", "rtcp-fb subtype", "trr-int",
        "description rtcp-fb (*)", "description trr-int (*)", "rtp-hdrext", "rtp-hdrext senders=initiator",
        "rtp-hdrext senders=responder", "rtp-hdrext senders=none", "extmap-allow-mixed", "rtcp-mux", "rtcp-rsize",
        "bandwidth", "description ssrc", "source cname", "source msid", "source mslabel", "source label",
        "ssrc-group", "msid stream", "senders=both(omitted)", "senders=initiator", "senders=responder",
        "senders=none", "ice-ufrag/pwd", "fingerprint+setup", "several fingerprints", "candidate",
        "candidate component", "candidate foundation", "candidate generation", "candidate ip",
        "candidate network", "candidate port", "candidate priority", "candidate protocol", "candidate type",
        "candidate rel-addr", "candidate rel-port", "candidate tcptype", "gathering-complete",
    }  # fmt: skip
    # The candidate 'id' has no SDP form; it is covered by test_candidate_element_with_id.
    assert required - found == set()


def test_deliberate_losses_happen(aiortc_sdps: dict[str, str]) -> None:
    lite, _ = roundtrip(load("ice_lite_gateway_offer.sdp"), "initiator")
    assert "a=ice-lite" not in lite and "a=ice-options" not in lite
    assert "m=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\n" in lite and "a=rtcp:9 IN IP4 0.0.0.0" in lite
    assert "a=msid-semantic:WMS *" in lite  # regenerated, not 'WMS gwstream'

    legacy, _ = roundtrip(load("legacy_planb_ssrc_params.sdp"), "initiator")
    assert "m=audio 9 UDP/TLS/RTP/SAVPF " in legacy  # was 'm=audio 1 RTP/SAVPF'

    firefox, _ = roundtrip(load("firefox_offer.sdp"), "initiator")
    assert "a=rtpmap:9 G722/8000\r\n" in firefox  # was G722/8000/1
    assert "THIS_IS_SDPARTA" not in firefox

    chrome, _ = roundtrip(load("chrome_offer.sdp"), "initiator")
    assert "network-cost" not in chrome and " ufrag " not in chrome

    inactive, _ = roundtrip(load("gateway_offer_inactive_feedback.sdp"), "initiator")
    assert "a=extmap:6 urn:ietf:params:rtp-hdrext:sdes:mid" in inactive  # '/sendrecv' dropped
    assert "a=fmtp:111 minptime=10;useinbandfec=1;stereo=0" in inactive

    datachannel, _ = roundtrip(load("chrome_offer_datachannel.sdp"), "initiator")
    assert "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n" in datachannel
    assert "a=sctp-port" not in datachannel and "a=max-message-size" not in datachannel
    assert len(DELIBERATE_LOSSES) >= 10


# --------------------------------------------------------------------------
# exact wire shapes (PROTOCOL §10, Appendix A)
# --------------------------------------------------------------------------


def test_gateway_offer_exact_jingle_shape() -> None:
    text = _xml.to_string(jingle_of(sdp_to_jingle(load("gateway_offer.sdp"), "initiator")))
    fp = "4F:0A:B3:71:C9:2E:58:D6:0F:A4:13:E7:9B:62:C8:35:D1:4A:70:BF:26:E9:83:5C:1F:A7:64:0D:BE:92:38:9C"
    expected = (
        '<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="3b1e9c52-6f0d-4a8e-b7c4-1d2e3f405162">'
        '<content creator="initiator" name="audio">'
        '<description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio" ssrc="1193046">'
        '<payload-type id="111" name="opus" clockrate="48000" channels="2">'
        '<parameter name="minptime" value="10"/><parameter name="useinbandfec" value="1"/>'
        '<rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="transport-cc"/>'
        "</payload-type>"
        '<payload-type id="0" name="PCMU" clockrate="8000" channels="1"/>'
        '<payload-type id="8" name="PCMA" clockrate="8000" channels="1"/>'
        '<payload-type id="101" name="telephone-event" clockrate="8000" channels="1">'
        '<parameter name="events" value="0-15"/></payload-type>'
        '<rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="1" uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"/>'
        "<rtcp-mux/>"
        '<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1193046"><parameter name="cname" value="gw-mediasrv-12"/></source>'
        "</description>"
        '<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="Zq4t" pwd="m2Rk8vH0xLpQ7sYb3nT6wE1c">'
        f'<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">{fp}</fingerprint>'
        '<candidate component="1" foundation="1" generation="0" ip="198.51.100.20" port="16384" '
        'priority="2130706431" protocol="udp" type="host"/>'
        "</transport></content>"
        '<group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="audio"/></group>'
        "</jingle>"
    )
    assert text == expected


def test_session_accept_wire_details() -> None:
    children = sdp_to_jingle(load("chrome_answer.sdp"), "responder", include_candidates=False)
    # <group> comes after the contents.
    assert [_xml.split(c.tag)[1] for c in children] == ["content", "group"]
    content = children[0]
    # A sendrecv session-accept has no senders attribute.
    assert "senders" not in content.attrib
    assert content.get("creator") == "initiator"
    desc = find(content, "rtp", "description")
    pts = {pt.get("id"): pt for pt in findall(desc, "rtp", "payload-type")}
    assert pts["0"].get("channels") == "1" and pts["8"].get("channels") == "1"
    # Value-less fmtp entry: <parameter name="0-15"/> with no value attribute.
    (param,) = findall(pts["101"], "rtp", "parameter")
    assert param.attrib == {"name": "0-15"}
    transport = find(content, "ice_udp", "transport")
    assert findall(transport, "ice_udp", "candidate") == []
    assert transport is not None and find(transport, "ice_udp", "gathering-complete") is None
    assert transport.get("ufrag") == "Hk2P" and transport.get("pwd")
    (fp,) = findall(transport, "dtls", "fingerprint")
    assert fp.get("setup") == "active" and fp.get("hash") == "sha-256"
    (stream,) = findall(desc, "msid", "stream")
    assert stream.attrib == {"id": "1d2c3b4a-0f9e-4d8c-b7a6-5f4e3d2c1b0a", "track": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}


def test_red_value_less_parameter_and_recvonly_accept() -> None:
    text = _xml.to_string(jingle_of(sdp_to_jingle(load("chrome_offer.sdp"), "initiator")))
    assert '<payload-type id="63" name="red" clockrate="48000" channels="2"><parameter name="111/111"/></payload-type>' in text
    assert '<payload-type id="126" name="telephone-event" clockrate="8000" channels="1"/>' in text
    (content, _group) = sdp_to_jingle(load("chrome_answer_recvonly.sdp"), "responder", include_candidates=False)
    assert content.get("senders") == "initiator"


def test_protocol_case() -> None:
    (content, _group) = sdp_to_jingle(load("firefox_offer.sdp"), "initiator")
    protocols = [c.get("protocol") for c in findall(find(content, "ice_udp", "transport"), "ice_udp", "candidate")]
    assert protocols == ["udp", "tcp", "udp"]  # Firefox writes UDP/TCP
    out = jingle_to_sdp(jingle_of([content]), "initiator")
    assert "a=candidate:0 1 UDP 2122252543 198.51.100.5 52817 typ host\r\n" in out
    assert "a=candidate:2 1 TCP 2105524479 198.51.100.5 9 typ host tcptype active\r\n" in out


def test_a5_session_initiate_to_sdp() -> None:
    # Appendix A.5 verbatim in shape (plus an id on the candidate, which SDP cannot carry).
    xml = (
        '<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="3b1e9c52" initiator="gw@example.com/x">'
        '<group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE"><content name="audio"/></group>'
        '<content creator="initiator" name="audio" senders="both">'
        '<description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio" ssrc="1193046">'
        '<payload-type id="111" name="opus" clockrate="48000" channels="2">'
        '<parameter name="minptime" value="10"/><parameter name="useinbandfec" value="1"/>'
        '<rtcp-fb xmlns="urn:xmpp:jingle:apps:rtp:rtcp-fb:0" type="transport-cc"/></payload-type>'
        '<payload-type id="0" name="PCMU" clockrate="8000"/><payload-type id="8" name="PCMA" clockrate="8000"/>'
        '<payload-type id="101" name="telephone-event" clockrate="8000"><parameter name="events" value="0-15"/></payload-type>'
        '<rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="1" uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"/>'
        "<rtcp-mux/>"
        '<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1193046"><parameter name="cname" value="gw-mediasrv-12"/></source>'
        "</description>"
        '<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="Zq4t" pwd="m2Rk8vH0xLpQ7sYb3nT6wE1c">'
        '<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">4F:0A:9C</fingerprint>'
        '<candidate component="1" foundation="1" generation="0" id="k1" ip="198.51.100.20" port="16384" '
        'priority="2130706431" protocol="udp" type="host"/>'
        "</transport></content></jingle>"
    )
    sdp = jingle_to_sdp(_xml.parse(xml), "initiator")
    lines = sdp.split("\r\n")
    assert lines[:5] == ["v=0", lines[1], "s=-", "t=0 0", "a=group:BUNDLE audio"]
    assert re.fullmatch(r"o=- \d+ 2 IN IP4 0\.0\.0\.0", lines[1])
    # The same sid always gives the same o= line (pure function).
    assert jingle_to_sdp(_xml.parse(xml), "initiator") == sdp
    for line in (
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 101",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtcp-fb:111 transport-cc",
        "a=rtpmap:0 PCMU/8000",
        "a=fmtp:101 events=0-15",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=ssrc:1193046 cname:gw-mediasrv-12",
        "a=mid:audio",
        "a=ice-ufrag:Zq4t",
        "a=ice-pwd:m2Rk8vH0xLpQ7sYb3nT6wE1c",
        "a=fingerprint:sha-256 4F:0A:9C",
        "a=setup:actpass",
        "a=candidate:1 1 UDP 2130706431 198.51.100.20 16384 typ host generation 0",
    ):
        assert line in lines, line
    assert "a=msid-semantic:WMS *" not in lines  # no <stream>
    assert "a=end-of-candidates" not in lines
    assert sdp.endswith("\r\n")
    SessionDescription.parse(sdp)


def test_content_without_transport_gets_port_zero() -> None:
    content = element(
        q("jingle", "content"),
        {"creator": "initiator", "name": "audio"},
        element(q("rtp", "description"), {"media": "audio"}, element(q("rtp", "payload-type"), {"id": "0"})),
    )
    sdp = jingle_to_sdp(jingle_of([content]), "initiator")
    assert "m=audio 0 UDP/TLS/RTP/SAVPF 0\r\n" in sdp
    assert "a=rtpmap:0 PCMU/8000\r\n" in sdp  # static payload type filled in for aiortc


def test_ptime_per_payload_type() -> None:
    # XEP-0167 has ptime per payload type, SDP per section: the first wins.
    desc = element(
        q("rtp", "description"),
        {"media": "audio"},
        element(q("rtp", "payload-type"), {"id": "0", "ptime": "30", "maxptime": "60"}),
        element(q("rtp", "payload-type"), {"id": "8", "ptime": "20"}),
    )
    content = element(q("jingle", "content"), {"name": "audio"}, desc)
    sdp = jingle_to_sdp(jingle_of([content]), "initiator")
    assert sdp.count("a=ptime:") == 1 and "a=ptime:30\r\n" in sdp and "a=maxptime:60\r\n" in sdp
    (back,) = sdp_to_jingle(sdp, "initiator")
    pts = findall(find(back, "rtp", "description"), "rtp", "payload-type")
    assert [(pt.get("ptime"), pt.get("maxptime")) for pt in pts] == [("30", "60"), ("30", "60")]


def test_rtcp_mux_in_transport_is_accepted() -> None:
    # The 2017 conference bridge put <rtcp-mux/> in the transport too (PROTOCOL §4.2).
    content = element(
        q("jingle", "content"),
        {"creator": "initiator", "name": "audio"},
        element(q("rtp", "description"), {"media": "audio"}, element(q("rtp", "payload-type"), {"id": "8"})),
        element(q("ice_udp", "transport"), {"ufrag": "u", "pwd": "p" * 22}, element(q("ice_udp", "rtcp-mux"))),
    )
    assert "a=rtcp-mux\r\n" in jingle_to_sdp(jingle_of([content]), "initiator")


# --------------------------------------------------------------------------
# senders <-> direction, both roles
# --------------------------------------------------------------------------

SENDERS_TABLE = [
    ("initiator", "sendrecv", None),
    ("initiator", "sendonly", "initiator"),
    ("initiator", "recvonly", "responder"),
    ("initiator", "inactive", "none"),
    ("responder", "sendrecv", None),
    ("responder", "sendonly", "responder"),
    ("responder", "recvonly", "initiator"),
    ("responder", "inactive", "none"),
]


@pytest.mark.parametrize("role,direction,senders", SENDERS_TABLE)
def test_senders_direction_table(role: str, direction: str, senders: Optional[str]) -> None:
    sdp = load("gateway_offer.sdp").replace("a=sendrecv", "a=" + direction)
    sdp = sdp.replace("a=extmap:1 ", f"a=extmap:1/{direction} ")
    (content, _group) = sdp_to_jingle(sdp, role)  # type: ignore[arg-type]
    assert content.get("senders") == senders
    (ext,) = findall(find(content, "rtp", "description"), "hdrext", "rtp-hdrext")
    assert ext.get("senders") == senders  # extmap direction maps like content senders
    out = jingle_to_sdp(jingle_of([content]), role)  # type: ignore[arg-type]
    assert f"a={direction}\r\n" in out
    assert ("a=extmap:1 " if direction == "sendrecv" else f"a=extmap:1/{direction} ") in out
    assert direction_to_senders(role, direction) == (senders or "both")  # type: ignore[arg-type]
    assert senders_to_direction(role, senders or "both") == direction  # type: ignore[arg-type]


def test_bad_role_and_direction() -> None:
    with pytest.raises(ValueError, match="role"):
        sdp_to_jingle(load("gateway_offer.sdp"), "server")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="direction"):
        direction_to_senders("initiator", "both")
    with pytest.raises(ValueError, match="senders"):
        senders_to_direction("responder", "sendrecv")


def test_session_level_direction_applies_to_media() -> None:
    (content,) = sdp_to_jingle(load("gateway_offer_inactive_feedback.sdp"), "initiator")
    assert content.get("senders") == "none"


# --------------------------------------------------------------------------
# candidates
# --------------------------------------------------------------------------

CANDIDATES = [
    (
        "candidate:1 1 udp 2130706431 198.51.100.20 16384 typ host",
        {"component": "1", "foundation": "1", "ip": "198.51.100.20", "port": "16384",
         "priority": "2130706431", "protocol": "udp", "type": "host"},
        "candidate:1 1 UDP 2130706431 198.51.100.20 16384 typ host",
    ),
    (
        "a=candidate:2731524390 1 udp 1686052607 203.0.113.7 51234 typ srflx raddr 10.1.2.3 rport 51234 "
        "generation 0 ufrag Hk2P network-id 1 network-cost 10",
        {"component": "1", "foundation": "2731524390", "generation": "0", "ip": "203.0.113.7", "network": "1",
         "port": "51234", "priority": "1686052607", "protocol": "udp", "type": "srflx", "rel-addr": "10.1.2.3",
         "rel-port": "51234"},
        "candidate:2731524390 1 UDP 1686052607 203.0.113.7 51234 typ srflx raddr 10.1.2.3 rport 51234 "
        "generation 0 network-id 1",
    ),
    (
        "candidate:4233069003 1 TCP 1518280447 192.0.2.10 9 typ host tcptype active generation 0",
        {"component": "1", "foundation": "4233069003", "generation": "0", "ip": "192.0.2.10", "port": "9",
         "priority": "1518280447", "protocol": "tcp", "type": "host", "tcptype": "active"},
        "candidate:4233069003 1 TCP 1518280447 192.0.2.10 9 typ host tcptype active generation 0",
    ),
    (
        "candidate:1459375121 2 tcp 25108223 198.51.100.40 443 typ relay raddr 203.0.113.7 rport 54401 tcptype passive",
        {"component": "2", "foundation": "1459375121", "ip": "198.51.100.40", "port": "443",
         "priority": "25108223", "protocol": "tcp", "type": "relay", "rel-addr": "203.0.113.7",
         "rel-port": "54401", "tcptype": "passive"},
        "candidate:1459375121 2 TCP 25108223 198.51.100.40 443 typ relay raddr 203.0.113.7 rport 54401 tcptype passive",
    ),
    (
        "candidate:9 1 udp 2113939711 2001:db8::7 62002 typ host some-future-key value",
        {"component": "1", "foundation": "9", "ip": "2001:db8::7", "port": "62002", "priority": "2113939711",
         "protocol": "udp", "type": "host"},
        "candidate:9 1 UDP 2113939711 2001:db8::7 62002 typ host",
    ),
]  # fmt: skip


@pytest.mark.parametrize("text,attrs,back", CANDIDATES)
def test_candidate_roundtrip(text: str, attrs: dict, back: str) -> None:
    el = candidate_to_element(text)
    assert el.tag == q("ice_udp", "candidate")
    assert el.attrib == attrs
    assert element_to_candidate(el) == back
    # Via XML text too.
    assert element_to_candidate(_xml.parse(_xml.to_string(el))) == back


def test_candidate_element_with_id_and_named_component() -> None:
    # XEP-0176 'id' has no SDP form; RFC 5245 component names are accepted.
    el = element(
        q("ice_udp", "candidate"),
        component="rtp", foundation="1", generation="0", id="k1", ip="198.51.100.20", network="0",
        port="16384", priority="2130706431", protocol="udp", type="host",
    )  # fmt: skip
    assert element_to_candidate(el) == "candidate:1 1 UDP 2130706431 198.51.100.20 16384 typ host generation 0 network-id 0"


@settings(max_examples=60, deadline=None)
@given(
    foundation=st.from_regex(r"[A-Za-z0-9+/]{1,32}", fullmatch=True),
    component=st.integers(1, 2),
    protocol=st.sampled_from(["udp", "tcp", "UDP", "TCP"]),
    priority=st.integers(0, 2**32 - 1),
    port=st.integers(0, 65535),
    ctype=st.sampled_from(["host", "srflx", "prflx", "relay"]),
    related=st.one_of(st.none(), st.tuples(st.sampled_from(["192.0.2.1", "2001:db8::1"]), st.integers(0, 65535))),
    tcptype=st.one_of(st.none(), st.sampled_from(["active", "passive", "so"])),
    generation=st.one_of(st.none(), st.integers(0, 10)),
)
def test_candidate_property(
    foundation: str, component: int, protocol: str, priority: int, port: int, ctype: str,
    related: Optional[tuple[str, int]], tcptype: Optional[str], generation: Optional[int],
) -> None:  # fmt: skip
    text = f"candidate:{foundation} {component} {protocol} {priority} 198.51.100.9 {port} typ {ctype}"
    if related:
        text += f" raddr {related[0]} rport {related[1]}"
    if tcptype:
        text += f" tcptype {tcptype}"
    if generation is not None:
        text += f" generation {generation}"
    back = element_to_candidate(candidate_to_element(text))
    assert norm_candidate(back) == norm_candidate(text)
    assert back.split()[2] == protocol.upper()
    # aiortc reads what we write.
    parsed = candidate_from_sdp(back.split(":", 1)[1])
    assert (parsed.port, parsed.priority, parsed.type) == (port, priority, ctype)


# --------------------------------------------------------------------------
# split_candidates, transport-info
# --------------------------------------------------------------------------


def test_split_candidates_chrome() -> None:
    sdp = load("chrome_offer.sdp")
    rest, found = split_candidates(sdp)
    assert [mid for mid, _ in found] == ["0"] * 5
    assert found[0][1] == (
        "candidate:2999745851 1 udp 2122260223 192.0.2.10 54400 typ host generation 0 network-id 1 network-cost 10"
    )
    assert "a=candidate" not in rest and "a=end-of-candidates" not in rest
    assert rest.endswith("\r\n") and "\n" not in rest.replace("\r\n", "")
    assert len(rest.split("\r\n")) == len(sdp.split("\r\n")) - 5
    # Everything else is untouched.
    assert semantic(rest) == {**semantic(sdp), "media": [{**semantic(sdp)["media"][0], "candidates": []}]}


def test_split_candidates_mid_after_candidates_and_several_sections() -> None:
    sdp = (
        "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=candidate:1 1 udp 1 127.0.0.1 1000 typ host\r\na=mid:a\r\n"
        "a=end-of-candidates\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\na=candidate:2 1 udp 2 127.0.0.1 1002 typ host\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=candidate:3 1 udp 3 127.0.0.1 1004 typ host\r\n"
    )
    rest, found = split_candidates(sdp)
    assert found == [
        ("a", "candidate:1 1 udp 1 127.0.0.1 1000 typ host"),
        ("v", "candidate:2 1 udp 2 127.0.0.1 1002 typ host"),
        ("audio", "candidate:3 1 udp 3 127.0.0.1 1004 typ host"),  # no a=mid: media type, as sdp_to_jingle names it
    ]
    assert "candidate" not in rest and "end-of-candidates" not in rest
    # LF input keeps LF.
    rest_lf, found_lf = split_candidates(sdp.replace("\r\n", "\n"))
    assert "\r" not in rest_lf and found_lf == found
    with pytest.raises(SdpError, match="outside any media section"):
        split_candidates("v=0\r\na=candidate:1 1 udp 1 127.0.0.1 1000 typ host\r\n")


def test_transport_info_exact_shape() -> None:
    content = transport_info_content(
        "audio",
        "Hk2P",
        "a=candidate:2731524390 1 udp 1686052607 203.0.113.7 51234 typ srflx raddr 10.1.2.3 rport 51234 "
        "generation 0 ufrag Hk2P network-id 1 network-cost 10",
    )
    # PROTOCOL Appendix A.6 / §10: no pwd, no generation/id/network.
    assert _xml.to_string(content, parent_ns=NS["jingle"]) == (
        '<content creator="initiator" name="audio"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="Hk2P">'
        '<candidate component="1" foundation="2731524390" ip="203.0.113.7" port="51234" priority="1686052607" '
        'protocol="udp" type="srflx" rel-addr="10.1.2.3" rel-port="51234"/></transport></content>'
    )
    eoc = transport_info_content("audio", "Hk2P", gathering_complete=True)
    assert _xml.to_string(eoc, parent_ns=NS["jingle"]) == (
        '<content creator="initiator" name="audio"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="Hk2P">'
        "<gathering-complete/></transport></content>"
    )
    old_style = transport_info_content("audio", None, gathering_complete=True, creator="responder")
    assert old_style.get("creator") == "responder"
    old_transport = find(old_style, "ice_udp", "transport")
    assert old_transport is not None and "ufrag" not in old_transport.attrib
    with pytest.raises(ValueError, match="candidate or gathering_complete"):
        transport_info_content("audio", "Hk2P")


def test_parse_transport_info_roundtrip() -> None:
    jingle = jingle_of(
        [
            transport_info_content("0", "q3Vn", "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"),
            transport_info_content("1", "q3Vn", "candidate:2 1 tcp 2130706175 127.0.0.1 9 typ host tcptype active"),
            transport_info_content("0", "q3Vn", gathering_complete=True),
        ],
        action="transport-info",
    )
    parsed = parse_transport_info(_xml.parse(_xml.to_string(jingle)))
    assert parsed == [
        ("0", "q3Vn", "candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ host"),
        ("1", "q3Vn", "candidate:2 1 TCP 2130706175 127.0.0.1 9 typ host tcptype active"),
        ("0", "q3Vn", None),
    ]
    # The 2017 shape: creator responder, pwd on the transport, generation/network/id on the candidate.
    old = _xml.parse(
        '<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s"><content creator="responder" name="audio">'
        '<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="ab" pwd="cd">'
        '<candidate component="1" foundation="3" generation="0" id="x9" ip="192.0.2.4" network="1" port="4000" '
        'priority="100" protocol="udp" type="host"/></transport></content></jingle>'
    )
    assert parse_transport_info(old) == [
        ("audio", "ab", "candidate:3 1 UDP 100 192.0.2.4 4000 typ host generation 0 network-id 1")
    ]


def test_parse_transport_info_errors() -> None:
    with pytest.raises(SdpError, match="no <content>"):
        parse_transport_info(jingle_of([], action="transport-info"))
    with pytest.raises(SdpError, match="no ice-udp <transport>"):
        parse_transport_info(jingle_of([element(q("jingle", "content"), name="a")], action="transport-info"))
    bad = jingle_of(
        [element(q("jingle", "content"), {"name": "a"}, element(q("ice_udp", "transport"), {},
                 element(q("ice_udp", "candidate"), {"foundation": "1"})))],
        action="transport-info",
    )  # fmt: skip
    with pytest.raises(SdpError, match="bad candidate.*'component'"):
        parse_transport_info(bad)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

BAD_SDP = [
    ("", "empty"),
    ("hello world", "not '<letter>=<value>'"),
    ("o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\n", "must start with 'v=0'"),
    ("v=1\r\n", "unsupported SDP version"),
    ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "no m= line"),
    ("v=0\r\nm=audio nine RTP/AVP 0\r\n", "malformed m-line"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF opus\r\n", "payload type: 'opus' is not an integer"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 200\r\n", "payload type: 200 is outside 0..127"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 opus\r\n", "malformed rtpmap"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 opus/fast\r\n", "clock rate: 'fast' is not an integer"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=candidate:1 1 udp 1 127.0.0.1 9\r\n", "line 3: bad candidate"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:u\r\na=setup:sometimes\r\n", "unknown a=setup"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:u\r\na=fingerprint:sha-256\r\n", "malformed fingerprint"),
    ("v=0\r\nm=audio 9 X 0\r\na=mid:a\r\nm=audio 9 X 8\r\na=mid:a\r\n", "mid 'a' is used twice"),
    ("v=0\r\nm=audio 9 X 0\r\na=ssrc:12\r\n", "a=ssrc without an attribute"),
    ("v=0\r\nm=audio 9 X 0\r\na=extmap:1/sideways urn:x\r\n", "unknown extmap direction"),
    ("v=0\r\nm=text 9 X 0\r\n", "unsupported media type 'text'"),
    ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF\r\na=mid:a\r\n", "lists no payload types"),
]


@pytest.mark.parametrize("sdp,message", BAD_SDP)
def test_bad_sdp(sdp: str, message: str) -> None:
    with pytest.raises(SdpError, match=re.escape(message)):
        sdp_to_jingle(sdp, "initiator")


def _content(*description_children: _xml.Element, senders: Optional[str] = None, media: Optional[str] = "audio"):
    return element(
        q("jingle", "content"),
        {"creator": "initiator", "name": "audio", "senders": senders},
        element(q("rtp", "description"), {"media": media}, *description_children),
        element(q("ice_udp", "transport"), {"ufrag": "u", "pwd": "p"}),
    )


BAD_JINGLE = [
    (jingle_of([]), "<jingle> has no <content>"),
    (element(q("jingle", "content")), "expected a <jingle"),
    (jingle_of([element(q("jingle", "content"), name="audio")]), "content 'audio' has no <description>"),
    (jingle_of([_content()]), "content 'audio' has no <payload-type>"),
    (jingle_of([_content(element(q("rtp", "payload-type"), name="opus"))]), "<payload-type> without id"),
    (jingle_of([_content(element(q("rtp", "payload-type"), id="x"))]), "payload-type id: 'x' is not an integer"),
    (jingle_of([_content(element(q("rtp", "payload-type"), id="96"))]), "dynamic payload-type 96 has no name"),
    (jingle_of([_content(element(q("rtp", "payload-type"), id="96", name="opus"))]), "has no clockrate"),
    (jingle_of([_content(element(q("rtp", "payload-type"), id="0"), senders="everyone")]), "unknown senders"),
    (jingle_of([_content(element(q("rtp", "payload-type"), id="0"), media=None)]), "has no 'media' attribute"),
    (
        jingle_of([element(q("jingle", "content"), {"name": "x"}, element("{urn:example}description"))]),
        "unsupported description namespace",
    ),
    (
        jingle_of([
            element(
                q("jingle", "content"), {"name": "audio"},
                element(q("rtp", "description"), {"media": "audio"}, element(q("rtp", "payload-type"), id="0")),
                element(q("ice_udp", "transport"), {}, element(q("ice_udp", "candidate"), foundation="1", component="1")),
            )
        ]),
        "bad candidate: <candidate> has no 'protocol'",
    ),
    (
        jingle_of([
            element(
                q("jingle", "content"), {"name": "audio"},
                element(q("rtp", "description"), {"media": "audio"}, element(q("rtp", "payload-type"), id="0")),
                element(q("ice_udp", "transport"), {}, element(q("dtls", "fingerprint"), {"hash": "sha-256"}, text="AB\r\na=x")),
            )
        ]),
        "contains a line break",
    ),
]  # fmt: skip


@pytest.mark.parametrize("jingle,message", BAD_JINGLE)
def test_bad_jingle(jingle: _xml.Element, message: str) -> None:
    with pytest.raises(SdpError, match=re.escape(message)):
        jingle_to_sdp(jingle, "initiator")


@pytest.mark.parametrize(
    "text,message",
    [
        ("1 1 udp 1 127.0.0.1 9 typ host", "must start with 'candidate:'"),
        ("candidate:1 1 udp 1 127.0.0.1 9 host", "expected 'foundation component protocol"),
        ("candidate:1 one udp 1 127.0.0.1 9 typ host", "component: 'one' is not an integer"),
        ("candidate:1 1 udp 1 127.0.0.1 70000 typ host", "port: 70000 is outside 0..65535"),
        ("candidate:1 1 udp high 127.0.0.1 9 typ host", "priority: 'high' is not an integer"),
        ("candidate:1 1 udp 1 127.0.0.1 9 typ srflx raddr 1.2.3.4 rport x", "rport: 'x' is not an integer"),
        ("candidate:1 1 udp 1 127.0.0.1 9 typ host generation", "'generation' has no value"),
    ],
)
def test_bad_candidate(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=re.escape(message)):
        candidate_to_element(text)


def test_sdp_error_is_value_error() -> None:
    assert issubclass(SdpError, ValueError)


# --------------------------------------------------------------------------
# end to end through aiortc on 127.0.0.1
# --------------------------------------------------------------------------


def test_aiortc_end_to_end_over_jingle() -> None:
    async def run() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        # Before any peer connection exists: host candidates on 127.0.0.1 only.
        restrict_host_addresses(loop, ["127.0.0.1"])
        caller = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # plays the gateway (initiator)
        callee = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # plays this SDK (responder)
        states: list[str] = []
        tracks: list[str] = []
        caller.on("connectionstatechange", lambda: states.append(caller.connectionState))
        callee.on("track", lambda track: tracks.append(track.kind))
        try:
            caller.addTrack(AudioStreamTrack())
            await caller.setLocalDescription(await caller.createOffer())

            # session-initiate: candidates inline.
            initiate = _xml.to_string(jingle_of(sdp_to_jingle(caller.localDescription.sdp, "initiator")))
            remote_offer = jingle_to_sdp(_xml.parse(initiate), "initiator")
            await callee.setRemoteDescription(RTCSessionDescription(remote_offer, "offer"))
            callee.addTrack(AudioStreamTrack())
            await callee.setLocalDescription(await callee.createAnswer())

            # session-accept without candidates, then one transport-info each, then end-of-candidates.
            local_answer = callee.localDescription.sdp
            accept = _xml.to_string(
                jingle_of(sdp_to_jingle(local_answer, "responder", include_candidates=False), "session-accept")
            )
            assert "<candidate" not in accept and "senders=" not in accept
            await caller.setRemoteDescription(
                RTCSessionDescription(jingle_to_sdp(_xml.parse(accept), "responder"), "answer")
            )
            _, trickled = split_candidates(local_answer)
            assert trickled and all(" 127.0.0.1 " in cand for _, cand in trickled)
            ufrag = next(line.split(":", 1)[1] for line in local_answer.splitlines() if line.startswith("a=ice-ufrag:"))
            infos = [transport_info_content(mid, ufrag, cand) for mid, cand in trickled]
            infos.append(transport_info_content(trickled[0][0], ufrag, gathering_complete=True))
            for info in infos:
                wire = _xml.to_string(jingle_of([info], "transport-info"))
                for mid, got_ufrag, cand in parse_transport_info(_xml.parse(wire)):
                    assert got_ufrag == ufrag
                    if cand is None:
                        await caller.addIceCandidate(None)
                    else:
                        ice = candidate_from_sdp(cand.split(":", 1)[1])
                        ice.sdpMid = mid
                        await caller.addIceCandidate(ice)

            deadline = time.monotonic() + 8
            while caller.connectionState != "connected" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert caller.connectionState == "connected"
        finally:
            await caller.close()
            await callee.close()
            release_host_addresses(loop)
        return states, tracks

    states, tracks = asyncio.run(run())
    assert states == ["connecting", "connected", "closed"]
    assert tracks == ["audio"]
