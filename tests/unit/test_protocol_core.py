"""XEP-0353 and Jingle dispatch tested by feeding stanzas into the core (no socket).

In the style of slixmpp's SlixTest: a fake stream records what the core sends; the test
injects server stanzas on the core loop and asserts the exact replies and events.
"""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

from helpers import wait_until

import purecloud_webrtc as pcw
from purecloud_webrtc import _xml as X
from purecloud_webrtc.xmpp.stream import Jid

ME = "5f99d2c4b1a0e8f7d6c5b4a3c@acmecorp.orgspan.com"
MY_RESOURCE = "purecloud-webrtc-sdk-test"
GW = "webrtc-7731@gjoll.us-east-1.example.test/a61c4e20"


def scripted_sdk(**options: Any) -> Any:
    """An SDK connected, for real, to a scripted server (tests/scripted.py): no socket, no emulator."""
    from scripted import ScriptedApi, ScriptedXmpp

    server = ScriptedXmpp(ME)
    sdk = pcw.PureCloudWebrtcSdk("tok", api_base_url="http://api.scripted.test", allow_insecure=True,
                                 streaming_base_url="ws://streaming.scripted.test", jid_resource=MY_RESOURCE,
                                 ping_interval=0, xmpp_transport=server.factory,
                                 http_adapter=ScriptedApi("user-1", ME), **options)
    sdk.initialize(timeout=10)
    server.sent.clear()
    server.core = sdk._core
    return sdk, sdk._core, server, sdk.event_queue()


@pytest.fixture
def core_sdk():
    sdk, core, server, events = scripted_sdk(auto_connect_sessions=False)
    yield sdk, core, server, events
    events.close()
    sdk.close()


def feed(server: Any, xml: str) -> None:
    """The server sends ``xml``; return once the SDK has handled it."""
    server.inject(xml)

    async def settle() -> None:
        await asyncio.sleep(0.05)

    server.core.call(settle, 5, "feed")


def propose(sid: str, cid: str = "conv-1", auto: str = "false", frm: str = GW) -> str:
    return (f'<message xmlns="jabber:client" from="{frm}" to="{ME}">'
            f'<propose xmlns="urn:xmpp:jingle-message:0" id="{sid}" inin-cid="{cid}" inin-autoanswer="{auto}">'
            f'<description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></propose></message>')


def names(events: Any) -> List[str]:
    return [e.name for e in events.drain() if e.name != "trace"]


def wait_events(sdk: Any) -> None:
    with sdk.expect_event("ready", timeout=5):
        sdk._emit("ready")


