"""Integration: the seed API end to end against the emulator.

Real WebSocket, real XMPP (the emulator's), real DTLS-SRTP and Opus between the
SDK's aiortc peer and the emulator's, on 127.0.0.1.  Each test asserts the whole
ordered event sequence and the tone frequency heard in both directions.
"""

from __future__ import annotations

import threading
import time
from typing import Any, List, Tuple

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.media import BufferSink, ToneSource

from helpers import wait_until

TOL = 5.0


@pytest.fixture(params=["jingle", "sdp-over-xmpp"])
def emulator(request):
    """Every seed-API test runs in both negotiation modes the service may choose per call (docs/protocol.rst §5)."""
    from purecloud_webrtc.emulator import Emulator

    with Emulator(sdp_over_xmpp=request.param == "sdp-over-xmpp") as emu:
        yield emu
SESSION_EVENT_NAMES = ["terminated", "change:connectionState", "change:interrupted", "change:active", "endOfCandidates"]


class Recorder:
    """Records SDK and session events, in delivery order, as compact tuples."""

    def __init__(self, sdk: pcw.PureCloudWebrtcSdk) -> None:
        self.events: List[Tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.sessions: List[pcw.Session] = []
        for name in ("pendingSession", "cancelPendingSession", "handledPendingSession", "sessionEnded"):
            sdk.on(name, self._make(name))

        @sdk.on("sessionStarted")
        def started(session: pcw.Session) -> None:
            self.add(("sessionStarted",))
            self.sessions.append(session)
            # Registered on the events thread before any later session event is delivered: no race.
            for event in SESSION_EVENT_NAMES:
                session.on(event, self._make(event))

    def add(self, item: Tuple[Any, ...]) -> None:
        with self.lock:
            self.events.append(item)

    def _make(self, name: str) -> Any:
        def record(*args: Any) -> None:
            if name == "pendingSession":
                self.add((name, args[0].auto_answer))
            elif name in ("cancelPendingSession", "handledPendingSession"):
                self.add((name,))
            elif name in ("sessionEnded", "terminated"):
                self.add((name, args[1]))
            elif name == "endOfCandidates":
                self.add((name,))
            else:
                self.add((name, args[1]))
        return record

    def names(self) -> List[Tuple[Any, ...]]:
        with self.lock:
            return list(self.events)


def connected_sequence(auto_answer: bool) -> List[Tuple[Any, ...]]:
    return [
        ("pendingSession", auto_answer),
        ("sessionStarted",),
        ("change:active", True),
        ("endOfCandidates",),
        ("change:connectionState", "connecting"),
        ("change:connectionState", "connected"),
    ]


ENDED = [
    ("change:active", False),
    ("change:connectionState", "disconnected"),
    ("terminated", "success"),
    ("sessionEnded", "success"),
]


def check_audio(session: pcw.Session, call: Any, sdk_tone: float) -> None:
    call.wait_for_audio(timeout=15, min_seconds=1.0)
    assert session.sink.wait_for_duration(1.2, timeout=15)
    heard_by_sdk = session.sink.dominant_frequency(last_seconds=1.0)
    heard_by_remote = call.heard_frequency(seconds=1.0)
    assert abs(heard_by_sdk - call.tone_hz) <= TOL, (heard_by_sdk, call.tone_hz)
    assert abs(heard_by_remote - sdk_tone) <= TOL, (heard_by_remote, sdk_tone)


def wait_sequence(rec: Recorder, expected: List[Tuple[Any, ...]], timeout: float = 15) -> None:
    wait_until(lambda: len(rec.names()) >= len(expected), timeout, f"events {expected}")
    time.sleep(0.2)  # nothing unexpected may follow
    assert rec.names() == expected


def test_inbound_call_accepted_manually_then_ended_by_id(emulator, make_sdk):
    sdk = make_sdk()
    rec = Recorder(sdk)
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=440.0)
    pending = ev.value
    assert (pending.id, pending.conversation_id, pending.auto_answer) == (call.session_id, call.conversation_id, False)
    # v1 payload: address is the local part of the proposing gateway JID (docs/protocol.rst §3.1).
    assert pending.address == call.gateway_jid.split("@")[0] and pending.from_jid == call.gateway_jid
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(pending.id, source=ToneSource(660.0), sink=BufferSink())
    session = started.value
    assert session.id == pending.id and session.conversation_id == call.conversation_id
    call.wait_state("connected", timeout=15)
    wait_until(lambda: session.connection_state == "connected", 10, "connected")
    check_audio(session, call, 660.0)
    with sdk.expect_event("sessionEnded") as ended:
        sdk.end_session(id=session.id)
    assert ended.args == (session, "success")
    assert session.ended and session.end_reason == "success" and sdk.sessions == []
    wait_sequence(rec, connected_sequence(False) + ENDED)
    # The REST path was used: the participant was PATCHed, and the gateway sent the terminate.
    assert any(m == "PATCH" and "/participants/" in p for m, p, s in emulator.rest_log)
    assert not call.terminated_by_client


