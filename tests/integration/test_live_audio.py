"""Live audio of a call against the emulator: swap source and sink, mute (local + REST), levels, recording.

Everything runs through a real call (WebSocket, Jingle, DTLS-SRTP, Opus on 127.0.0.1); what the
far end hears is checked by FFT, and the session's SDP must not change (no renegotiation).
"""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path
from typing import Any, List, Optional, Tuple

import av
import numpy as np
import pytest

from purecloud_webrtc import SessionStateError, UsageError
from purecloud_webrtc.media import (
    AudioSink,
    BufferSink,
    SilenceSource,
    ToneSource,
    WavFileSource,
    dominant_frequency,
    frame_to_mono,
    rms_dbfs,
)

from helpers import wait_until

pytestmark = pytest.mark.timeout(90)

TOL = 5.0


def answer(sdk: Any, emulator: Any, source: Any, sink: Any, tone_hz: float = 440.0) -> Tuple[Any, Any]:
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=tone_hz)
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(ev.value.id, source=source, sink=sink)
    session = started.value
    call.wait_state("connected", timeout=15)
    return session, call


def far_end_hears(call: Any, frequency: float, what: str, timeout: float = 15) -> None:
    wait_until(lambda: abs(call.heard_frequency(0.4) - frequency) <= TOL, timeout, what)


def write_tone_wav(path: Path, frequency: float, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.rint(np.sin(2 * np.pi * frequency * t) * 0.3 * 32767).astype("<i2").tobytes())


def test_swap_source_and_sink_mid_call_without_renegotiation(emulator: Any, make_sdk: Any, tmp_path: Path) -> None:
    sdk = make_sdk()
    first_sink = BufferSink()
    session, call = answer(sdk, emulator, ToneSource(660.0), first_sink)
    states: List[str] = []
    session.on("change:connectionState", lambda s, state: states.append(state))
    sdp_before = session.local_sdp
    mic_like = session.source
    far_end_hears(call, 660.0, "the first tone")

    # A prompt played once, keeping the first source open to come back to it.
    prompt = tmp_path / "prompt.wav"
    write_tone_wav(prompt, 1000.0, 1.0)
    session.set_source(WavFileSource(prompt, loop=False), close_previous=False)
    far_end_hears(call, 1000.0, "the prompt")
    wait_until(lambda: session.source_ended, 10, "the prompt to end")
    wait_until(lambda: rms_dbfs(call._sink.samples(0.3)) < -60, 10, "silence after the prompt")
    assert not mic_like.closed
    session.set_source(mic_like)
    far_end_hears(call, 660.0, "the first source again")
    assert not session.source_ended

    # The sink too: the far end's tone now lands in the second buffer only.
    second_sink = BufferSink()
    session.set_sink(second_sink)
    assert session.sink is second_sink
    frames_then = first_sink.frames_received
    assert second_sink.wait_for_duration(0.6, timeout=10)
    assert dominant_frequency(second_sink.samples(0.5)) == pytest.approx(440.0, abs=TOL)
    assert first_sink.frames_received <= frames_then + 1  # at most the frame in flight

    # A spec (a WAV path) is resolved like accept_pending_session's; the previous source is closed.
    session.set_source(str(prompt))
    far_end_hears(call, 1000.0, "the WAV path")
    assert mic_like.closed
    assert session.local_sdp == sdp_before and states == [] and session.connection_state == "connected"
    with sdk.expect_event("sessionEnded"):
        session.end()
    with pytest.raises(SessionStateError, match="has ended"):
        session.set_source(SilenceSource())


def test_mute_sends_silence_and_patches_the_participant(emulator: Any, make_sdk: Any) -> None:
    sdk = make_sdk()
    session, call = answer(sdk, emulator, ToneSource(660.0), BufferSink())
    changes: List[bool] = []
    levels: List[Any] = []
    session.on("change:muted", lambda s, muted: changes.append(muted))
    session.on("audio_level", lambda s, level: levels.append(level))
    far_end_hears(call, 660.0, "the tone before mute")
    sdp_before = session.local_sdp

    def participant_muted() -> Optional[bool]:
        me = sdk.user["id"]
        return next(p.get("muted") for p in call.participants if p.get("user", {}).get("id") == me)

    assert participant_muted() is False
    sdk.set_audio_mute(session, True)
    assert session.muted and participant_muted() is True
    wait_until(lambda: rms_dbfs(call._sink.samples(0.3)) < -60, 10, "silence at the far end")
    # While muted the input level is still measured (a meter keeps moving) and flagged muted.
    wait_until(lambda: any(lv.muted and lv.input_dbfs > -20 for lv in levels), 5, "a muted level event")
    sdk.set_audio_mute(session.id, False)  # by id, as the call-control API names it
    assert not session.muted and participant_muted() is False
    far_end_hears(call, 660.0, "the tone after unmute")
    session.set_audio_mute(False)  # no change: no event
    wait_until(lambda: changes == [True, False], 5, "change:muted events")
    assert session.local_sdp == sdp_before
    # Level events keep coming (every 100 ms) with the far end's tone (amplitude 0.3: -13.5 dBFS sent,
    # about -16.5 dBFS after Opus's mono-to-stereo mix) as output level.
    count = len(levels)
    wait_until(lambda: len(levels) >= count + 5, 5, "more level events")
    loud = [lv.output_dbfs for lv in levels[-5:]]
    assert all(-22 < level < -10 for level in loud), loud
    with pytest.raises(UsageError):
        session.set_audio_mute("yes")  # type: ignore[arg-type]
    with sdk.expect_event("sessionEnded"):
        session.end()


