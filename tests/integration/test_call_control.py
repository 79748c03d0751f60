"""Call control and conversation events against the emulator, in both negotiation modes."""

from __future__ import annotations

import threading

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.media import BufferSink, ToneSource

from helpers import answer_call, wait_until


@pytest.fixture(params=["jingle", "sdp-over-xmpp"])
def emulator(request):
    from purecloud_webrtc.emulator import Emulator

    with Emulator(sdp_over_xmpp=request.param == "sdp-over-xmpp") as emu:
        yield emu


answer = answer_call


def test_start_softphone_session_is_correlated_by_conversation_id(emulator, make_sdk):
    sdk = make_sdk(default_source=ToneSource(660.0), default_sink=BufferSink())
    conversation_id = sdk.start_softphone_session(phone_number="+13175550123")
    session = sdk.wait_for_session(conversation_id)  # whether it started before or after the REST answer
    assert session.conversation_id == conversation_id
    call = emulator.call_by_conversation(conversation_id)
    call.wait_state("connected", timeout=15)
    call.wait_for_audio(timeout=10, min_seconds=0.5)
    assert abs(call.heard_frequency(0.5) - 660.0) <= 5
    assert sdk.wait_for_session(conversation_id) is session  # already there: returned at once
    with pytest.raises(pcw.UsageError):
        sdk.start_softphone_session()


def test_reject_pending_session_declines_by_rest_and_xmpp(emulator, make_sdk):
    sdk = make_sdk()
    cancelled = []
    sdk.on("cancelPendingSession", cancelled.append)
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call()
    sdk.reject_pending_session(ev.value.id)
    wait_until(lambda: call.state in ("retracted", "ended"), 10, "the call to be declined")
    # To the proposer and to our own bare JID (other devices stop ringing).
    wait_until(lambda: len([t for d, t in emulator.stanzas() if d == "in" and "<reject" in t]) == 2, 5, "2 rejects")
    assert any(m == "PATCH" for m, p, s in emulator.rest_log)
    assert sdk.pending_sessions == [] and cancelled == []
    with pytest.raises(pcw.SessionNotFoundError):
        sdk.reject_pending_session(ev.value.id)


def test_hold_and_mute_reach_the_participant_and_come_back_as_conversation_events(emulator, make_sdk):
    sdk = make_sdk()
    updates = []
    lock = threading.Lock()

    def on_update(update):
        with lock:
            updates.append(update)

    sdk.on("conversationUpdate", on_update)
    session, call = answer(sdk, emulator)
    agent = lambda: call.participants[1]  # noqa: E731
    sdk.set_conversation_held(session.conversation_id, True)
    assert agent()["held"] is True
    wait_until(lambda: any(u.my_participant and u.my_participant["held"] for u in list(updates)), 5, "held event")
    sdk.set_conversation_held(session.conversation_id, False)
    assert agent()["held"] is False
    sdk.set_audio_mute(session, True)
    assert agent()["muted"] is True
    wait_until(lambda: any(u.my_participant and u.my_participant["muted"] for u in list(updates)), 5, "mute event")
    with sdk.expect_event("sessionEnded"):
        call.hangup()
    wait_until(lambda: updates and updates[-1].state == "disconnected", 5, "the last event")
    states = []
    for u in updates:
        assert u.conversation_id == session.conversation_id
        if not states or states[-1] != u.state:
            states.append(u.state)
    assert states[0] in ("alerting", "connected") and states[-1] == "disconnected" and "connected" in states


def test_fetch_users_station(emulator, make_sdk):
    sdk = make_sdk()
    station = sdk.fetch_users_station()
    assert station["id"] == emulator.user.station_id


def test_conversation_events_can_be_turned_off(emulator, make_sdk):
    sdk = make_sdk(subscribe_conversations=False)
    updates = []
    sdk.on("conversationUpdate", updates.append)
    session, call = answer(sdk, emulator)
    with sdk.expect_event("sessionEnded"):
        call.hangup()
    assert updates == []
    assert not any("pubsub" in t for d, t in emulator.stanzas() if d == "in")


def test_dtmf_in_band_both_ways_and_by_rest(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer(sdk, emulator)
    heard = []
    session.on("dtmf", lambda s, digit: heard.append(digit))
    # SDK -> far end: tone pairs in our audio, found by the emulator's Goertzel detector.
    assert session.send_dtmf("159#*0D", method="inband") == "inband"
    wait_until(lambda: call.heard_dtmf() == "159#*0D", 10, "the far end to hear the digits")
    # Far end -> SDK: its tone pairs, found by ours and emitted as session events.
    call.send_dtmf("4567*")
    wait_until(lambda: "".join(heard) == "4567*", 10, f"dtmf events (got {heard})")
    # RFC 4733: telephone-event packets in the media, both ways ("auto" picks it once negotiated).
    assert session.send_dtmf("9*8#") == "rfc4733"
    wait_until(lambda: call.rfc4733_digits == list("9*8#"), 10, f"RFC 4733 at the far end ({call.rfc4733_digits})")
    heard.clear()
    call.send_dtmf("31A", method="rfc4733")
    wait_until(lambda: "".join(heard) == "31A", 10, f"RFC 4733 events at the SDK (got {heard})")
    # REST: the service plays them.
    assert session.send_dtmf("22", method="rest") == "rest"
    assert call.rest_digits == ["22"]
    with pytest.raises(ValueError, match="'x' is not a DTMF digit"):
        session.send_dtmf("1x")
    with pytest.raises(ValueError):
        session.send_dtmf("1", method="telepathy")
    # After the digits the far end's voice (its 440 Hz tone) comes back.
    wait_until(lambda: abs(session.sink.dominant_frequency(0.3) - 440.0) <= 5, 10, "the voice after the digits")


def test_the_mode_is_chosen_per_call_and_one_sdk_handles_both(make_sdk, emulator):
    sdk = make_sdk()
    for mode in (True, False, True):
        with sdk.expect_event("pendingSession") as ev:
            call = emulator.inbound_call(sdp_over_xmpp=mode, tone_hz=500.0)
        with sdk.expect_event("sessionStarted") as started:
            sdk.accept_pending_session(ev.value.id, source=ToneSource(1000.0), sink=BufferSink())
        call.wait_state("connected", timeout=15)
        assert bool(call.rpc_log) is mode and started.value._core_session.mode == ("rpc" if mode else "jingle")
        call.wait_for_audio(timeout=10, min_seconds=0.5)
        assert abs(call.heard_frequency(0.5) - 1000.0) <= 5
        with sdk.expect_event("sessionEnded"):
            call.hangup()