def test_inbound_call_auto_answered_by_admin_setting(emulator, make_sdk):
    sdk = make_sdk(default_source=ToneSource(700.0), default_sink=BufferSink())
    rec = Recorder(sdk)
    with sdk.expect_event("sessionStarted") as started:
        call = emulator.inbound_call(auto_answer=True, tone_hz=500.0)
    session = started.value
    call.wait_state("connected", timeout=15)
    check_audio(session, call, 700.0)
    with sdk.expect_event("sessionEnded"):
        call.hangup()
    wait_sequence(rec, connected_sequence(True) + ENDED)


def test_outbound_call_is_auto_answered_and_ended_by_conversation_id(emulator, make_sdk):
    sdk = make_sdk(default_source=ToneSource(880.0), default_sink=BufferSink())
    rec = Recorder(sdk)
    with sdk.expect_event("sessionStarted") as started:
        conversation_id = sdk.start_softphone_session(phone_number="+13175550123")
    session = started.value
    assert session.conversation_id == conversation_id
    call = emulator.call_by_conversation(conversation_id)
    assert call.direction == "outbound"
    call.wait_state("connected", timeout=15)
    check_audio(session, call, 880.0)
    with sdk.expect_event("sessionEnded"):
        sdk.end_session(conversation_id=conversation_id)
    wait_sequence(rec, connected_sequence(True) + ENDED)


def test_remote_hang_up(emulator, make_sdk):
    sdk = make_sdk()
    rec = Recorder(sdk)
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=600.0)
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(ev.value.id, source=ToneSource(1000.0), sink=BufferSink())
    session = started.value
    call.wait_state("connected", timeout=15)
    check_audio(session, call, 1000.0)
    with sdk.expect_event("sessionEnded") as ended:
        call.hangup()
    assert ended.args[1] == "success"
    wait_sequence(rec, connected_sequence(False) + ENDED)
    with pytest.raises(pcw.SessionNotFoundError):
        sdk.end_session(id=session.id)


def test_retract_before_answer_cancels_the_pending_session(emulator, make_sdk):
    sdk = make_sdk()
    rec = Recorder(sdk)
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call()
    with sdk.expect_event("cancelPendingSession") as cancelled:
        call.retract()
    assert cancelled.value == ev.value.id
    wait_sequence(rec, [("pendingSession", False), ("cancelPendingSession",)])
    with pytest.raises(pcw.SessionNotFoundError, match="not pending"):
        sdk.accept_pending_session(ev.value.id)
    assert sdk.pending_sessions == []


def test_another_client_answering_first_is_handled(emulator, make_sdk):
    sdk = make_sdk()
    rec = Recorder(sdk)
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call()
    with sdk.expect_event("handledPendingSession") as handled:
        call.answer_from_other_client()
    assert handled.value == ev.value.id
    wait_sequence(rec, [("pendingSession", False), ("handledPendingSession",)])
    assert sdk.pending_sessions == []


def test_two_sdks_of_one_user_the_one_that_answers_wins(emulator, make_sdk):
    desk = make_sdk(jid_resource="desk")
    bot = make_sdk(jid_resource="bot")
    rec_desk, rec_bot = Recorder(desk), Recorder(bot)
    with desk.expect_event("pendingSession") as ev_desk, bot.expect_event("pendingSession") as ev_bot:
        call = emulator.inbound_call(tone_hz=450.0)
    assert ev_desk.value.id == ev_bot.value.id
    with desk.expect_event("handledPendingSession"), bot.expect_event("sessionStarted") as started:
        bot.accept_pending_session(ev_bot.value.id, source=ToneSource(900.0), sink=BufferSink())
    call.wait_state("connected", timeout=15)
    check_audio(started.value, call, 900.0)
    assert rec_desk.names() == [("pendingSession", False), ("handledPendingSession",)]
    with bot.expect_event("sessionEnded"):
        call.hangup()
    wait_sequence(rec_bot, connected_sequence(False) + ENDED)


def test_auto_connect_sessions_false_waits_for_session_accept(emulator, make_sdk):
    sdk = make_sdk(auto_connect_sessions=False)
    rec = Recorder(sdk)
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=550.0)
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(ev.value.id)
    session = started.value
    time.sleep(0.5)
    assert session.state == "pending" and call.state == "initiated"
    assert rec.names() == [("pendingSession", False), ("sessionStarted",)]
    session.accept(source=ToneSource(1100.0), sink=BufferSink())
    call.wait_state("connected", timeout=15)
    check_audio(session, call, 1100.0)
    with pytest.raises(pcw.SessionStateError):
        session.accept()
    with sdk.expect_event("sessionEnded"):
        session.end()
    wait_sequence(rec, connected_sequence(False) + ENDED)


