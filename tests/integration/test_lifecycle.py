"""Lifecycle: close leaves nothing behind, disconnect and survivability, socket drops, media defaults."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.media import BufferSink, SilenceSource, ToneSource

from helpers import answer_call, wait_until


answer = answer_call


def pcw_threads():
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("pcw-"))


def test_close_during_a_call_ends_it_and_leaves_no_thread(emulator, make_sdk):
    before = pcw_threads()
    sdk = make_sdk()
    session, call = answer(sdk, emulator)
    names = pcw_threads()
    assert any(n.startswith("pcw-core-") for n in names) and any(n.startswith("pcw-ws-") for n in names)
    assert any(n.startswith("pcw-events-") for n in names)
    ended = []
    sdk.on("sessionEnded", lambda s, reason: ended.append(reason))
    sdk.close()
    assert pcw_threads() == before
    assert ended == ["success"]  # delivered before the events thread stopped
    wait_until(lambda: call.state == "ended", 10, "the gateway saw the hang-up")
    assert call.terminated_by_client
    sdk.close()  # idempotent
    assert sdk.state == "closed"


def test_context_manager_closes(emulator):
    before = pcw_threads()
    with pcw.PureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                streaming_base_url=emulator.streaming_base_url, ice_host_addresses=["127.0.0.1"]) as sdk:
        sdk.initialize()
        assert sdk.connected
    assert pcw_threads() == before


def test_all_candidates_are_loopback(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer(sdk, emulator)
    candidates = re.findall(r"a=candidate:\S+ \d \S+ \d+ (\S+) \d+ typ", session.local_sdp)
    assert candidates and set(candidates) == {"127.0.0.1"}
    # The only STUN server is the emulator's own responder on 127.0.0.1: no public one is ever added.
    assert sdk.ice_servers == [{"urls": emulator.stun_url}] and emulator.stun_url.startswith("stun:127.0.0.1:")


def test_disconnect_with_survivability_keeps_media_flowing(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer(sdk, emulator, tone=440.0, sdk_tone=880.0)
    with sdk.expect_event("disconnected") as ev:
        sdk.disconnect()
    assert ev.value["reconnecting"] is False and not sdk.connected
    frames = session.frames_received
    time.sleep(1.0)
    assert session.frames_received >= frames + 30  # ~50 frames/s keep coming
    assert not session.ended and sdk.sessions == [session]
    assert abs(session.sink.dominant_frequency(0.5) - 440.0) <= 5
    assert abs(call.heard_frequency(0.5) - 880.0) <= 5
    # Connect again: the same resource is bound, and the call can still be ended.
    with sdk.expect_event("connected") as ev:
        sdk.initialize()
    assert ev.value["jid"] == sdk.jid
    with sdk.expect_event("sessionEnded"):
        sdk.end_session(id=session.id)


def test_disconnect_without_survivability_ends_sessions(emulator, make_sdk):
    sdk = make_sdk(session_survivability=False)
    session, call = answer(sdk, emulator)
    with sdk.expect_event("sessionEnded") as ended:
        sdk.disconnect()
    assert ended.args[1] == "connectivity-error"
    assert session.ended and sdk.sessions == []


def test_socket_drop_reconnects_with_the_same_resource(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer(sdk, emulator)
    jid = sdk.jid
    with sdk.expect_event("disconnected") as down, sdk.expect_event("connected", timeout=20) as up:
        emulator.drop_connections()
    assert down.value["reconnecting"] is True
    assert up.value == {"reconnect": True, "jid": jid}
    # The call survived, and Jingle from the gateway still reaches the session after the reconnect.
    assert not session.ended
    with sdk.expect_event("sessionEnded") as ended:
        call.hangup()
    assert ended.args == (session, "success")


def test_socket_drop_without_survivability_ends_the_call(emulator, make_sdk):
    sdk = make_sdk(session_survivability=False)
    session, call = answer(sdk, emulator)
    with sdk.expect_event("sessionEnded") as ended, sdk.expect_event("connected", timeout=20):
        emulator.drop_connections()
    assert ended.args[1] == "connectivity-error"


def test_default_media_falls_back_with_a_warning_when_there_is_no_sound_device(emulator, make_sdk, caplog,
                                                                             monkeypatch):
    from purecloud_webrtc.media import _pyaudio

    def no_device(*args, **kwargs):
        raise _pyaudio.AudioDeviceError("no audio device (test)")

    monkeypatch.setattr(_pyaudio, "find_device", no_device)
    monkeypatch.setattr(_pyaudio, "_warned", set())
    sdk = make_sdk(default_source=None, default_sink=None)
    # Visible without logging configured too: a RuntimeWarning, once per process.
    with caplog.at_level(logging.WARNING), pytest.warns(RuntimeWarning, match="no microphone available"):
        session, call = answer(sdk, emulator, source=None, sink=None)
    assert isinstance(session.source, SilenceSource)
    assert type(session.sink).__name__ == "NullSink"
    assert "no audio device" in caplog.text or "PortAudio" in caplog.text
    call.wait_for_audio(timeout=10, min_seconds=0.5)  # silence still flows, nothing crashed
    assert session.connection_state == "connected"


def test_receive_only_answer_when_media_is_not_started(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer(sdk, emulator, source=None, auto_start_media=False)
    assert session.source is None
    assert "a=recvonly" in session.local_sdp
    assert session.sink.wait_for_duration(0.5, timeout=10)
    assert abs(session.sink.dominant_frequency(0.5) - 440.0) <= 5


def test_initialize_timeout_is_a_timeout_error(make_sdk):
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the TCP connection, never answers HTTP
    port = server.getsockname()[1]
    try:
        sdk = make_sdk(initialize=False, api_base_url=f"http://127.0.0.1:{port}",
                       streaming_base_url=f"ws://127.0.0.1:{port}", request_timeout=30)
        with pytest.raises(TimeoutError):
            sdk.initialize(timeout=1.0)
    finally:
        server.close()


class _CountingSink(BufferSink):
    """A BufferSink that counts its closes."""

    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


class _SlowSource(ToneSource):
    """A ToneSource whose close takes 0.6 s (a device being released), and counts its closes."""

    def __init__(self, hz: float) -> None:
        super().__init__(hz)
        self.closes = 0

    def close(self) -> None:
        time.sleep(0.6)
        self.closes += 1
        super().close()


@pytest.mark.parametrize("timeout", [10.0, 0.2])
def test_close_closes_what_calls_own_exactly_once_even_when_cut_short(emulator, make_sdk, timeout):
    """``close(timeout=0.2)`` with a source that takes 0.6 s to close cuts the call's teardown short: the
    sink's close was never reached (a hogged run left a PortAudio stream open that way, and later tests saw
    the real devices). Whatever a call owns is still closed, once."""
    sdk = make_sdk()
    source, sink = _SlowSource(880.0), _CountingSink()
    answer_call(sdk, emulator, source=source, sink=sink)
    sdk.close(timeout=timeout)
    assert sink.closes == 1
    wait_until(lambda: source.closes == 1, 5, "the slow source's close (still running after the deadline)")
    time.sleep(0.2)
    assert (source.closes, sink.closes) == (1, 1)
    assert getattr(sdk._core, "owned_media", set()) == set()