class StampedSink(AudioSink):
    """Notes when each received frame passed the SDK, and its level: the reference for alignment."""

    def __init__(self) -> None:
        self.frames: List[Tuple[float, float]] = []
        self.lock = threading.Lock()

    def write(self, frame: av.AudioFrame) -> None:
        with self.lock:
            self.frames.append((time.monotonic(), rms_dbfs(frame_to_mono(frame))))

    def first_loud_after(self, t: float) -> float:
        with self.lock:
            return next(at for at, level in self.frames if at >= t and level > -40)


def onset(channel: np.ndarray, start: int = 0) -> int:
    """Index of the first sample after ``start`` above 1/10 of the channel's peak."""
    magnitude = np.abs(channel[start:].astype(np.int32))
    return start + int(np.argmax(magnitude > magnitude.max() / 10))


def test_call_recording_is_stereo_and_aligned(emulator: Any, make_sdk: Any, tmp_path: Path,
                                              record_property: Any) -> None:
    sdk = make_sdk()
    local = ToneSource(660.0, amplitude=0.0)
    stamps = StampedSink()
    session, call = answer(sdk, emulator, local, stamps, tone_hz=440.0)
    call.wait_for_audio(timeout=15, min_seconds=0.5)
    call.set_tone(amplitude=0.0)
    wait_until(lambda: len(stamps.frames) > 10 and all(level < -60 for _, level in stamps.frames[-10:]), 10,
               "the far end's silence to arrive")
    path = tmp_path / "call.wav"
    with pytest.raises(UsageError, match="not recording"):
        session.stop_recording()
    session.start_recording(path)
    with pytest.raises(UsageError, match="already recording"):
        session.start_recording(tmp_path / "other.wav")
    time.sleep(0.8)  # silence on both channels first
    # Both parties start talking at the same instant t0.
    t0 = time.monotonic()
    local.amplitude = 0.3
    call.set_tone(amplitude=0.3)
    wait_until(lambda: any(at >= t0 and level > -40 for at, level in list(stamps.frames)), 10, "the far end's tone")
    arrival = stamps.first_loud_after(t0)
    time.sleep(1.5)
    recording = session.stop_recording()
    assert recording.path == str(path) and recording.seconds > 2.0
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 48000)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert data.shape[0] / 48000 == pytest.approx(recording.seconds, abs=0.05)
    left, right = data[:, 0], data[:, 1]
    on_left, on_right = onset(left), onset(right)
    assert dominant_frequency(left[on_left + 4800 : on_left + 52800]) == pytest.approx(660.0, abs=TOL)
    assert dominant_frequency(right[on_right + 4800 : on_right + 52800]) == pytest.approx(440.0, abs=TOL)
    # Where the file puts the two onsets, versus when they passed the SDK (said at t0; heard at `arrival`).
    expected = arrival - t0
    measured = (on_right - on_left) / 48000
    error_ms = (measured - expected) * 1000
    record_property("recording_alignment_error_ms", round(error_ms, 1))
    print(f"recording: far end heard {expected * 1000:.1f} ms after local onset; file offset "
          f"{measured * 1000:.1f} ms; alignment error {error_ms:+.1f} ms")
    # The local block holding t0 may start up to one 20 ms frame before it; the far end's onset
    # can sit anywhere inside the first loud 20 ms frame.
    assert abs(error_ms) <= 45.0
    with sdk.expect_event("sessionEnded"):
        session.end()
    # The call's end would have stopped a running recording too; this one was already finished.
    assert session.stop_recording().path == str(path)


