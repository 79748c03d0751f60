"""The emulator behaves like the service where clients that follow the official behaviour depend on it
(docs/protocol.rst §2.8, §5 and §11).

- It runs a STUN responder on 127.0.0.1 and advertises it over XEP-0215 by default, so a client that
  gathers relay candidates only when no STUN server is offered (the official rule; our
  ``relay_without_stun=True``) still gets audio with the emulator's default settings.
- In SDP-over-XMPP mode its ``iceCandidate`` requests to the client are all in the service's
  ``m={mid} 9 RTP/AVP 0`` form (before, an ``a=end-of-candidates`` fragment had no m= line).
- It keeps its IQs until the client's result arrives, also after the call ended (before, the
  session-terminate's result arrived as "unsolicited").
- It applies a client's candidates that come after its end-of-candidates.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from aioice import stun

from purecloud_webrtc import _xml
from purecloud_webrtc.emulator import Emulator
from purecloud_webrtc.media import BufferSink, ToneSource

from helpers import wait_until

TOL = 5.0


def test_default_emulator_advertises_and_answers_its_own_stun_server(make_sdk, emulator):
    assert emulator.stun_url is not None and emulator.stun_url.startswith("stun:127.0.0.1:")
    sdk = make_sdk()
    assert sdk.ice_servers == [{"urls": emulator.stun_url}]
    port = int(emulator.stun_url.rsplit(":", 1)[1])
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.sendto(bytes(request), ("127.0.0.1", port))
        data, _ = sock.recvfrom(2048)
        response = stun.parse_message(data)
        assert response.transaction_id == request.transaction_id
        assert response.message_class == stun.Class.RESPONSE
        assert response.attributes["XOR-MAPPED-ADDRESS"] == sock.getsockname()
        sock.sendto(b"not stun at all", ("127.0.0.1", port))  # ignored, and the responder goes on
        sock.sendto(bytes(request), ("127.0.0.1", port))
        assert stun.parse_message(sock.recvfrom(2048)[0]).transaction_id == request.transaction_id


@pytest.mark.parametrize("sdp_over_xmpp", [False, True], ids=["jingle", "sdp-over-xmpp"])
def test_the_official_relay_rule_gets_audio_with_the_default_emulator(sdp_over_xmpp):
    """``relay_without_stun=True`` is the official client's rule; with the emulator's defaults the call has
    audio both ways, and the client did ask the emulator's STUN server."""
    with Emulator(sdp_over_xmpp=sdp_over_xmpp) as emu:
        from conftest import SdkFactory

        factory = SdkFactory(emu)
        try:
            sdk = factory(relay_without_stun=True, default_source=ToneSource(700.0), default_sink=BufferSink())
            assert sdk._core.ice_transport_policy == "all"
            with sdk.expect_event("sessionStarted") as started:
                call = emu.inbound_call(auto_answer=True, tone_hz=500.0)
            session = started.value
            call.wait_state("connected", timeout=15)
            call.wait_for_audio(timeout=15, min_seconds=1.0)
            assert session.sink.wait_for_duration(1.2, timeout=15)
            assert abs(session.sink.dominant_frequency(last_seconds=1.0) - 500.0) <= TOL
            assert abs(call.heard_frequency(seconds=1.0) - 700.0) <= TOL
            assert emu.stun_requests_answered > 0
            with sdk.expect_event("sessionEnded"):
                call.hangup()
        finally:
            factory.close()


def test_without_stun_the_official_rule_means_relay_only():
    with Emulator(stun=False) as emu:
        from conftest import SdkFactory

        factory = SdkFactory(emu)
        try:
            assert factory(relay_without_stun=True)._core.ice_transport_policy == "relay"
            assert factory()._core.ice_transport_policy == "all"  # our default keeps host candidates
        finally:
            factory.close()


def _rpc_requests(emu: Emulator, method: str) -> list:
    found = []
    for direction, text in emu.stanzas():
        if direction != "out" or "genesys-webrtc" not in text:
            continue
        for el in _xml.parse(text).iter("{genesys}genesys-webrtc"):
            body = json.loads(el.text or "{}")
            if body.get("method") == method:
                found.append(body["params"])
    return found


