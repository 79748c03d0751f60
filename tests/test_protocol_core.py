"""XEP-0353 and Jingle dispatch tested by feeding stanzas into the core (no socket).

In the style of slixmpp's SlixTest: a fake stream records what the core sends; the test
injects server stanzas on the core loop and asserts the exact replies and events.
"""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc import _xml as X
from purecloud_webrtc.xmpp.stream import Jid

ME = "5f99d2c4b1a0e8f7d6c5b4a3c@acmecorp.orgspan.com"
MY_RESOURCE = "purecloud-webrtc-sdk-test"
GW = "webrtc-7731@gjoll.us-east-1.example.test/a61c4e20"


class FakeStream:
    def __init__(self) -> None:
        self.sent: List[str] = []
        self.state = "connected"
        self.full_jid = Jid.parse(f"{ME}/{MY_RESOURCE}")

    def send(self, el: Any) -> None:
        self.sent.append(X.to_string(el, parent_ns="jabber:client"))

    def send_iq_nowait(self, el: Any, on_error: Any = None) -> None:
        self.send(el)


@pytest.fixture
def core_sdk():
    sdk = pcw.PureCloudWebrtcSdk("tok", api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9",
                                 auto_connect_sessions=False)
    core = sdk._core
    stream = FakeStream()
    core.stream = stream
    core.jid = Jid.parse(ME)
    core.me = {"id": "user-1", "chat": {"jabberId": ME}}
    core.state = "connected"
    events = sdk.event_queue()
    yield sdk, core, stream, events
    events.close()
    core.stream = None
    sdk.close()


def feed(core: Any, xml: str) -> None:
    el = X.parse(xml)

    async def run() -> None:
        if el.tag.endswith("}message"):
            core._on_message(el)
        else:
            handled = core._on_iq(el)
            assert handled
        await asyncio.sleep(0.05)

    core.call(run, 5, "feed")


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
    feed(core, propose("sid-1"))
    wait_events(sdk)
    got = [e for e in events.drain() if e.name == "pendingSession"]
    assert len(got) == 1
    pending = got[0].value
    assert (pending.id, pending.address, pending.conversation_id, pending.auto_answer) == (
        "sid-1", "webrtc-7731", "conv-1", False)
    assert stream.sent == []  # nothing is sent until the user accepts


def test_accept_sends_proceed_to_the_proposer_without_type(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, propose("sid-1"))
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
    feed(core, propose("sid-a", cid="c-a", auto="false"))
    feed(core, propose("sid-b", cid="c-b", auto="true"))
    assert len(stream.sent) == 1 and 'id="sid-b"' in stream.sent[0] and "<proceed" in stream.sent[0]


def test_duplicate_propose_same_id_is_silent_or_re_proceeds(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, propose("sid-1"))
    feed(core, propose("sid-1"))
    wait_events(sdk)
    assert names(events).count("pendingSession") == 1 and stream.sent == []
    sdk.accept_pending_session("sid-1")
    feed(core, propose("sid-1"))  # re-sent after our proceed: proceed again, no new event
    assert [s.count("<proceed") for s in stream.sent] == [1, 1]
    wait_events(sdk)
    assert "pendingSession" not in names(events)


def test_re_proposal_of_the_same_conversation_keeps_one_pending_session(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, propose("sid-1", cid="conv-9"))
    feed(core, propose("sid-2", cid="conv-9"))
    wait_events(sdk)
    assert names(events).count("pendingSession") == 1
    assert [p.id for p in sdk.pending_sessions] == ["sid-2"]
    assert sdk.pending_sessions[0].conversation_id == "conv-9"
    sdk.accept_pending_session("sid-1")  # the id the user saw still works
    assert 'id="sid-2"' in stream.sent[-1]


def test_retract_cancels_and_accepting_afterwards_is_not_found(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, propose("sid-1"))
    feed(core, f'<message xmlns="jabber:client" from="{GW}"><retract xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    got = [e for e in events.drain() if e.name in ("pendingSession", "cancelPendingSession")]
    assert [(e.name, e.value if e.name != "pendingSession" else e.value.id) for e in got] == [
        ("pendingSession", "sid-1"), ("cancelPendingSession", "sid-1")]
    with pytest.raises(pcw.SessionNotFoundError, match="not pending or does not exist"):
        sdk.accept_pending_session("sid-1")


def test_accept_from_another_client_is_handled_but_our_own_echo_is_ignored(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, propose("sid-1"))
    own = f"{ME}/{MY_RESOURCE}"
    feed(core, f'<message xmlns="jabber:client" from="{own}" to="{ME}"><accept xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    assert "handledPendingSession" not in names(events)
    feed(core, f'<message xmlns="jabber:client" from="{ME}/other-device" to="{ME}"><accept xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    assert names(events) == ["handledPendingSession", "ready"]
    assert sdk.pending_sessions == []


def test_reject_from_another_client_is_handled(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, propose("sid-1"))
    feed(core, f'<message xmlns="jabber:client" from="{ME}/desk" to="{ME}"><reject xmlns="urn:xmpp:jingle-message:0" id="sid-1"/></message>')
    wait_events(sdk)
    assert "handledPendingSession" in names(events)


def test_jmi_without_id_is_an_error_event_not_a_crash(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, f'<message xmlns="jabber:client" from="{GW}"><propose xmlns="urn:xmpp:jingle-message:0"/></message>')
    wait_events(sdk)
    errors = [e for e in events.drain() if e.name == "error"]
    assert errors and isinstance(errors[0].value, pcw.SignalingError)


def jingle_iq(action: str, sid: str, body: str = "", iq_id: str = "srv-1", frm: str = GW) -> str:
    return (f'<iq xmlns="jabber:client" type="set" id="{iq_id}" from="{frm}" to="{ME}/{MY_RESOURCE}">'
            f'<jingle xmlns="urn:xmpp:jingle:1" action="{action}" sid="{sid}">{body}</jingle></iq>')


@pytest.mark.parametrize("action", ["transport-info", "session-info", "session-accept", "content-add"])
def test_jingle_for_an_unknown_sid_gets_unknown_session(core_sdk, action):
    sdk, core, stream, events = core_sdk
    feed(core, jingle_iq(action, "nope"))
    reply = stream.sent[-1]
    assert 'type="error"' in reply and 'id="srv-1"' in reply
    assert "<item-not-found" in reply and '<unknown-session xmlns="urn:xmpp:jingle:errors:1"/>' in reply


def test_terminate_for_an_unknown_sid_is_acknowledged(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, jingle_iq("session-terminate", "nope", "<reason><success/></reason>"))
    assert stream.sent[-1] == f'<iq type="result" id="srv-1" to="{GW}"/>'


def test_session_initiate_without_contents_is_bad_request(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, jingle_iq("session-initiate", "sid-x"))
    assert 'type="error"' in stream.sent[-1] and "<bad-request" in stream.sent[-1]
    assert sdk.sessions == []


def test_session_initiate_with_untranslatable_offer_is_refused_and_reported(core_sdk):
    sdk, core, stream, events = core_sdk
    body = ('<content creator="initiator" name="audio"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">'
            '<payload-type name="opus" clockrate="48000"/></description></content>')
    feed(core, jingle_iq("session-initiate", "sid-x", body))
    assert 'type="error"' in stream.sent[-1]
    wait_events(sdk)
    assert "error" in names(events)
    assert sdk.sessions == []


def test_jingle_iq_get_is_bad_request(core_sdk):
    sdk, core, stream, events = core_sdk
    feed(core, jingle_iq("session-info", "x").replace('type="set"', 'type="get"'))
    assert "<bad-request" in stream.sent[-1]