def test_accept_pending_session_can_defer_connecting(emulator, make_sdk):
    sdk = make_sdk()
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=480.0)
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(ev.value.id, source=ToneSource(960.0), sink=BufferSink(),
                                   auto_connect_session=False)
    session = started.value
    time.sleep(0.3)
    assert session.state == "pending"
    session.accept()  # the source and sink given to accept_pending_session are used
    call.wait_state("connected", timeout=15)
    check_audio(session, call, 960.0)


def test_end_session_without_conversation_falls_back_to_jingle_terminate(emulator, make_sdk):
    sdk = make_sdk()
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call()
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(ev.value.id, source=ToneSource(700.0), sink=BufferSink())
    session = started.value
    call.wait_state("connected", timeout=15)
    # Make REST fail: a token the API refuses, so the SDK must say goodbye over Jingle itself.
    sdk.set_access_token("revoked")
    with sdk.expect_event("sessionEnded") as ended:
        sdk.end_session(id=session.id)
    assert ended.args[1] == "success"
    wait_until(lambda: call.state == "ended", 10, "call ended at the gateway")
    assert call.terminated_by_client


def test_bad_token_is_an_authentication_error(emulator, make_sdk):
    sdk = make_sdk(initialize=False, access_token="not-the-token")
    with pytest.raises(pcw.AuthenticationError) as info:
        sdk.initialize(timeout=10)
    assert info.value.status == 401
    assert "401" in str(info.value)
    assert not sdk.connected


def test_unreachable_host_is_a_connection_error(make_sdk):
    sdk = make_sdk(initialize=False, api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")
    with pytest.raises(pcw.ConnectionFailedError):
        sdk.initialize(timeout=20)


def test_wire_shape_of_an_answered_call(emulator, make_sdk):
    """What the SDK puts on the wire follows docs/protocol.rst §3–§5 and §10."""
    sdk = make_sdk()
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call()
    with sdk.expect_event("sessionStarted"):
        sdk.accept_pending_session(ev.value.id, source=ToneSource(700.0), sink=BufferSink())
    call.wait_state("connected", timeout=15)
    sent = [text for direction, text in emulator.stanzas() if direction == "in"]
    joined = "\n".join(sent)
    if emulator.sdp_over_xmpp:
        # JSON-RPC: answer, then one iceCandidate per candidate plus the end marker, then info active.
        assert call.rpc_log[0] == "answer" and call.rpc_log.count("info") == 1
        assert call.rpc_log[1:-1] == ["iceCandidate"] * (len(call.rpc_log) - 2) and len(call.rpc_log) >= 3
        assert '"a=end-of-candidates\\r\\n"' in joined and "urn:xmpp:jingle:1" not in joined
        assert joined.index("<proceed") < joined.index("<accept") < joined.index('"method": "answer"')
        return
    # SASL PLAIN, a bind with our resource, both XEP-0215 queries.
    assert 'mechanism="PLAIN"' in joined
    assert f"<resource>{sdk.jid.split('/')[1]}</resource>" in joined
    assert 'type="turn"' in joined and 'type="stun"' in joined
    order = [t for t in sent if "jingle-message" in t or "urn:xmpp:jingle:1" in t]
    kinds = []
    for text in order:
        for marker in ("<proceed", "<accept", 'action="session-accept"', 'action="transport-info"',
                       'action="session-info"', "<iq"):
            if marker in text:
                kinds.append(marker)
                break
    # proceed, then (after session-initiate) accept to our bare JID, then session-accept, candidates, EOC, active.
    assert kinds[0] == "<proceed" and kinds[1] == "<accept" and kinds[2] == 'action="session-accept"'
    assert kinds.count('action="session-info"') == 1
    accept_text = next(t for t in sent if 'action="session-accept"' in t)
    assert "<candidate" not in accept_text and "senders=" not in accept_text
    assert any("<gathering-complete/>" in t for t in sent)
    proceed_text = next(t for t in sent if "<proceed" in t)
    assert 'type="' not in proceed_text.split(">")[0]


def test_codec_preferences_choose_what_is_sent_with_audio_both_ways(emulator, make_sdk):
    """``codec_preferences=("PCMU", ...)`` against the gateway's Opus-first offer: the answer leads with PCMU,
    telephone-event at 8 kHz, and the tones still cross both ways (docs/protocol.rst §4.10)."""
    sdk = make_sdk(default_source=ToneSource(700.0), default_sink=BufferSink(), codec_preferences=("PCMU", "opus"))
    with sdk.expect_event("sessionStarted") as started:
        call = emulator.inbound_call(auto_answer=True, tone_hz=500.0)
    session = started.value
    call.wait_state("connected", timeout=15)
    audio = next(line for line in session.local_sdp.splitlines() if line.startswith("m=audio"))
    assert audio.split()[3] == "0", audio
    assert "telephone-event/8000" in session.local_sdp
    check_audio(session, call, 700.0)
    with sdk.expect_event("sessionEnded"):
        call.hangup()
