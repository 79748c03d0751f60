"""Our jitter buffer in real calls: through a lossy UDP relay of our own, and turned off."""

from __future__ import annotations

import threading
from typing import List

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.media import BufferSink, ToneSource
from purecloud_webrtc.quality import CallStats

from helpers import wait_until
from lossrelay import LossRelay


@pytest.fixture
def relay(monkeypatch):
    """A 5 % loss relay between the SDK (A) and the emulator's far end (B), spliced into ICE by rewriting
    the candidates each side parses (both sides trickle, so both go through ``candidate_from_sdp``)."""
    from aiortc.sdp import candidate_from_sdp

    import purecloud_webrtc.emulator.party as party
    import purecloud_webrtc._session_media as session_media

    with LossRelay(loss=0.05, impaired=("b->a",), seed=3, max_seconds=120) as r:
        monkeypatch.setattr(session_media, "candidate_from_sdp",
                            lambda text: r.rewrite(candidate_from_sdp(text), "a"))
        monkeypatch.setattr(party, "candidate_from_sdp", lambda text: r.rewrite(candidate_from_sdp(text), "b"))
        yield r


@pytest.mark.timeout(90)
def test_call_through_a_lossy_relay_keeps_audio_flowing(emulator, make_sdk, relay):
    sdk = make_sdk(default_source=ToneSource(660.0), default_sink=BufferSink(), stats_interval=0.5)
    stats_events: List[CallStats] = []
    got = threading.Event()

    @sdk.on("sessionStarted")
    def started(session: pcw.Session) -> None:
        @session.on("stats")
        def on_stats(_session: pcw.Session, stats: CallStats) -> None:
            stats_events.append(stats)
            got.set()

    with sdk.expect_event("sessionStarted") as ev:
        call = emulator.inbound_call(auto_answer=True, tone_hz=440.0, trickle=True)
    session = ev.value
    call.wait_state("connected", timeout=15)
    wait_until(lambda: relay.stats["b->a"].dropped >= 10, 30, "the relay to drop packets")
    assert session.sink.wait_for_duration(3.0, timeout=20)
    # Audio keeps flowing through the losses: the tone is heard, and frames kept coming at 50/s.
    assert abs(session.sink.dominant_frequency(last_seconds=2.0) - 440.0) <= 5.0
    assert abs(call.heard_frequency(seconds=1.0) - 660.0) <= 5.0
    stats = session.get_stats()
    assert stats.jitter_buffer and stats.codec and stats.codec.startswith("opus/48000")
    assert stats.packets_lost > 0 and stats.concealed_ms > 0 and stats.concealment_events > 0
    assert stats.packets_received > 100 and stats.mos is not None and 1.0 <= stats.mos <= 5.0
    # Latency does not grow with loss: the buffer stays shallow.
    assert 0.0 <= stats.jitter_buffer_max_depth_ms <= 150.0
    assert got.wait(10) and all(isinstance(s, CallStats) for s in stats_events)
    frames = session.frames_received
    wait_until(lambda: session.frames_received >= frames + 40, 10, "frames to keep coming")
    with sdk.expect_event("sessionEnded"):
        call.hangup()
    assert session.get_stats() is not None  # the last snapshot survives the call
    assert relay.stats["b->a"].dropped >= 10 and relay.stats["a->b"].dropped == 0


@pytest.mark.timeout(60)
def test_jitter_buffer_can_be_turned_off(emulator, make_sdk):
    sdk = make_sdk(default_source=ToneSource(660.0), default_sink=BufferSink(), jitter_buffer=False)
    with sdk.expect_event("sessionStarted") as ev:
        call = emulator.inbound_call(auto_answer=True, tone_hz=440.0)
    session = ev.value
    call.wait_state("connected", timeout=15)
    assert session.sink.wait_for_duration(1.2, timeout=15)
    assert abs(session.sink.dominant_frequency(last_seconds=1.0) - 440.0) <= 5.0
    stats = session.get_stats()
    assert not stats.jitter_buffer and stats.concealed_ms == 0.0
    wait_until(lambda: session.get_stats().packets_received > 0, 10, "aiortc's statistics")
    with sdk.expect_event("sessionEnded"):
        call.hangup()