def test_sdp_over_xmpp_candidates_come_in_the_service_form_only():
    with Emulator(sdp_over_xmpp=True) as emu:
        from conftest import SdkFactory

        factory = SdkFactory(emu)
        try:
            sdk = factory(default_source=ToneSource(700.0), default_sink=BufferSink())
            with sdk.expect_event("sessionStarted"):
                call = emu.inbound_call(auto_answer=True)
            call.wait_state("connected", timeout=15)
            candidates = _rpc_requests(emu, "iceCandidate")
            assert candidates, "the emulator trickles its candidates by default"
            for params in candidates:
                lines = params["sdp"].split("\r\n")
                assert lines[0].startswith("m=") and lines[0].endswith(" 9 RTP/AVP 0"), params
                assert lines[1].startswith("a=candidate:") and lines[2:] == [""], params
            with sdk.expect_event("sessionEnded"):
                call.hangup()
        finally:
            factory.close()


def test_the_gateway_keeps_its_iqs_until_their_results_arrive(make_sdk, emulator):
    """The far end hangs up: its session-terminate's result comes after the call ended, and is expected."""
    sdk = make_sdk(default_source=ToneSource(700.0), default_sink=BufferSink())
    for _ in range(3):
        with sdk.expect_event("sessionStarted"):
            call = emulator.inbound_call(auto_answer=True)
        call.wait_state("connected", timeout=15)
        with sdk.expect_event("sessionEnded"):
            call.hangup()
    terminates = sum(1 for d, text in emulator.stanzas() if d == "out" and 'action="session-terminate"' in text)
    assert terminates == 3
    # The SDK answers each terminate; every answer must meet a waiting IQ.
    wait_until(lambda: sum(1 for d, t in emulator.stanzas() if d == "in" and 'type="result"' in t) > 0, 5, "results")
    time.sleep(0.5)
    assert emulator.unsolicited_iq_results == []


def test_candidates_after_end_of_candidates_are_applied(make_sdk, emulator):
    sdk = make_sdk(default_source=ToneSource(700.0), default_sink=BufferSink())
    with sdk.expect_event("sessionStarted"):
        call = emulator.inbound_call(auto_answer=True, tone_hz=500.0)
    call.wait_state("connected", timeout=15)
    loop = emulator._loop

    async def late() -> None:
        await call._add_candidate("0", None)
        await call._add_candidate("0", "candidate:9 1 udp 2122260223 127.0.0.1 9 typ host")

    asyncio.run_coroutine_threadsafe(late(), loop).result(5)
    assert call.candidates_after_end == 1
    time.sleep(call.EOC_GRACE + 0.5)  # the end is then passed on; the call goes on
    assert call.state == "connected"
    with sdk.expect_event("sessionEnded"):
        call.hangup()


def test_an_ice_restart_in_jingle_mode_keeps_the_call(make_sdk, emulator, tmp_path):
    """The far end restarts ICE (XEP-0176 transport-info with new credentials): the same session object
    carries on, with its source, sink, events and recording, and audio flows both ways again. aiortc
    cannot restart ICE, so the media is re-established on a new peer connection under the session."""
    sdk = make_sdk(default_source=ToneSource(700.0), default_sink=BufferSink())
    with sdk.expect_event("sessionStarted") as started:
        call = emulator.inbound_call(auto_answer=True, tone_hz=500.0)
    session = started.value
    call.wait_state("connected", timeout=15)
    wait_until(lambda: session.connection_state == "connected", 10, "connected")
    ended = []
    sdk.on("sessionEnded", lambda s, reason: ended.append(reason))
    sink, first_ufrag = session.sink, session._core_session.local_ufrag
    session.start_recording(tmp_path / "call.wav")
    before = time.monotonic()
    call.restart_ice()
    # The far end's new media hears us again; we hear its new tone track through the same sink.
    call.wait_for_audio(timeout=15, min_seconds=1.0)
    assert abs(call.heard_frequency(seconds=1.0) - 700.0) <= TOL
    sink.clear()
    assert sink.wait_for_duration(1.2, timeout=15)
    assert abs(sink.dominant_frequency(last_seconds=1.0) - 500.0) <= TOL
    core = session._core_session
    assert core.restarts == 1 and session.sink is sink and not session.ended and ended == []
    assert sdk.sessions == [session] and session.id == call.session_id
    assert core.local_ufrag is not None and core.local_ufrag != first_ufrag
    # Our new credentials went out in a transport-info with a pwd and our (unchanged) fingerprint.
    infos = [t for d, t in emulator.stanzas() if d == "in" and 'action="transport-info"' in t and "pwd=" in t]
    assert infos and "fingerprint" in infos[-1]
    recording = session.stop_recording()  # one recording across the restart
    assert recording.seconds >= 0.8 * (time.monotonic() - before) - 1.0, recording
    with sdk.expect_event("sessionEnded"):
        call.hangup()