def test_propose_emits_pending_session_with_the_seed_payload(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    wait_events(sdk)
    got = [e for e in events.drain() if e.name == "pendingSession"]
    assert len(got) == 1
    pending = got[0].value
    assert (pending.id, pending.address, pending.conversation_id, pending.auto_answer) == (
        "sid-1", "webrtc-7731", "conv-1", False)
    assert stream.sent == []  # nothing is sent until the user accepts


def test_accept_sends_proceed_to_the_proposer_without_type(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    sdk.accept_pending_session("sid-1")
    assert len(stream.sent) == 1
    sent = X.parse(stream.sent[0].replace("<message ", '<message xmlns="jabber:client" ', 1))
    assert sent.get("to") == GW and sent.get("type") is None
    proceed = sent.find("{urn:xmpp:jingle-message:0}proceed")
    assert proceed is not None and proceed.get("id") == "sid-1"
    with pytest.raises(pcw.SessionStateError):
        sdk.accept_pending_session("sid-1")


def test_auto_answer_true_is_accepted_automatically_but_false_string_is_not(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-a", cid="c-a", auto="false"))
    feed(stream, propose("sid-b", cid="c-b", auto="true"))
    # The proceed goes out once the call's media is open (the default devices here): wait for it.
    wait_until(lambda: len(stream.sent) >= 1, 10, "the proceed")
    assert len(stream.sent) == 1 and 'id="sid-b"' in stream.sent[0] and "<proceed" in stream.sent[0]


def test_duplicate_propose_same_id_is_silent_or_re_proceeds(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    feed(stream, propose("sid-1"))
    wait_events(sdk)
    assert names(events).count("pendingSession") == 1 and stream.sent == []
    sdk.accept_pending_session("sid-1")
    feed(stream, propose("sid-1"))  # re-sent after our proceed: proceed again, no new event
    assert [s.count("<proceed") for s in stream.sent] == [1, 1]
    wait_events(sdk)
    assert "pendingSession" not in names(events)


def test_re_proposal_of_the_same_conversation_keeps_one_pending_session(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1", cid="conv-9"))
    feed(stream, propose("sid-2", cid="conv-9"))
    wait_events(sdk)
    assert names(events).count("pendingSession") == 1
    assert [p.id for p in sdk.pending_sessions] == ["sid-2"]
    assert sdk.pending_sessions[0].conversation_id == "conv-9"
    sdk.accept_pending_session("sid-1")  # the id the user saw still works
    assert 'id="sid-2"' in stream.sent[-1]


def test_retract_cancels_and_accepting_afterwards_is_not_found(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    feed(stream, f'<message xmlns="jabber:client" from="{GW}"><retract xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    got = [e for e in events.drain() if e.name in ("pendingSession", "cancelPendingSession")]
    assert [(e.name, e.value if e.name != "pendingSession" else e.value.id) for e in got] == [
        ("pendingSession", "sid-1"), ("cancelPendingSession", "sid-1")]
    with pytest.raises(pcw.SessionNotFoundError, match="not pending or does not exist"):
        sdk.accept_pending_session("sid-1")


def test_accept_from_another_client_is_handled_but_our_own_echo_is_ignored(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    own = f"{ME}/{MY_RESOURCE}"
    feed(stream, f'<message xmlns="jabber:client" from="{own}" to="{ME}"><accept xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    assert "handledPendingSession" not in names(events)
    feed(stream, f'<message xmlns="jabber:client" from="{ME}/other-device" to="{ME}"><accept xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    assert names(events) == ["handledPendingSession", "ready"]
    assert sdk.pending_sessions == []


def test_reject_from_another_client_is_handled(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    feed(stream, f'<message xmlns="jabber:client" from="{ME}/desk" to="{ME}"><reject xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    assert "handledPendingSession" in names(events)


COLLEAGUE = "0a1b2c3d4e5f60718293a4b5@acmecorp.orgspan.com/desk"
OTHER_GW = "webrtc-1234@gjoll.us-east-1.example.test/ffff0000"


def jmi(action: str, sid: str, frm: str) -> str:
    return (f'<message xmlns="jabber:client" from="{frm}" to="{ME}">'
            f'<{action} xmlns="urn:xmpp:jingle-message:0" id="{sid}"/></message>')


def test_proposals_from_anybody_but_the_gateway_are_ignored(core_sdk):
    sdk, core, stream, events = core_sdk
    for i, frm in enumerate([COLLEAGUE, f"{COLLEAGUE.split('/')[0]}/gjoll", f"acd-1@acmecorp.orgspan.com/x",
                             f"{ME}/other-device", "webrtc-1@gjoll.example.test"]):
        feed(stream, propose(f"evil-{i}", cid=f"c-{i}", auto="true", frm=frm))
    wait_events(sdk)
    got = events.drain()
    assert not [e for e in got if e.name == "pendingSession"] and stream.sent == []
    refused = [e for e in got if e.name == "trace" and e.args[2].get("refused")]
    assert [e.args[2]["id"] for e in refused] == [f"evil-{i}" for i in range(5)]


def test_retract_accept_and_reject_from_strangers_change_nothing(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    feed(stream, jmi("retract", "sid-1", OTHER_GW))
    feed(stream, jmi("retract", "sid-1", COLLEAGUE))
    feed(stream, jmi("accept", "sid-1", COLLEAGUE))
    feed(stream, jmi("reject", "sid-1", COLLEAGUE))
    feed(stream, jmi("accept", "sid-1", GW))  # the proposer cannot "answer elsewhere" for us
    wait_events(sdk)
    assert [p.id for p in sdk.pending_sessions] == ["sid-1"]
    assert not {"cancelPendingSession", "handledPendingSession"} & set(names(events))
    feed(stream, jmi("reject", "sid-1", GW))  # but it may withdraw by reject
    wait_events(sdk)
    assert "handledPendingSession" in names(events)


def test_duplicate_propose_from_another_jid_is_not_re_proceeded(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    sdk.accept_pending_session("sid-1")
    feed(stream, propose("sid-1", frm=OTHER_GW))
    assert len(stream.sent) == 1 and f'to="{GW}"' in stream.sent[0]


def test_session_initiate_only_from_the_proceeded_peer(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, propose("sid-1"))
    sdk.accept_pending_session("sid-1")
    for frm in (OTHER_GW, COLLEAGUE, GW.split("/")[0]):
        feed(stream, jingle_iq("session-initiate", "sid-1", "<content/>", frm=frm))
        assert "<unknown-session" in stream.sent[-1] and f'to="{frm}"' in stream.sent[-1]
    assert sdk.sessions == [] and [p.id for p in sdk.pending_sessions] == ["sid-1"]


def test_jmi_without_id_is_an_error_event_not_a_crash(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, f'<message xmlns="jabber:client" from="{GW}"><propose xmlns="urn:xmpp:jingle-message:0"/></message>')
    wait_events(sdk)
    errors = [e for e in events.drain() if e.name == "error"]
    assert errors and isinstance(errors[0].value, pcw.SignalingError)


def jingle_iq(action: str, sid: str, body: str = "", iq_id: str = "srv-1", frm: str = GW) -> str:
    return (f'<iq xmlns="jabber:client" type="set" id="{iq_id}" from="{frm}" to="{ME}/{MY_RESOURCE}">'
            f'<jingle xmlns="urn:xmpp:jingle:1" action="{action}" sid="{sid}">{body}</jingle></iq>')


@pytest.mark.parametrize("action", ["transport-info", "session-info", "session-accept", "content-add"])
def test_jingle_for_an_unknown_sid_gets_unknown_session(core_sdk, action):
    sdk, core, stream, events = core_sdk
    feed(stream, jingle_iq(action, "nope"))
    reply = stream.sent[-1]
    assert 'type="error"' in reply and 'id="srv-1"' in reply
    assert "<item-not-found" in reply and '<unknown-session xmlns="urn:xmpp:jingle:errors:1"/>' in reply


def test_terminate_for_an_unknown_sid_is_acknowledged(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, jingle_iq("session-terminate", "nope", "<reason><success/></reason>"))
    assert stream.sent[-1] == f'<iq type="result" id="srv-1" to="{GW}"/>'


def proceeded(sdk: Any, stream: Any, sid: str) -> None:
    """Propose ``sid`` from the gateway and accept it: only then may a session-initiate come."""
    feed(stream, propose(sid, cid=f"conv-{sid}"))
    sdk.accept_pending_session(sid)


def test_session_initiate_without_contents_is_bad_request(core_sdk):
    sdk, core, stream, events = core_sdk
    proceeded(sdk, stream, "sid-x")
    feed(stream, jingle_iq("session-initiate", "sid-x"))
    assert 'type="error"' in stream.sent[-1] and "<bad-request" in stream.sent[-1]
    assert sdk.sessions == []


def test_session_initiate_with_untranslatable_offer_is_refused_and_reported(core_sdk):
    sdk, core, stream, events = core_sdk
    body = ('<content creator="initiator" name="audio"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">'
            '<payload-type name="opus" clockrate="48000"/></description></content>')
    proceeded(sdk, stream, "sid-x")
    feed(stream, jingle_iq("session-initiate", "sid-x", body))
    assert 'type="error"' in stream.sent[-1]
    wait_events(sdk)
    assert "error" in names(events)
    assert sdk.sessions == []


def test_jingle_iq_get_is_bad_request(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(stream, jingle_iq("session-info", "x").replace('type="set"', 'type="get"'))
    assert "<bad-request" in stream.sent[-1]


# -- SDP over XMPP (docs/protocol.rst §5) ------------------------------------------------------------

import json  # noqa: E402


def aiortc_offer() -> str:
    """A real offer from an aiortc peer on 127.0.0.1 (never connected)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    from purecloud_webrtc._ice import restrict_host_addresses

    async def make() -> str:
        restrict_host_addresses(asyncio.get_running_loop(), ["127.0.0.1"])
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        # As the gateway trickles: no inline candidates and no end-of-candidates in the offer.
        from purecloud_webrtc.jingle.sdp import split_candidates

        return split_candidates(sdp)[0]

    return asyncio.run(make())


def rpc(method: str, params: dict, rpc_id: str = "r-1", iq_id: str = "g-1") -> str:
    body = json.dumps({"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params})
    from xml.sax.saxutils import escape

    return (f'<iq xmlns="jabber:client" type="set" id="{iq_id}" from="{GW}" to="{ME}/{MY_RESOURCE}">'
            f'<genesys-webrtc xmlns="genesys">{escape(body)}</genesys-webrtc></iq>')


def sent_rpcs(stream: Any) -> List[dict]:
    out = []
    for text in stream.sent:
        if "genesys-webrtc" in text:
            el = X.parse(text.replace("<iq ", '<iq xmlns="jabber:client" ', 1))
            out.append(json.loads(el.find("{genesys}genesys-webrtc").text))
    return out


@pytest.fixture
def rpc_sdk():
    from purecloud_webrtc.media import NullSink, SilenceSource

    sdk, core, server, events = scripted_sdk(ice_host_addresses=["127.0.0.1"], default_source=SilenceSource(),
                                             default_sink=NullSink())
    yield sdk, core, server, events
    events.close()
    sdk.close()


def wait_for(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def propose_sdp(sid: str) -> str:
    return propose(sid).replace('inin-autoanswer="false"', 'inin-autoanswer="true" inin-sdp-over-xmpp="true"')


def test_rpc_offer_is_answered_with_json_rpc_and_early_candidates_are_applied(rpc_sdk):
    sdk, core, stream, events = rpc_sdk
    feed(stream, propose_sdp("s1"))
    # A candidate that arrives before the offer is kept and applied once the offer is in.
    feed(stream, rpc("iceCandidate", {"sessionId": "s1", "sdp": "m=0 9 RTP/AVP 0\r\n"
                                    "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"}, "c-0"))
    feed(stream, rpc("offer", {"sessionId": "s1", "conversationId": "conv-1", "sdp": aiortc_offer()}))
    wait_for(lambda: any(m["method"] == "answer" for m in sent_rpcs(stream)))
    methods = [m["method"] for m in sent_rpcs(stream)]
    assert methods[0] == "answer" and methods[-1] == "iceCandidate"
    assert sent_rpcs(stream)[-1]["params"] == {"sessionId": "s1", "sdp": "a=end-of-candidates\r\n"}
    for m in sent_rpcs(stream)[1:-1]:
        assert m["params"]["sdp"].startswith("m=0 9 RTP/AVP 0\r\na=candidate:") and m["params"]["sdp"].endswith("\r\n")
    session = sdk.get_session("s1")
    assert session.conversation_id == "conv-1"
    remote = session.peer_connection.getTransceivers()[0].receiver.transport.transport
    assert any(c.ip == "127.0.0.1" and c.port == 9 for c in remote.getRemoteCandidates())
    assert not any('type="result"' in t and 'id="g-1"' in t for t in stream.sent)  # no IQ result in this mode


def test_jingle_initiate_for_an_sdp_over_xmpp_session_is_ignored(rpc_sdk):
    sdk, core, stream, events = rpc_sdk
    feed(stream, propose_sdp("s2"))
    body = ('<content creator="initiator" name="0"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">'
            '<payload-type id="111" name="opus" clockrate="48000" channels="2"/></description></content>')
    feed(stream, jingle_iq("session-initiate", "s2", body))
    assert stream.sent[-1] == f'<iq type="result" id="srv-1" to="{GW}"/>'
    assert sdk.sessions == []


def test_rpc_from_strangers_or_without_a_proceed_is_refused(rpc_sdk):
    sdk, core, stream, events = rpc_sdk
    offer = aiortc_offer()
    feed(stream, rpc("offer", {"sessionId": "never-proposed", "sdp": offer}))
    assert "<unknown-session" in stream.sent[-1]
    feed(stream, propose_sdp("s1"))  # auto-answered: proceeded to GW
    for method, params in (("offer", {"sessionId": "s1", "sdp": offer}),
                           ("iceCandidate", {"sessionId": "s1", "sdp": "m=0 9 RTP/AVP 0\r\na=candidate:1 1 udp 1 "
                                                                        "127.0.0.1 9 typ host\r\n"}),
                           ("terminate", {"sessionId": "s1"})):
        feed(stream, rpc(method, params).replace(f'from="{GW}"', f'from="{OTHER_GW}"'))
        assert "<unknown-session" in stream.sent[-1] and f'to="{OTHER_GW}"' in stream.sent[-1]
    assert sdk.sessions == [] and [p.id for p in sdk.pending_sessions] == ["s1"]
    assert core._early_candidates == {}


def test_rpc_renegotiation_and_reinvite(rpc_sdk):
    sdk, core, stream, events = rpc_sdk
    feed(stream, propose_sdp("s3"))
    offer = aiortc_offer()
    feed(stream, rpc("offer", {"sessionId": "s3", "sdp": offer}, "o-1"))
    wait_for(lambda: [m["method"] for m in sent_rpcs(stream)].count("answer") == 1)
    first = sdk.get_session("s3")
    # Same ICE credentials: a renegotiation of the same session, answered again.
    feed(stream, rpc("offer", {"sessionId": "s3", "sdp": offer}, "o-2"))
    try:
        wait_for(lambda: [m["method"] for m in sent_rpcs(stream)].count("answer") == 2)
    except AssertionError:
        raise AssertionError([(e.name, e.args) for e in events.drain() if e.name in ("error", "trace")])
    assert sdk.get_session("s3") is first and not first.ended
    # New ICE credentials (reinvite): a brand-new session replaces it; the old one ends.
    with sdk.expect_event("sessionEnded") as ended, sdk.expect_event("sessionStarted") as started:
        feed(stream, rpc("offer", {"sessionId": "s3", "sdp": aiortc_offer(), "reinvite": True}, "o-3"))
    assert ended.args == (first, "alternative-session")
    assert started.value is not first and started.value.id == "s3"
    try:
        wait_for(lambda: [m["method"] for m in sent_rpcs(stream)].count("answer") == 3)
    except AssertionError:
        raise AssertionError([(e.name, e.args) for e in events.drain() if e.name in ("error", "trace")])
    # The gateway repeats a reinvite until answered: the same JSON-RPC id again is ignored.
    feed(stream, rpc("offer", {"sessionId": "s3", "sdp": aiortc_offer(), "reinvite": True}, "o-3"))
    import time
    time.sleep(0.3)
    assert [m["method"] for m in sent_rpcs(stream)].count("answer") == 3
    assert sdk.get_session("s3") is started.value


def test_rpc_terminate_ends_the_session_and_bad_json_is_reported(rpc_sdk):
    sdk, core, stream, events = rpc_sdk
    feed(stream, propose_sdp("s4"))
    feed(stream, rpc("offer", {"sessionId": "s4", "sdp": aiortc_offer()}))
    wait_for(lambda: sdk.sessions)
    with sdk.expect_event("sessionEnded") as ended:
        feed(stream, rpc("terminate", {"sessionId": "s4", "reason": "timeout"}, "t-1"))
    assert ended.args[1] == "timeout"
    with sdk.expect_event("error") as err:
        feed(stream, f'<iq xmlns="jabber:client" type="set" id="g-9" from="{GW}">'
                   '<genesys-webrtc xmlns="genesys">{not json</genesys-webrtc></iq>')
    assert isinstance(err.value, pcw.SignalingError) and "not JSON" in str(err.value)


def test_rpc_candidates_during_the_offer_keep_their_order_with_end_of_candidates(rpc_sdk):
    """The race seen under load: end-of-candidates must never overtake an earlier candidate."""
    sdk, core, stream, events = rpc_sdk
    feed(stream, propose_sdp("s5"))
    offer = aiortc_offer()
    cand = rpc("iceCandidate", {"sessionId": "s5", "sdp": "m=0 9 RTP/AVP 0\r\n"
                                "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"}, "c-1")
    eoc = rpc("iceCandidate", {"sessionId": "s5", "sdp": "a=end-of-candidates\r\n"}, "c-2")

    async def burst() -> None:
        # The offer and a candidate in one go (the candidate is buffered), then, once the offer is being
        # applied, the end marker: the interleaving that lost the candidate before the fix.
        core._on_iq(X.parse(rpc("offer", {"sessionId": "s5", "sdp": offer}, "o-1")))
        core._on_iq(X.parse(cand))
        for _ in range(3):
            await asyncio.sleep(0)
        core._on_iq(X.parse(eoc))

    core.call(burst, 5, "burst")
    wait_for(lambda: any(m["method"] == "answer" for m in sent_rpcs(stream)))
    transport = sdk.get_session("s5").peer_connection.getTransceivers()[0].receiver.transport.transport
    assert any(c.ip == "127.0.0.1" and c.port == 9 for c in transport.getRemoteCandidates())
