"""Tests of purecloud_webrtc.media: sources, sinks, analysis, device access.

Real components wherever they exist here: real aiortc tracks, real PyAV
decoding/resampling, real Opus over DTLS-SRTP between two peers on 127.0.0.1.
PortAudio has no device on this machine, so the pyaudio paths run against a
fake pyaudio module (and the real "no device" fallback is checked too).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import os
import re
import sys
import threading
import time
import types
import wave
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack

from purecloud_webrtc import _ice
from purecloud_webrtc import media
from purecloud_webrtc.media import _pyaudio, sources
from purecloud_webrtc.media import (
    AudioDevice,
    AudioDeviceError,
    AudioSink,
    AudioSource,
    BufferSink,
    CallbackSink,
    CallbackSource,
    MicrophoneSource,
    MultiSink,
    NullSink,
    SilenceSource,
    SinkPump,
    SpeakerSink,
    ToneSource,
    TrackSource,
    WavFileSource,
    WavRecorderSink,
    dominant_frequency,
    frame_to_mono,
    resolve_sink,
    resolve_source,
    rms_dbfs,
)

from fake_pyaudio import DEVICES, FakePyAudio, FakeStream  # noqa: F401

pytestmark = pytest.mark.timeout(10)

RATE = 48000


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves one of the package's threads (``pcw-*``) running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.name.startswith("pcw-") and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def tone(freq: float, seconds: float, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def stereo_frames(freq: float, seconds: float, rate: int = RATE, frame_samples: int = 960) -> list[av.AudioFrame]:
    """Frames shaped like aiortc's Opus receiver output: s16 packed stereo."""
    mono = np.rint(tone(freq, seconds, rate) * 32767).astype(np.int16)
    frames = []
    for i in range(0, mono.size - frame_samples + 1, frame_samples):
        chunk = mono[i : i + frame_samples]
        data = np.repeat(chunk, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        frame.sample_rate = rate
        frame.pts = i
        frame.time_base = fractions.Fraction(1, rate)
        frames.append(frame)
    return frames


def write_wav(path: Path, rate: int, channels: int, sampwidth: int, freq: float, seconds: float) -> None:
    x = tone(freq, seconds, rate)
    data = np.repeat(x[:, None], channels, axis=1)
    if channels == 2:
        data[:, 1] *= 0.5  # channels differ; the mix keeps the frequency
    if sampwidth == 1:
        raw = np.clip(np.rint(data * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    elif sampwidth == 2:
        raw = np.rint(data * 32767).astype("<i2").tobytes()
    elif sampwidth == 3:
        ints = np.rint(data * (2**23 - 1)).astype("<i4").reshape(-1)
        raw = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = np.rint(data * (2**31 - 1)).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        w.writeframes(raw)


def unpace(track: MediaStreamTrack, monkeypatch: pytest.MonkeyPatch, seconds: float = 60.0) -> None:
    """Make a generated track's next ``seconds`` of frames due at once (keeps tests fast)."""
    monkeypatch.setattr(sources, "MAX_LAG_SECONDS", 1e9)
    track._start = time.monotonic() - seconds  # type: ignore[attr-defined]


async def read_frames(track: MediaStreamTrack, n: int) -> list[av.AudioFrame]:
    frames = []
    for _ in range(n):
        frame = await track.recv()
        assert isinstance(frame, av.AudioFrame)
        frames.append(frame)
    return frames


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def frame_samples(frames: list[av.AudioFrame]) -> np.ndarray:
    return np.concatenate([frame_to_mono(f) for f in frames])


# ---------------------------------------------------------------- analysis


@pytest.mark.parametrize("freq", [440.0, 1000.0, 1633.0, 3141.5])
def test_dominant_frequency_int16_and_float(freq: float) -> None:
    x = tone(freq, 1.0)
    assert dominant_frequency(x) == pytest.approx(freq, abs=0.1)
    assert dominant_frequency(np.rint(x * 32767).astype(np.int16)) == pytest.approx(freq, abs=0.1)
    # A short block (10 Hz bins) still lands within a couple of Hz.
    assert dominant_frequency(x[:4800]) == pytest.approx(freq, abs=2.0)


def test_dominant_frequency_other_rates_and_shapes() -> None:
    assert dominant_frequency(tone(1000, 0.5, 8000), 8000) == pytest.approx(1000, abs=0.5)
    stereo = np.stack([tone(700, 0.5), tone(700, 0.5)], axis=1)
    assert dominant_frequency(stereo) == pytest.approx(700, abs=0.5)
    raw = np.rint(tone(500, 0.5) * 32767).astype("<i2").tobytes()
    assert dominant_frequency(raw) == pytest.approx(500, abs=0.5)


def test_dominant_frequency_silence_and_empty() -> None:
    assert dominant_frequency(np.zeros(48000, dtype=np.int16)) == 0.0
    assert dominant_frequency(np.full(48000, 1000, dtype=np.int16)) == 0.0  # DC only
    assert dominant_frequency(np.zeros(0)) == 0.0
    assert dominant_frequency(np.array([1, 2], dtype=np.int16)) == 0.0


def test_rms_dbfs() -> None:
    assert rms_dbfs(tone(1000, 1.0, amplitude=1.0)) == pytest.approx(-3.0103, abs=0.01)
    assert rms_dbfs(np.rint(tone(1000, 1.0, amplitude=0.5) * 32767).astype(np.int16)) == pytest.approx(
        -9.03, abs=0.02
    )
    assert rms_dbfs(np.zeros(100, dtype=np.int16)) == float("-inf")
    assert rms_dbfs(np.zeros(0)) == media.SILENCE_DBFS == float("-inf")


def test_frame_to_mono_layouts() -> None:
    left = np.arange(960, dtype=np.int16)
    right = -left
    packed = np.stack([left, left], axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
    np.testing.assert_array_equal(frame_to_mono(frame), left)

    mixed = av.AudioFrame.from_ndarray(np.stack([left, right], axis=1).reshape(1, -1), format="s16", layout="stereo")
    np.testing.assert_array_equal(frame_to_mono(mixed), np.zeros(960, dtype=np.int16))

    mono = av.AudioFrame.from_ndarray(left.reshape(1, -1), format="s16", layout="mono")
    np.testing.assert_array_equal(frame_to_mono(mono), left)

    planar = av.AudioFrame.from_ndarray(np.stack([left, left]), format="s16p", layout="stereo")
    np.testing.assert_array_equal(frame_to_mono(planar), left)

    floats = (left / 32768.0).astype(np.float32)
    fltp = av.AudioFrame.from_ndarray(np.stack([floats, floats]), format="fltp", layout="stereo")
    np.testing.assert_array_equal(frame_to_mono(fltp), left)
    for result in (frame_to_mono(frame), frame_to_mono(fltp)):
        assert result.dtype == np.int16 and result.shape == (960,)


# ---------------------------------------------------------------- sources


def test_tone_frames_shape_and_pts(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> list[av.AudioFrame]:
        track = ToneSource(440).create_track()
        assert track.kind == "audio"
        first = await read_frames(track, 1)
        unpace(track, monkeypatch)
        return first + await read_frames(track, 9)

    frames = run(main())
    for i, frame in enumerate(frames):
        assert frame.samples == 960
        assert frame.sample_rate == 48000
        assert frame.format.name == "s16"
        assert frame.layout.name == "mono"
        assert frame.time_base == fractions.Fraction(1, 48000)
        assert frame.pts == i * 960


def test_tone_is_paced_in_real_time() -> None:
    async def main() -> float:
        track = ToneSource(440).create_track()
        await track.recv()
        start = time.monotonic()
        await read_frames(track, 15)
        return time.monotonic() - start

    elapsed = run(main())
    assert 0.25 <= elapsed <= 0.6, f"15 frames took {elapsed:.3f} s, expected ~0.30 s"


def test_pacing_does_not_drift() -> None:
    """A slow reader catches up: due times come from the anchor, not from the last wake-up."""

    async def main() -> float:
        track = SilenceSource().create_track()
        await track.recv()
        start = time.monotonic()
        await asyncio.sleep(0.1)  # the reader stalls for 5 frames
        await read_frames(track, 15)
        return time.monotonic() - start

    elapsed = run(main())
    assert 0.25 <= elapsed <= 0.5, f"elapsed {elapsed:.3f} s, expected ~0.30 s"


@pytest.mark.parametrize("freq", [440.0, 1000.0, 1633.0])
def test_tone_frequency_and_phase_continuity(freq: float, monkeypatch: pytest.MonkeyPatch) -> None:
    source = ToneSource(freq, amplitude=0.5)

    async def main() -> np.ndarray:
        track = source.create_track()
        unpace(track, monkeypatch)
        return frame_samples(await read_frames(track, 50))

    samples = run(main())
    assert samples.size == 48000
    assert dominant_frequency(samples) == pytest.approx(freq, abs=2.0)
    assert np.abs(samples).max() == pytest.approx(0.5 * 32767, rel=0.01)
    # No discontinuity anywhere, frame boundaries included: the biggest step
    # between neighbours is the sine's maximum slope.
    max_step = 2 * math.pi * freq / RATE * 0.5 * 32767 + 2
    assert np.abs(np.diff(samples.astype(np.int32))).max() <= max_step
    source.close()


def test_tone_frequency_change_while_running(monkeypatch: pytest.MonkeyPatch) -> None:
    source = ToneSource(440)

    async def main() -> tuple[np.ndarray, np.ndarray]:
        track = source.create_track()
        unpace(track, monkeypatch)
        a = frame_samples(await read_frames(track, 25))
        source.frequency = 880
        b = frame_samples(await read_frames(track, 25))
        return a, b

    a, b = run(main())
    assert dominant_frequency(a) == pytest.approx(440, abs=2)
    assert dominant_frequency(b) == pytest.approx(880, abs=2)
    with pytest.raises(ValueError):
        source.frequency = 30000
    with pytest.raises(ValueError):
        ToneSource(amplitude=1.5)


def test_close_ends_tracks_and_refuses_new_ones() -> None:
    source = ToneSource()

    async def main() -> None:
        track = source.create_track()
        await track.recv()
        source.close()
        source.close()  # idempotent
        assert track.readyState == "ended"
        with pytest.raises(MediaStreamError):
            await track.recv()
        with pytest.raises(RuntimeError, match="closed"):
            source.create_track()

    run(main())


def test_close_from_another_thread_stops_track_on_its_loop() -> None:
    source = SilenceSource()

    async def main() -> None:
        track = source.create_track()
        await track.recv()
        await asyncio.to_thread(source.close)
        await wait_until(lambda: track.readyState == "ended", 2, "track to end")
        with pytest.raises(MediaStreamError):
            await track.recv()

    run(main())


def test_silence_source() -> None:
    async def main() -> list[av.AudioFrame]:
        return await read_frames(SilenceSource().create_track(), 3)

    frames = run(main())
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert rms_dbfs(frame_samples(frames)) == float("-inf")


@pytest.mark.parametrize("sampwidth", [1, 2, 3, 4])
def test_wav_file_source_8k_stereo(tmp_path: Path, sampwidth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / f"tone8k_{sampwidth}.wav"
    write_wav(path, 8000, 2, sampwidth, 1000.0, 1.0)
    source = WavFileSource(path)
    assert source.duration == pytest.approx(1.0, abs=0.01)
    assert dominant_frequency(source.samples) == pytest.approx(1000.0, abs=2.0)
    # 8-bit audio is noisy (-50 dB) but still clearly the tone.
    assert rms_dbfs(source.samples) == pytest.approx(-6.0 - 3.01 - 20 * math.log10(4 / 3), abs=1.0)

    async def main() -> np.ndarray:
        track = source.create_track()
        unpace(track, monkeypatch)
        return frame_samples(await read_frames(track, 50))

    assert dominant_frequency(run(main())) == pytest.approx(1000.0, abs=2.0)
    source.close()


def test_wav_file_source_44k_mono(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tone44k.wav"
    write_wav(path, 44100, 1, 2, 440.0, 1.0)
    source = WavFileSource(str(path))
    assert source.samples.size == pytest.approx(48000, abs=10)

    async def main() -> np.ndarray:
        track = source.create_track()
        unpace(track, monkeypatch)
        return frame_samples(await read_frames(track, 50))

    assert dominant_frequency(run(main())) == pytest.approx(440.0, abs=2.0)


def test_wav_file_source_loop_and_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "short.wav"
    write_wav(path, 48000, 1, 2, 1000.0, 0.25)  # 12000 samples = 12.5 frames

    async def main() -> None:
        looping = WavFileSource(path, loop=True)
        track = looping.create_track()
        unpace(track, monkeypatch)
        samples = frame_samples(await read_frames(track, 40))  # 3.2 passes through the file
        file_samples = looping.samples
        np.testing.assert_array_equal(samples[:12000], file_samples)
        np.testing.assert_array_equal(samples[12000:24000], file_samples)
        np.testing.assert_array_equal(samples[24000:36000], file_samples)

        once = WavFileSource(path, loop=False)
        track = once.create_track()
        unpace(track, monkeypatch)
        frames = await read_frames(track, 13)  # the 13th is half file, half padding
        samples = frame_samples(frames)
        np.testing.assert_array_equal(samples[:12000], file_samples)
        assert not samples[12000:].any()
        with pytest.raises(MediaStreamError):
            await track.recv()
        assert track.readyState == "ended"
        # A new call plays the file from its start again.
        again = once.create_track()
        np.testing.assert_array_equal(frame_samples(await read_frames(again, 1)), file_samples[:960])

    run(main())


def test_wav_file_source_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        WavFileSource(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(ValueError):
        WavFileSource(bad)


def test_callback_source(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    counter = {"next": 0, "calls": 0}

    def ramp(n: int) -> Any:
        counter["calls"] += 1
        if counter["calls"] == 3:
            raise RuntimeError("boom in the source callback")
        if counter["calls"] == 5:
            return None  # end of stream
        # Return odd sizes: more than asked, then fewer, as bytes and floats.
        size = n + 100 if counter["calls"] == 1 else n - 100
        start = counter["next"]
        counter["next"] += size
        values = (np.arange(start, start + size) % 1000).astype(np.int16)
        return values.tobytes() if counter["calls"] == 2 else values

    async def main() -> list[av.AudioFrame]:
        track = CallbackSource(ramp).create_track()
        unpace(track, monkeypatch)
        frames = await read_frames(track, 4)
        with pytest.raises(MediaStreamError):
            await track.recv()
        return frames

    with caplog.at_level(logging.ERROR, logger="purecloud_webrtc.media.sources"):
        frames = run(main())
    s = [frame_to_mono(f) for f in frames]
    np.testing.assert_array_equal(s[0], np.arange(960) % 1000)  # 1060 given, 100 kept
    # 100 kept + 760 given as bytes (860 asked) + 100 of padding.
    np.testing.assert_array_equal(s[1][:860], np.arange(960, 1820) % 1000)
    assert not s[1][860:].any()
    assert not s[2].any()  # the failing call gives a silent frame
    np.testing.assert_array_equal(s[3][:860], np.arange(1820, 2680) % 1000)
    assert not s[3][860:].any()
    assert [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    with pytest.raises(TypeError):
        CallbackSource(42)  # type: ignore[arg-type]


def test_callback_source_float_output(monkeypatch: pytest.MonkeyPatch) -> None:
    phase = {"n": 0}

    def gen(n: int) -> np.ndarray:
        t = (phase["n"] + np.arange(n)) / RATE
        phase["n"] += n
        return 0.5 * np.sin(2 * np.pi * 1000 * t)

    async def main() -> np.ndarray:
        track = CallbackSource(gen).create_track()
        unpace(track, monkeypatch)
        return frame_samples(await read_frames(track, 25))

    samples = run(main())
    assert dominant_frequency(samples) == pytest.approx(1000, abs=2)
    assert np.abs(samples).max() == pytest.approx(16384, rel=0.01)


def test_track_source() -> None:
    track = AudioStreamTrack()
    source = TrackSource(track)
    assert source.create_track() is track
    assert source.create_track() is track
    source.close()
    assert track.readyState == "live"  # the user's track is the user's
    with pytest.raises(ValueError):
        TrackSource(VideoStreamTrack())


# ---------------------------------------------------------------- sinks


def test_buffer_sink_frequency_and_ring() -> None:
    sink = BufferSink(max_seconds=1.0)
    for frame in stereo_frames(440, 0.6):
        sink.write(frame)
    for frame in stereo_frames(1000, 0.8):
        sink.write(frame)
    assert sink.frames_received == 70
    assert sink.duration() == pytest.approx(1.0)
    assert sink.total_seconds == pytest.approx(1.4)
    assert sink.samples().size == 48000
    assert sink.samples(0.5).size == 24000
    assert sink.dominant_frequency(0.5) == pytest.approx(1000, abs=2)
    # The oldest 0.2 s held is the end of the 440 Hz part.
    assert dominant_frequency(sink.samples()[:9600]) == pytest.approx(440, abs=5)
    assert sink.rms_dbfs(0.5) == pytest.approx(-9.03, abs=0.05)
    assert sink.wait_for_duration(1.0, timeout=0.1)
    assert not sink.wait_for_duration(2.0, timeout=0.05)
    sink.clear()
    assert sink.duration() == 0.0 and sink.samples().size == 0
    assert sink.dominant_frequency() == 0.0
    sink.close()
    sink.write(stereo_frames(440, 0.02)[0])
    assert sink.frames_received == 70


def test_buffer_sink_resamples_8k_frames() -> None:
    """A PCMU-style 8 kHz mono stream is stored at 48 kHz."""
    mono = np.rint(tone(1000, 1.0, 8000) * 32767).astype(np.int16)
    sink = BufferSink()
    for i in range(0, 8000, 160):
        frame = av.AudioFrame.from_ndarray(mono[i : i + 160].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 8000
        sink.write(frame)
    assert sink.duration() == pytest.approx(1.0, abs=0.01)
    assert sink.dominant_frequency(0.5) == pytest.approx(1000, abs=2)


@pytest.mark.parametrize("channels", [1, 2])
def test_wav_recorder_sink(tmp_path: Path, channels: int) -> None:
    path = tmp_path / "out.wav"
    sink = WavRecorderSink(path, channels=channels)
    for frame in stereo_frames(1000, 1.5):
        sink.write(frame)
    sink.close()
    sink.close()
    assert [t.name for t in threading.enumerate() if t.name.startswith("pcw-wav")] == []
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 48000
        assert w.getnchannels() == channels
        assert w.getsampwidth() == 2
        assert w.getnframes() == 72000
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    assert sink.seconds_written == pytest.approx(1.5)
    assert dominant_frequency(data[:, 0]) == pytest.approx(1000, abs=2)
    if channels == 2:
        np.testing.assert_array_equal(data[:, 0], data[:, 1])


def test_wav_recorder_sink_empty_and_bad_path(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    WavRecorderSink(path).close()
    with wave.open(str(path), "rb") as w:
        assert w.getnframes() == 0 and w.getframerate() == 48000
    with pytest.raises(OSError):
        WavRecorderSink(tmp_path / "no" / "such" / "dir.wav")


def test_callback_sink_delivers_on_named_thread(caplog: pytest.LogCaptureFixture) -> None:
    got: list[tuple[Any, float, str]] = []
    done = threading.Event()

    def fn(samples: Any, timestamp: float) -> None:
        got.append((samples, timestamp, threading.current_thread().name))
        if len(got) == 2:
            raise ValueError("boom in the sink callback")
        if len(got) == 10:
            done.set()

    errors: list[BaseException] = []
    sink = CallbackSink(fn, on_error=errors.append)
    with caplog.at_level(logging.ERROR, logger="purecloud_webrtc.media.sinks"):
        for frame in stereo_frames(440, 0.2):
            sink.write(frame)
        assert done.wait(5)
    sink.close()
    assert len(got) == 10
    for i, (samples, timestamp, name) in enumerate(got):
        assert isinstance(samples, np.ndarray) and samples.dtype == np.int16 and samples.shape == (960,)
        assert timestamp == pytest.approx(i * 0.02)
        assert re.fullmatch(r"pcw-audio-cb-\d+", name)
    assert dominant_frequency(np.concatenate([g[0] for g in got])) == pytest.approx(440, abs=3)
    assert sink.errors == 1 and isinstance(errors[0], ValueError)
    failures = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR


def test_callback_sink_bytes() -> None:
    got: list[Any] = []
    sink = CallbackSink(lambda data, ts: got.append(data), as_numpy=False)
    for frame in stereo_frames(440, 0.06):
        sink.write(frame)
    sink.close()  # delivers what is queued before stopping
    assert len(got) == 3
    assert all(isinstance(b, bytes) and len(b) == 1920 for b in got)


def test_callback_sink_drops_oldest_when_full(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    started = threading.Event()
    got: list[float] = []

    def slow(samples: Any, timestamp: float) -> None:
        started.set()
        release.wait(5)
        got.append(timestamp)

    sink = CallbackSink(slow, max_queue=5)
    frames = stereo_frames(440, 0.4)  # 20 frames
    with caplog.at_level(logging.WARNING, logger="purecloud_webrtc.media.sinks"):
        sink.write(frames[0])
        assert started.wait(5)  # the worker holds frame 0
        for frame in frames[1:]:
            sink.write(frame)
    assert sink.dropped == 14
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "dropped" in r.getMessage()]
    assert warnings and "14 dropped" not in warnings[0].getMessage()  # rate-limited: the first one says 1
    release.set()
    sink.close()
    # Frame 0, then the newest five; timestamps reveal the gap.
    assert got == pytest.approx([0.0, 0.30, 0.32, 0.34, 0.36, 0.38])


def test_callback_sink_close_from_inside_callback() -> None:
    closed = threading.Event()
    holder: dict[str, CallbackSink] = {}

    def fn(samples: Any, timestamp: float) -> None:
        holder["sink"].close()  # must not deadlock joining its own thread
        closed.set()

    holder["sink"] = CallbackSink(fn)
    holder["sink"].write(stereo_frames(440, 0.02)[0])
    assert closed.wait(5)
    thread = holder["sink"].thread
    assert thread is not None
    thread.join(2)
    assert not thread.is_alive()


def test_multi_sink_isolates_failures(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(AudioSink):
        closed = False

        def write(self, frame: av.AudioFrame) -> None:
            raise RuntimeError("broken sink")

        def close(self) -> None:
            self.closed = True

    a, b, broken = BufferSink(), BufferSink(), Broken()
    multi = MultiSink([a, broken, b])
    with caplog.at_level(logging.ERROR, logger="purecloud_webrtc.media.sinks"):
        for frame in stereo_frames(880, 0.5):
            multi.write(frame)
    assert a.frames_received == b.frames_received == 25
    assert a.dominant_frequency(0.5) == pytest.approx(880, abs=2)
    assert len([r for r in caplog.records if "broken sink" in str(r.exc_info and r.exc_info[1])]) == 1
    multi.close()
    assert broken.closed
    with pytest.raises(TypeError):
        MultiSink([a, "not a sink"])  # type: ignore[list-item]


def test_sink_pump_tone_to_buffer() -> None:
    async def main() -> tuple[SinkPump, BufferSink]:
        sink = BufferSink()
        track = ToneSource(1000).create_track()
        pump = SinkPump(track, sink)
        started = time.monotonic()
        pump.start()
        assert pump.running
        await wait_until(lambda: sink.duration() >= 0.5, 3, "0.5 s of audio")
        await pump.stop()
        await pump.stop()  # idempotent
        assert not pump.running and not pump.ended
        assert pump.first_frame_at is not None and pump.first_frame_at - started < 0.5
        track.stop()
        return pump, sink

    pump, sink = run(main())
    assert pump.frames == sink.frames_received >= 25
    assert sink.dominant_frequency(0.5) == pytest.approx(1000, abs=2)


def test_sink_pump_ends_quietly_at_end_of_track(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "clip.wav"
    write_wav(path, 48000, 1, 2, 600.0, 0.1)

    async def main() -> SinkPump:
        sink = BufferSink()
        pump = SinkPump(WavFileSource(path, loop=False).create_track(), sink)
        pump.start()
        await asyncio.wait_for(pump.wait_ended(), 3)
        assert pump.ended and not pump.running
        await pump.stop()
        return pump

    with caplog.at_level(logging.WARNING):
        pump = run(main())
    assert pump.frames == 5
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_sink_pump_survives_failing_sink(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(AudioSink):
        def write(self, frame: av.AudioFrame) -> None:
            raise RuntimeError("write failed")

    async def main() -> SinkPump:
        pump = SinkPump(ToneSource().create_track(), Failing())
        pump.start()
        await wait_until(lambda: pump.frames >= 5, 3, "5 frames")
        await pump.stop()
        return pump

    with caplog.at_level(logging.ERROR, logger="purecloud_webrtc.media.sinks"):
        pump = run(main())
    assert pump.frames >= 5
    assert len([r for r in caplog.records if r.exc_info]) == 1  # rate-limited


# ---------------------------------------------------------------- a real call


# ---------------------------------------------------------------- resolve_*


def test_resolve_source_kinds(tmp_path: Path) -> None:
    tone_source = ToneSource()
    assert resolve_source(tone_source) is tone_source
    track = AudioStreamTrack()
    resolved = resolve_source(track)
    assert isinstance(resolved, TrackSource) and isinstance(resolved, AudioSource) and resolved.track is track
    path = tmp_path / "a.wav"
    write_wav(path, 16000, 1, 2, 500, 0.1)
    for spec in (str(path), path):
        wav_source = resolve_source(spec)
        assert isinstance(wav_source, WavFileSource) and wav_source.loop
    callback_source = resolve_source(lambda n: np.zeros(n, dtype=np.int16))
    assert isinstance(callback_source, CallbackSource)
    for junk in (42, 3.5, b"bytes", ["list"], {"a": 1}):
        with pytest.raises(TypeError, match="AudioSource.*MediaStreamTrack.*path.*callable"):
            resolve_source(junk)  # type: ignore[arg-type]


def test_resolve_sink_kinds(tmp_path: Path) -> None:
    buffer = BufferSink()
    assert resolve_sink(buffer) is buffer
    wav_sink = resolve_sink(str(tmp_path / "x.wav"))
    assert isinstance(wav_sink, WavRecorderSink)
    wav_sink.close()
    wav_sink = resolve_sink(tmp_path / "y.wav")
    assert isinstance(wav_sink, WavRecorderSink)
    callback_sink = resolve_sink(lambda samples, ts: None)
    assert isinstance(callback_sink, CallbackSink)
    multi = resolve_sink([buffer, tmp_path / "z.wav", (lambda s, t: None)])
    assert isinstance(multi, MultiSink)
    assert multi.sinks[0] is buffer
    assert [type(s) for s in multi.sinks] == [BufferSink, WavRecorderSink, CallbackSink]
    for sink in (wav_sink, callback_sink, multi):
        sink.close()
    for junk in (42, 3.5, b"bytes", {"a": 1}):
        with pytest.raises(TypeError, match="AudioSink.*path.*list.*callable"):
            resolve_sink(junk)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        resolve_sink([buffer, 42])


def _no_device(spec: Any, kind: str, **kwargs: Any) -> AudioDevice:
    raise AudioDeviceError(f"no default {kind} device; PortAudio lists no audio devices at all (test)")


def test_resolve_falls_back_without_device(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(_pyaudio, "find_device", _no_device)
    with caplog.at_level(logging.WARNING):
        source = resolve_source(None)
        sink = resolve_sink(None)
    assert isinstance(source, SilenceSource)
    assert isinstance(sink, NullSink)
    messages = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("purecloud_webrtc.media.sources", logging.WARNING) in [(n, l) for n, l, _ in messages]
    assert ("purecloud_webrtc.media.sinks", logging.WARNING) in [(n, l) for n, l, _ in messages]
    assert all("no default" in m for _, _, m in messages)


def test_resolve_fallback_uses_given_logger(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(_pyaudio, "find_device", _no_device)
    mine = logging.getLogger("my.app")
    with caplog.at_level(logging.WARNING):
        resolve_source(None, logger=mine)
        resolve_sink([None], logger=mine)
    assert [r.name for r in caplog.records] == ["my.app", "my.app"]


def test_resolve_falls_back_without_pyaudio(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # makes `import pyaudio` raise ImportError
    with caplog.at_level(logging.WARNING):
        assert isinstance(resolve_source(None), SilenceSource)
        assert isinstance(resolve_sink(None), NullSink)
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert record.levelno == logging.WARNING
        assert "pip install 'purecloud_webrtc[audio]'" in record.getMessage()
        assert "portaudio19-dev" in record.getMessage()
    with pytest.raises(AudioDeviceError, match="not installed"):
        media.list_devices()


def test_resolve_on_this_machine(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """Whatever this machine has: a real device, or the logged fallback; PortAudio's noise stays hidden."""
    try:
        has_input = any(d.max_input_channels > 0 and d.is_default_input for d in media.list_devices())
        has_output = any(d.max_output_channels > 0 and d.is_default_output for d in media.list_devices())
    except AudioDeviceError:
        has_input = has_output = False
    with caplog.at_level(logging.WARNING):
        source = resolve_source(None)
        sink = resolve_sink(None)
    try:
        if not has_input:
            assert isinstance(source, SilenceSource)
            assert any(r.name.endswith("sources") and r.levelno == logging.WARNING for r in caplog.records)
        if not has_output:
            assert isinstance(sink, NullSink)
            assert any(r.name.endswith("sinks") and r.levelno == logging.WARNING for r in caplog.records)
    finally:
        source.close()
        sink.close()
    err = capfd.readouterr().err
    assert "ALSA lib" not in err and "jack" not in err.lower()


# ---------------------------------------------------------------- device access (fake PortAudio)


def test_find_device_by_index_name_default() -> None:
    find = _pyaudio.find_device
    assert find(2, "input", devices=DEVICES).name == "virtual_mic"
    assert find(None, "input", devices=DEVICES).index == 2
    assert find(None, "output", devices=DEVICES).index == 3
    assert find("pulse", "output", devices=DEVICES).index == 1
    assert find("PULSE", "input", devices=DEVICES).index == 1
    assert find("alc3246", "input", devices=DEVICES).index == 0
    assert find("speaker_sink", "output", devices=DEVICES).index == 3  # exact beats substring
    assert find("monitor", "input", devices=DEVICES).index == 4


def test_find_device_errors_list_devices() -> None:
    find = _pyaudio.find_device
    with pytest.raises(AudioDeviceError, match=r"no audio device with index 9.*\[2\] 'virtual_mic'") as info:
        find(9, "input", devices=DEVICES)
    assert info.value.spec == 9 and info.value.kind == "input"
    assert "speaker_sink" not in str(info.value)  # only input devices are listed
    with pytest.raises(AudioDeviceError, match=r"has no input channels.*available input devices"):
        find(3, "input", devices=DEVICES)
    with pytest.raises(AudioDeviceError, match=r"no output device matches 'headset'.*'pulse'"):
        find("headset", "output", devices=DEVICES)
    with pytest.raises(AudioDeviceError, match=r"ambiguous.*'pulse'.*'virtual_mic'"):
        find("u", "input", devices=DEVICES)
    with pytest.raises(AudioDeviceError, match=r"no default input device.*no audio devices at all"):
        find(None, "input", devices=[])
    with pytest.raises(AudioDeviceError, match=r"no input device; all devices: \[3\]"):
        find(None, "input", devices=[DEVICES[3]])
    with pytest.raises(TypeError):
        find(True, "input", devices=DEVICES)
    with pytest.raises(TypeError):
        find(1.0, "input", devices=DEVICES)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        find(None, "both", devices=DEVICES)  # type: ignore[arg-type]


@pytest.fixture
def fake_pyaudio(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePyAudio]]:
    module = types.SimpleNamespace(PyAudio=FakePyAudio, paInt16=8, paContinue=0)
    monkeypatch.setattr(_pyaudio, "_import_pyaudio", lambda: module)
    monkeypatch.setattr(FakePyAudio, "live", [])
    monkeypatch.setattr(FakePyAudio, "streams", [])
    monkeypatch.setattr(FakePyAudio, "rates", {48000})
    monkeypatch.setattr(FakePyAudio, "devices", DEVICES)
    yield FakePyAudio
    assert FakePyAudio.live == [], "PortAudio left initialised"


def test_list_devices_with_fake_portaudio(fake_pyaudio: type[FakePyAudio], capfd: pytest.CaptureFixture[str]) -> None:
    devices = media.list_devices()
    assert devices == DEVICES
    assert fake_pyaudio.live == []  # terminated after listing, so the next call sees new devices
    assert "ALSA lib noise" not in capfd.readouterr().err  # fd 2 was silenced...
    os.write(2, b"stderr works again\n")
    assert "stderr works again" in capfd.readouterr().err  # ...and restored
    assert _pyaudio.find_device("mic", "input").index == 2


def test_microphone_source_with_fake_portaudio(fake_pyaudio: type[FakePyAudio]) -> None:
    fake_pyaudio.rates = {44100}  # the device refuses 48 kHz: capture at 44.1 kHz and resample
    source = MicrophoneSource("Pulse", max_queue=1000)
    assert source.device.index == 1 and source.capture_rate == 44100
    stream = fake_pyaudio.streams[0]
    assert stream.kwargs["input"] and stream.kwargs["input_device_index"] == 1
    assert stream.kwargs["frames_per_buffer"] == 882 and stream.is_stopped()
    callback = stream.kwargs["stream_callback"]
    captured = np.rint(tone(1000, 1.2, 44100) * 32767).astype("<i2")

    def feed() -> None:
        # PortAudio's thread: 20 ms chunks, a little faster than real time.
        for i in range(0, captured.size - 881, 882):
            assert callback(captured[i : i + 882].tobytes(), 882, {}, 0) == (None, 0)
            time.sleep(0.002)

    async def main() -> np.ndarray:
        track = source.create_track()
        assert not stream.is_stopped()  # capture starts with the first call
        feeder = threading.Thread(target=feed, name="fake-portaudio")
        feeder.start()
        frames = await read_frames(track, 50)
        await asyncio.to_thread(feeder.join)
        assert [f.pts for f in frames] == [i * 960 for i in range(50)]
        assert all(f.samples == 960 and f.sample_rate == 48000 for f in frames)
        track.stop()
        assert stream.is_stopped()  # ...and pauses after the last
        with pytest.raises(MediaStreamError):
            await track.recv()
        return frame_samples(frames)

    samples = run(main())
    assert dominant_frequency(samples[4800:]) == pytest.approx(1000, abs=2)
    source.close()
    source.close()
    assert stream.closed


def test_microphone_queue_drops_oldest(fake_pyaudio: type[FakePyAudio], caplog: pytest.LogCaptureFixture) -> None:
    # Sample values are checked: no processing stage may change them.
    source = MicrophoneSource(None, max_queue=5, echo_cancellation=False, noise_suppression=False,
                              auto_gain_control=False)
    assert source.capture_rate == 48000
    callback = fake_pyaudio.streams[0].kwargs["stream_callback"]

    async def main() -> list[av.AudioFrame]:
        track = source.create_track()
        for value in range(20):
            callback(np.full(960, value, dtype="<i2").tobytes(), 960, {}, 0)
        await asyncio.sleep(0.05)  # let the loop run the handed-over calls
        frames = await read_frames(track, 5)
        assert track.dropped == 15  # type: ignore[attr-defined]
        source.close()  # ends the track from outside
        with pytest.raises(MediaStreamError):
            await track.recv()
        return frames

    with caplog.at_level(logging.WARNING, logger="purecloud_webrtc.media.sources"):
        frames = run(main())
    assert [int(frame_to_mono(f)[0]) for f in frames] == [15, 16, 17, 18, 19]
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_microphone_open_failure_falls_back(fake_pyaudio: type[FakePyAudio], caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AudioDeviceError, match=r"could not open input device \[0\]"):
        MicrophoneSource(0)
    with pytest.raises(AudioDeviceError, match=r"could not open output device \[0\]"):
        SpeakerSink(0)
    # With the default device broken, resolve_* fall back.
    fake_pyaudio.devices = [replace_default(DEVICES[0])]
    with caplog.at_level(logging.WARNING):
        assert isinstance(resolve_source(None), SilenceSource)
        assert isinstance(resolve_sink(None), NullSink)
    assert all("could not open" in r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 2


def replace_default(device: AudioDevice) -> AudioDevice:
    import dataclasses

    return dataclasses.replace(device, is_default_input=True, is_default_output=True)


def test_speaker_sink_with_fake_portaudio(fake_pyaudio: type[FakePyAudio]) -> None:
    resolved = resolve_sink(None)
    assert isinstance(resolved, SpeakerSink) and resolved.device.index == 3
    resolved.close()
    sink = SpeakerSink(None, max_queue=100)  # a queue long enough for this burst
    assert sink.rate == 48000
    assert fake_pyaudio.streams[0].closed
    stream = fake_pyaudio.streams[1]
    assert stream.kwargs["output"] and stream.kwargs["output_device_index"] == 3
    for frame in stereo_frames(523.25, 0.5):
        sink.write(frame)
    deadline = time.monotonic() + 3
    while len(stream.written) < 25 and time.monotonic() < deadline:
        time.sleep(0.01)
    names = [t.name for t in threading.enumerate() if t.name.startswith("pcw-speaker-")]
    assert names
    sink.close()
    assert stream.closed
    played = np.frombuffer(b"".join(stream.written), dtype="<i2")
    assert played.size == 24000
    assert dominant_frequency(played, sink.rate) == pytest.approx(523.25, abs=2)


def test_speaker_sink_resamples_to_device_rate(fake_pyaudio: type[FakePyAudio]) -> None:
    fake_pyaudio.rates = {44100}
    sink = SpeakerSink("pulse", max_queue=100)  # 44.1 kHz only
    assert sink.rate == 44100
    for frame in stereo_frames(1000, 1.0):
        sink.write(frame)
    sink.close()
    stream = fake_pyaudio.streams[0]
    played = np.frombuffer(b"".join(stream.written), dtype="<i2")
    assert played.size == pytest.approx(44100, abs=100)
    assert dominant_frequency(played, 44100) == pytest.approx(1000, abs=2)


def test_in_band_dtmf_detection_runs_only_while_wanted() -> None:
    """The detector is per-frame work: with nobody listening it does nothing (and forgets a half-heard digit)."""
    from purecloud_webrtc.media.dtmf import DtmfDetectorSink, dtmf_tone
    from purecloud_webrtc.media.sources import make_frame

    wanted = [False]
    heard: list = []
    sink = DtmfDetectorSink(heard.append, wanted=lambda: wanted[0])

    def play(digits: str) -> None:
        pcm = np.concatenate([np.concatenate([dtmf_tone(d, 0.1), np.zeros(4800, dtype=np.int16)]) for d in digits])
        for start in range(0, pcm.size - 959, 960):
            sink.write(make_frame(pcm[start:start + 960], start))

    play("12")
    assert heard == []
    wanted[0] = True
    play("34")
    assert heard == ["3", "4"]


def test_the_pump_hands_samples_to_sinks_that_take_them_and_frames_to_the_others():
    """The jitter buffer's track gives samples (``recv_pcm``); a sink of one's own with only ``write``
    (or a MultiSink holding one) still gets ``av.AudioFrame``s, and a swap mid-call is followed per frame."""
    tone = (np.sin(2 * np.pi * 500 * np.arange(960) / 48000) * 8000).astype(np.int16)

    class PcmTrack(MediaStreamTrack):
        kind = "audio"
        pcm_rate = 48000

        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        async def recv_pcm(self) -> np.ndarray:
            self.count += 1
            if self.count > 6:
                raise MediaStreamError
            await asyncio.sleep(0)
            return tone

        async def recv(self) -> av.AudioFrame:
            return sources.make_frame(await self.recv_pcm(), 0)

    class FramesOnly(media.AudioSink):
        def __init__(self) -> None:
            self.got: list = []

        def write(self, frame: av.AudioFrame) -> None:
            self.got.append(frame)

    buffer, frames_only = media.BufferSink(), FramesOnly()
    router = media.MultiSink([buffer])
    pump = media.SinkPump(PcmTrack(), router)

    async def run() -> None:
        pump.start()
        while pump.frames < 3:
            await asyncio.sleep(0)
        pump.sink = media.MultiSink([buffer, frames_only])
        await pump.wait_ended()

    asyncio.run(run())
    assert pump.frames == 6
    assert buffer.frames_received == 6
    assert len(frames_only.got) == 3 and all(isinstance(f, av.AudioFrame) for f in frames_only.got)
    assert abs(media.dominant_frequency(buffer.samples()) - 500.0) < 2.0
    assert abs(media.dominant_frequency(frames_only.got[0].to_ndarray().reshape(-1)) - 500.0) < 5.0
    assert not media.MultiSink([buffer, frames_only]).accepts_pcm and media.NullSink().accepts_pcm


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 48000])
def test_stream_source_takes_pcm_at_its_rate_and_sends_it_at_48_khz(rate):
    source = media.StreamSource(rate)
    t = np.arange(rate) / rate
    source.write((np.sin(2 * np.pi * 660 * t) * 10000).astype(np.int16))  # 1 s
    assert 0.95 < source.buffered_seconds <= 1.0
    track = source.create_track()
    out = np.concatenate([track._produce(960) for _ in range(50)])
    assert abs(media.dominant_frequency(out[4800:]) - 660.0) < 2.0
    assert np.abs(out[4800:]).max() > 8000  # the level is kept
    assert source.buffered_seconds < 0.01
    # Nothing queued: silence, never an error.
    assert not track._produce(960).any()
    source.close()


def test_stream_source_clear_drops_what_is_queued_and_bounds_what_it_holds():
    source = media.StreamSource(16000, max_seconds=0.5)
    source.write(b"\x10\x00" * 16000)  # 1 s of bytes: only the newest 0.5 s is kept
    assert abs(source.buffered_seconds - 0.5) < 0.01 and abs(source.dropped_seconds - 0.5) < 0.01
    assert abs(source.clear() - 0.5) < 0.01 and source.buffered_seconds == 0.0
    source.write(np.full(160, 0.25, dtype=np.float32))  # floats: full scale 1.0
    assert source.buffered_seconds > 0.005
    with pytest.raises(ValueError, match="sample_rate"):
        media.StreamSource(11025)
    source.close()
    with pytest.raises(RuntimeError, match="closed"):
        source.write(b"\x00\x00")


def test_callback_sink_hands_pcm_at_the_rate_asked():
    got: list = []
    done = threading.Event()

    def fn(samples: np.ndarray, at: float) -> None:
        got.append((samples, at))
        if len(got) == 25:
            done.set()

    sink = media.CallbackSink(fn, sample_rate=16000)
    tone = (np.sin(2 * np.pi * 500 * np.arange(960 * 25) / 48000) * 9000).astype(np.int16)
    for i in range(25):
        sink.write_pcm(tone[i * 960:(i + 1) * 960])
    assert done.wait(5)
    sink.close()
    pcm = np.concatenate([s for s, _ in got])
    assert abs(pcm.size - 16000 * 0.5) <= 32
    assert abs(media.dominant_frequency(pcm, 16000) - 500.0) < 3.0
    assert abs(got[1][1] - got[0][0].size / 16000) < 1e-9  # timestamps count samples at the sink's rate
    with pytest.raises(ValueError, match="sample_rate"):
        media.CallbackSink(fn, sample_rate=12345)


def test_the_pipecat_transport_without_pipecat_names_the_extra():
    import importlib

    saved = {name: mod for name, mod in sys.modules.items() if name == "pipecat" or name.startswith("pipecat.")}
    sys.modules["pipecat"] = None  # type: ignore[assignment]  # as if not installed
    sys.modules.pop("purecloud_webrtc.contrib.pipecat", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'purecloud_webrtc\[pipecat\]'"):
            importlib.import_module("purecloud_webrtc.contrib.pipecat")
    finally:
        del sys.modules["pipecat"]
        sys.modules.update(saved)
        sys.modules.pop("purecloud_webrtc.contrib.pipecat", None)


def test_energy_vad_starts_on_speech_ends_after_its_hangover_and_ignores_clicks_and_steady_noise():
    vad = media.EnergyVad()
    frames = [-60.0] * 25                      # a quiet line (noise at -60 dBFS)
    frames += [-20.0]                          # a click: one frame
    frames += [-60.0] * 10
    frames += [-25.0, -22.0, -30.0, -24.0] * 10  # speech, 800 ms
    frames += [-60.0] * 30                     # silence
    changes = [(i, c) for i, f in enumerate(frames) if (c := vad.feed(f)) is not None]
    assert changes == [(37, True), (76 + 14, False)], changes  # 2 frames to start; the 15th quiet frame ends it
    # A steady sound becomes background: speech ends once the floor caught up with it.
    steady = media.EnergyVad()
    out = [steady.feed(-30.0 if i else -70.0) for i in range(2000)]  # 40 dB up: background after 28 s
    assert out.count(True) == 1 and out.count(False) == 1
    with pytest.raises(ValueError, match="hangover"):
        media.VadConfig(hangover=0.0)