@pytest.mark.parametrize("action,body,condition", [
    ("content-add", '<content creator="initiator" name="v"><description xmlns="urn:xmpp:jingle:apps:rtp:1" '
                    'media="video"/></content>', "feature-not-implemented"),
    ("transport-replace", '<content creator="initiator" name="0"/>', "feature-not-implemented"),
    ("description-info", '<content creator="initiator" name="0"/>', "feature-not-implemented"),
    ("session-initiate", '<content creator="initiator" name="0"/>', "unexpected-request"),
])
def test_other_renegotiations_are_refused_and_the_call_goes_on(make_sdk, emulator, action, body, condition):
    """Renegotiations we do not support get XEP-0166's answer; never a second session, and the call goes on."""
    sdk = make_sdk(default_source=ToneSource(700.0), default_sink=BufferSink())
    with sdk.expect_event("sessionStarted") as started:
        call = emulator.inbound_call(auto_answer=True, tone_hz=500.0)
    session = started.value
    call.wait_state("connected", timeout=15)
    client = emulator.connected_resources()[0]
    emulator.send_raw(f'<iq xmlns="jabber:client" type="set" id="reneg-1" from="{call.gateway_jid}" to="{client}">'
                      f'<jingle xmlns="urn:xmpp:jingle:1" action="{action}" sid="{call.session_id}">{body}</jingle></iq>')

    def reply() -> str:
        return next((t for d, t in emulator.stanzas() if d == "in" and 'id="reneg-1"' in t), "")

    wait_until(lambda: reply() != "", 5, f"the reply to {action}")
    assert 'type="error"' in reply() and f"<{condition}" in reply(), reply()
    assert sdk.sessions == [session] and not session.ended
    session.sink.clear()
    assert session.sink.wait_for_duration(1.0, timeout=10)
    assert abs(session.sink.dominant_frequency(last_seconds=0.8) - 500.0) <= TOL
    with sdk.expect_event("sessionEnded"):
        call.hangup()


def test_an_ice_restart_that_cannot_bring_the_media_back_ends_the_call_loudly(make_sdk, emulator, monkeypatch):
    """If re-establishing the media fails, the call ends (failed-application) with an ``error`` event."""
    import purecloud_webrtc as pcw
    from purecloud_webrtc._session_media import SessionMedia

    sdk = make_sdk(default_source=ToneSource(700.0), default_sink=BufferSink())
    with sdk.expect_event("sessionStarted"):
        call = emulator.inbound_call(auto_answer=True)
    call.wait_state("connected", timeout=15)
    errors = []
    sdk.on("error", lambda error, details: errors.append(error))

    async def broken(self, offer):  # type: ignore[no-untyped-def]
        raise RuntimeError("no media for you")

    monkeypatch.setattr(SessionMedia, "restart", broken)
    with sdk.expect_event("sessionEnded", timeout=15) as ended:
        call.restart_ice()
    assert ended.args[1] == "failed-application"
    wait_until(lambda: any(isinstance(e, pcw.MediaError) and "ICE restart failed" in str(e) for e in errors), 5,
               f"the error event (got {errors})")
    call.wait_state("ended", timeout=15)
