"""Fuzzing the parsers and the core's stanza handling with hypothesis.

Each parser may only fail with its own typed error; the core must answer or ignore any stanza
without an exception escaping. The number of inputs tried is kept in FUZZ_COUNTS and printed
at the end of the run (``-s``) so it can be reported.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import purecloud_webrtc as pcw
from purecloud_webrtc import _xml as X
from purecloud_webrtc.jingle import sdp as sdpmod
from purecloud_webrtc.jingle.messages import parse_jmi, parse_reason

FUZZ_COUNTS: "collections.Counter[str]" = collections.Counter()
EXAMPLES = int(os.environ.get("PCW_FUZZ_EXAMPLES", "300"))


@atexit.register
def _report() -> None:
    if FUZZ_COUNTS:
        print("fuzz inputs tried:", dict(FUZZ_COUNTS), "total", sum(FUZZ_COUNTS.values()))


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

NAMESPACES = list(X.NS.values()) + ["urn:x", ""]
TAGS = ["iq", "message", "jingle", "content", "description", "payload-type", "parameter", "transport", "candidate",
        "fingerprint", "group", "propose", "proceed", "accept", "retract", "reject", "reason", "success", "source",
        "rtcp-fb", "rtp-hdrext", "gathering-complete", "active", "query", "ping", "x"]
ATTRS = ["id", "type", "from", "to", "sid", "action", "name", "creator", "senders", "media", "clockrate", "channels",
         "ufrag", "pwd", "hash", "setup", "ip", "port", "priority", "protocol", "component", "foundation", "uri",
         "value", "semantics", "ssrc", "inin-cid", "inin-autoanswer"]
VALUES = st.one_of(st.sampled_from(["set", "get", "result", "error", "session-initiate", "transport-info",
                                    "session-terminate", "session-info", "audio", "111", "opus", "48000", "2",
                                    "udp", "host", "127.0.0.1", "sha-256", "actpass", "both", "true", "-1", ""]),
                   st.text(string.printable, max_size=12))


def elements(depth: int = 3) -> st.SearchStrategy:
    leaf = st.builds(lambda ns, tag, attrs, text: _el(ns, tag, attrs, text, []),
                     st.sampled_from(NAMESPACES), st.sampled_from(TAGS),
                     st.dictionaries(st.sampled_from(ATTRS), VALUES, max_size=4), st.one_of(st.none(), VALUES))
    return st.recursive(leaf, lambda children: st.builds(
        lambda ns, tag, attrs, kids: _el(ns, tag, attrs, None, kids),
        st.sampled_from(NAMESPACES), st.sampled_from(TAGS),
        st.dictionaries(st.sampled_from(ATTRS), VALUES, max_size=4), st.lists(children, max_size=4)),
        max_leaves=12)


def _el(ns, tag, attrs, text, children):
    el = X.element("{%s}%s" % (ns, tag) if ns else tag, attrs, *children, text=text)
    return el


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_xml_parser_only_raises_xml_error(data):
    FUZZ_COUNTS["xml-bytes"] += 1
    try:
        X.parse(data)
    except X.XmlError:
        pass


@FUZZ
@given(elements())
def test_serialiser_round_trips(el):
    FUZZ_COUNTS["xml-roundtrip"] += 1
    text = X.to_string(el)
    again = X.parse(text)
    assert X.to_string(again) == text


@FUZZ
@given(elements())
def test_jmi_and_reason_parsers(el):
    FUZZ_COUNTS["jmi"] += 1
    try:
        parse_jmi(el)
    except ValueError:
        pass
    parse_reason(el)


@FUZZ
@given(elements())
def test_jingle_to_sdp_only_raises_sdp_error(el):
    FUZZ_COUNTS["jingle-to-sdp"] += 1
    for role in ("initiator", "responder"):
        try:
            sdpmod.jingle_to_sdp(el, role)
        except sdpmod.SdpError:
            pass
        try:
            sdpmod.parse_transport_info(el)
        except sdpmod.SdpError:
            pass


SDP_LINES = st.sampled_from([
    "v=0", "o=- 1 2 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0", "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
    "a=mid:0", "a=rtpmap:111 opus/48000/2", "a=rtpmap:0 PCMU/8000", "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtcp-fb:111 transport-cc", "a=extmap:1/sendonly urn:x", "a=sendrecv", "a=recvonly", "a=inactive",
    "a=ice-ufrag:abcd", "a=ice-pwd:0123456789012345678901", "a=fingerprint:sha-256 AA:BB", "a=setup:actpass",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "a=candidate:x", "a=end-of-candidates",
    "a=ssrc:1 cname:c", "a=msid:s t", "a=rtcp-mux", "a=ptime:20", "a=rtpmap:x", "a=fmtp:", "m=", "a=",
])


@FUZZ
@given(st.lists(st.one_of(SDP_LINES, st.text(string.printable, max_size=40)), max_size=25), st.booleans())
def test_sdp_to_jingle_only_raises_sdp_error(lines, candidates):
    FUZZ_COUNTS["sdp-to-jingle"] += 1
    sdp = "\r\n".join(lines) + "\r\n"
    for role in ("initiator", "responder"):
        try:
            sdpmod.sdp_to_jingle(sdp, role, include_candidates=candidates)
        except sdpmod.SdpError:
            pass
    try:
        sdpmod.split_candidates(sdp)
    except sdpmod.SdpError:
        pass


@FUZZ
@given(st.text(string.printable, max_size=120))
def test_candidate_parser_only_raises_sdp_error(text):
    FUZZ_COUNTS["candidate"] += 1
    try:
        el = sdpmod.candidate_to_element(text)
    except sdpmod.SdpError:
        return
    try:
        sdpmod.element_to_candidate(el)
    except sdpmod.SdpError:
        pass




def test_core_survives_random_stanzas():
    # A real stream over the scripted socket: every fuzzed stanza goes through the frame parser too.
    from scripted import ScriptedApi, ScriptedXmpp

    server = ScriptedXmpp("me@acme.test")
    sdk = pcw.PureCloudWebrtcSdk("tok", api_base_url="http://api.scripted.test", allow_insecure=True,
                                 streaming_base_url="ws://streaming.scripted.test", auto_connect_sessions=False,
                                 ping_interval=0, xmpp_transport=server.factory,
                                 http_adapter=ScriptedApi("u", "me@acme.test"))
    sdk.initialize(timeout=10)
    core = sdk._core
    stanza = st.builds(lambda kind, attrs, kids: X.element("{jabber:client}" + kind, attrs, *kids),
                       st.sampled_from(["iq", "message"]),
                       st.dictionaries(st.sampled_from(["id", "type", "from", "to"]), VALUES, max_size=4),
                       st.lists(elements(2), max_size=3))

    @FUZZ
    @given(stanza)
    def feed(el):
        FUZZ_COUNTS["core-stanza"] += 1

        server.inject(X.to_string(el))

        async def settle():
            await asyncio.sleep(0)

        core.call(settle, 5, "fuzz")

    try:
        feed()
    finally:
        sdk.close()