def test_recording_stops_with_the_call(emulator: Any, make_sdk: Any, tmp_path: Path) -> None:
    sdk = make_sdk()
    session, call = answer(sdk, emulator, ToneSource(660.0), BufferSink())
    session.start_recording(tmp_path / "whole.wav")
    call.wait_for_audio(timeout=15, min_seconds=0.5)
    time.sleep(0.5)
    with sdk.expect_event("sessionEnded"):
        call.hangup()
    recording = session.stop_recording()
    with wave.open(recording.path) as w:
        assert w.getnchannels() == 2 and w.getnframes() / 48000 == pytest.approx(recording.seconds, abs=0.01)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert recording.seconds > 0.5
    assert dominant_frequency(data[-24000:, 0]) == pytest.approx(660.0, abs=TOL)
    assert dominant_frequency(data[-24000:, 1]) == pytest.approx(440.0, abs=TOL)


def test_an_iterator_of_pcm_chunks_is_a_source() -> None:
    import asyncio

    from aiortc.mediastreams import MediaStreamError

    from purecloud_webrtc.media import CallbackSource, resolve_source

    def chunks():  # odd sizes, numpy and bytes mixed; 2000 samples in all
        yield np.full(700, 100, dtype=np.int16)
        yield np.full(300, 200, dtype="<i2").tobytes()
        yield np.full(1000, 300, dtype=np.int16)

    source = resolve_source(chunks())
    assert isinstance(source, CallbackSource)

    async def read() -> List[np.ndarray]:
        track = source.create_track()
        frames = []
        with pytest.raises(MediaStreamError):
            while True:
                frames.append(frame_to_mono(await track.recv()))
        return frames

    frames = asyncio.run(asyncio.wait_for(read(), 5))
    samples = np.concatenate(frames)
    assert [f.size for f in frames] == [960, 960, 960]  # the last one padded with silence
    assert list(samples[[0, 699, 700, 999, 1000, 1999, 2000]]) == [100, 100, 200, 200, 300, 300, 0]
    source.close()


def test_voice_activity_follows_the_far_end_talking_and_stops_when_nobody_listens(emulator: Any,
                                                                                     make_sdk: Any) -> None:
    sdk = make_sdk()
    session, call = answer(sdk, emulator, ToneSource(660.0), BufferSink(), tone_hz=440.0)
    call.set_tone(amplitude=0.0)
    changes: List[Tuple[float, bool]] = []
    session.on("voiceActivity", lambda s, speaking: changes.append((time.monotonic(), speaking)))
    call.wait_for_audio(timeout=15, min_seconds=1.0)
    time.sleep(0.5)
    assert changes == [], f"silence was taken for speech: {changes}"
    for _ in range(2):  # the far end talks for a second, then is quiet for a second
        call.set_tone(amplitude=0.3)
        wait_until(lambda: changes and changes[-1][1] is True, 5, "voiceActivity(True)")
        time.sleep(1.0)
        quiet = time.monotonic()
        call.set_tone(amplitude=0.0)
        wait_until(lambda: changes[-1][1] is False, 5, "voiceActivity(False)")
        # The hangover (300 ms) plus the way from the far end to us: well under a second.
        assert 0.25 < changes[-1][0] - quiet < 1.0, changes[-1][0] - quiet
    assert [speaking for _, speaking in changes] == [True, False, True, False]
    # Nobody listens any more: the detector does not run (and nothing is emitted).
    session.off("voiceActivity")
    assert session._core_session.media.vad.floor_dbfs is not None
    call.set_tone(amplitude=0.3)
    wait_until(lambda: session._core_session.media.vad.floor_dbfs is None, 5, "the detector to stop")
    assert len(changes) == 4


def test_voice_activity_from_webrtcs_detector_ignores_a_steady_tone(emulator: Any, make_sdk: Any) -> None:
    pytest.importorskip("pywebrtc_audio", reason="the voice extra is in the test extra")
    from purecloud_webrtc.media import VadConfig, WebrtcVad

    sdk = make_sdk(voice_activity=VadConfig(backend="webrtc"))
    session, call = answer(sdk, emulator, ToneSource(660.0), BufferSink(), tone_hz=440.0)
    changes: List[bool] = []
    session.on("voiceActivity", lambda s, speaking: changes.append(speaking))
    call.wait_for_audio(timeout=15, min_seconds=1.0)
    vad = session._core_session.media.vad
    assert isinstance(vad, WebrtcVad)
    time.sleep(2.0)  # a steady 440 Hz tone as loud as speech: the energy detector would call it speech
    assert not vad.speaking and 0.0 < vad.probability < 0.5, (vad.probability, changes)
    session.off("voiceActivity")
