"""Microphone processing (media.processing): options, the echo reference, the stage on real signals.

The stage is WebRTC's audio processing module itself (pywebrtc-audio, in the test extra); the signals are
made here with a known echo path, so each measurement has a known answer.  Device-backed calls with a
real acoustic loop are in tests/devices/test_echo_cancellation.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from purecloud_webrtc import ConfigurationError
from purecloud_webrtc.media.processing import (
    AudioProcessing,
    MicProcessor,
    PlaybackReference,
    processing_available,
)
from purecloud_webrtc.quality import CallStats

pytest.importorskip("pywebrtc_audio", reason="the voice extra (pywebrtc-audio) is in the test extra")

RATE = 48000


def test_options_are_validated_and_merged() -> None:
    assert processing_available()
    with pytest.raises(TypeError, match="echo_cancellation must be True, False or None"):
        AudioProcessing(echo_cancellation="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="echo_delay_ms"):
        AudioProcessing(echo_delay_ms=900)
    merged = AudioProcessing(noise_suppression=False).over(AudioProcessing(echo_cancellation=False,
                                                                           noise_suppression=True))
    assert merged.resolved() == {"echo_cancellation": False, "noise_suppression": False, "auto_gain_control": True}
    assert AudioProcessing(False, False, False).any is False
    assert MicProcessor(AudioProcessing(False, False, False)).active is False


def test_sdk_mic_options(make_sdk_offline: object = None) -> None:
    from purecloud_webrtc import PureCloudWebrtcSdk

    with pytest.raises(ConfigurationError, match="mic_echo_cancellation must be True, False or None"):
        PureCloudWebrtcSdk(access_token="t" * 20, mic_echo_cancellation=1)
    sdk = PureCloudWebrtcSdk(access_token="t" * 20, micNoiseSuppression=False, mic_auto_gain_control=True)
    try:
        assert sdk.options.mic_processing == AudioProcessing(None, False, True)
        assert "t" * 20 not in repr(sdk.options)
    finally:
        sdk.close()


def test_reference_follows_the_devices_clocks_not_the_threads() -> None:
    ref = PlaybackReference(max_seconds=0.1)
    ref.write(1, np.full(960, 100, dtype=np.int16), now=0)  # nobody reads: dropped
    reader = ref.open_reader()
    stream = np.arange(9600, dtype=np.int16)  # each sample is its index in the speaker's stream
    t = 1_000_000  # the clock, in 48 kHz samples
    # The speaker hands over 40 ms at once (its device buffer fills), then 20 ms at a time as it drains.
    ref.write(1, stream[:1920], now=t)
    assert list(reader.read(960, now=t + 960)[[0, -1]]) == [0, 959]  # captured over [t, t + 960)
    ref.write(1, stream[1920:2880], now=t + 1000)
    assert list(reader.read(960, now=t + 1920)[[0, -1]]) == [960, 1919]
    # A busy machine: the speaker's thread hands over 18 ms late, but its device still had audio
    # buffered: the samples stay where the device plays them, nothing shifts.
    ref.write(1, stream[2880:3840], now=t + 2800)
    # The microphone's callback is late too (the chunk of [1920, 2880) comes 9 ms late, the next one on
    # time): still back to back.
    assert list(reader.read(960, now=t + 3300)[[0, -1]]) == [1920, 2879]
    assert list(reader.read(960, now=t + 3840)[[0, -1]]) == [2880, 3839]
    assert reader.realigned == 0
    # What is physically impossible is corrected: samples handed over at a time cannot play before it (the
    # device ran dry in between), and a chunk cannot have been captured after it was delivered.
    ref.write(3, np.full(960, 5, dtype=np.int16), now=t)
    ref.write(3, np.full(960, 9, dtype=np.int16), now=t + 3840)  # back to back would be t + 960: played later
    assert reader._lines[3][-1][0] == t + 3840
    ref.remove(3)
    # The speaker's device ran dry (an underflow reported): its next samples start when handed over.
    ref.write(1, stream[3840:4800], gap=True, now=t + 4800)
    assert np.all(reader.read(960, now=t + 4800) == 0)  # [3840, 4800): the device played silence
    assert list(reader.read(960, now=t + 5760)[[0, -1]]) == [3840, 4799]
    # A second speaker is mixed in where it plays.
    ref.write(2, np.full(960, 1000, dtype=np.int16), now=t + 5760)
    ref.write(1, stream[4800:5760], now=t + 5760)
    mixed = reader.read(960, now=t + 6720)
    assert list(mixed[[0, -1]]) == [4800 + 1000, 5759 + 1000]
    # The microphone lost input (an overflow): its chunk is placed at the clock again.
    ref.write(1, stream[5760:6720], now=t + 6720)
    assert list(reader.read(480, gap=True, now=t + 7680 + 480)[[0, -1]]) == [0, 0] and reader.realigned == 1
    for k in range(50):  # a speaker that plays while the microphone does not read: bounded
        ref.write(1, np.full(960, 7, dtype=np.int16), now=t + 8000 + 960 * k)
    assert sum(chunk.size for _, chunk in reader._lines[1]) <= int(0.1 * RATE) + 960
    ref.remove(1)
    ref.remove(2)
    assert np.all(reader.read(960) == 0)
    reader.close()
    assert not ref.active


def _echo_scene(seconds: float, delay_ms: float, seed: int = 3) -> tuple:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    # Speech-like far end: noise shaped in 300 ms bursts (a clear correlation peak, unlike a pure tone).
    far = rng.normal(0, 0.15, n) * ((np.arange(n) / RATE % 0.5) < 0.3)
    d = int(delay_ms * RATE / 1000)
    echo = np.concatenate([np.zeros(d), far[:-d]]) * 0.4
    to16 = lambda x: np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16)  # noqa: E731
    return to16(far), to16(echo)


def test_echo_canceller_with_a_known_path_measures_erle_and_delay() -> None:
    far, mic = _echo_scene(8.0, 90.0)
    processor = MicProcessor(AudioProcessing(True, False, False))
    out = np.concatenate([processor.process(mic[i:i + 960], far[i:i + 960]) for i in range(0, mic.size, 960)])
    tail = slice(5 * RATE, 8 * RATE)
    measured = 10 * np.log10(np.mean(mic[tail].astype(float) ** 2) / np.mean(out[tail].astype(float) ** 2))
    stats = processor.stats
    assert measured >= 25, measured
    assert stats.erle_db is not None and stats.erle_db >= 20, stats
    assert stats.delay_ms == pytest.approx(90.0, abs=2.0), stats
    assert 4000 < stats.reference_ms < 6000  # the far end talks 60 % of the time: its bursts only
    assert CallStats(timestamp=0.0, audio_processing=stats).as_dict()["audio_processing"]["erle_db"] == stats.erle_db


def test_the_extra_missing_gives_one_line_naming_it() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["pywebrtc_audio"] = None  # as if the voice extra were not installed
        from purecloud_webrtc import PureCloudWebrtcSdk, MissingExtraError
        from purecloud_webrtc.media import MicrophoneSource
        from purecloud_webrtc.media.processing import AudioProcessing, MicProcessor, processing_available
        assert not processing_available()
        assert MicProcessor(AudioProcessing()).active is False  # the default: nothing runs, nothing fails
        for make in (lambda: MicrophoneSource(echo_cancellation=True),
                     lambda: PureCloudWebrtcSdk(access_token="t" * 20, mic_noise_suppression=True)):
            try:
                make()
            except MissingExtraError as exc:
                print(exc)
            else:
                raise SystemExit("no error")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.endswith("needs the 'voice' extra: pip install 'purecloud_webrtc[voice]'"), line


def _voiced_syllables(seconds: float) -> np.ndarray:
    """A speech-like sound: a gliding 140 Hz voice with 19 harmonics, in 350 ms syllables."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 1.3 * t)) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 20)) * ((t % 0.6) < 0.35)
    return np.rint(0.15 * voice * 32767).astype(np.int16)


def _run_vad(vad: object, samples: np.ndarray) -> list:
    from purecloud_webrtc.media.analysis import rms_dbfs

    changes = []
    for i in range(0, samples.size - 959, 960):
        frame = samples[i:i + 960]
        change = vad.feed_frame(frame, rms_dbfs(frame))  # type: ignore[attr-defined]
        if change is not None:
            changes.append(change)
    return changes


def test_one_vad_api_two_backends() -> None:
    from purecloud_webrtc.media import EnergyVad, VadConfig, WebrtcVad, create_vad

    quiet = np.random.default_rng(5).normal(0, 30, RATE).astype(np.int16)  # 1 s of a quiet line, then a tone
    tone = np.rint(0.3 * np.sin(2 * np.pi * 500 * np.arange(3 * RATE) / RATE) * 32767).astype(np.int16)
    steady = np.concatenate([quiet, tone])
    assert type(create_vad(VadConfig())) is EnergyVad
    webrtc = create_vad(VadConfig(backend="webrtc"))
    assert isinstance(webrtc, WebrtcVad)
    # A steady tone as loud as speech: for energy it is speech for tens of seconds (until the floor rises to
    # it); WebRTC's detector may react to its onset but not to the tone itself.
    energy = EnergyVad()
    assert _run_vad(energy, steady)[:1] == [True] and energy.speaking
    _run_vad(webrtc, steady)
    assert not webrtc.speaking and webrtc.probability < 0.5
    webrtc.reset()
    changes = _run_vad(webrtc, _voiced_syllables(4.0))
    assert changes[:1] == [True] and webrtc.probability >= 0.0
    with pytest.raises(ValueError, match="backend"):
        VadConfig(backend="silero")
    with pytest.raises(ConfigurationError, match="voice_activity must be a VadConfig"):
        from purecloud_webrtc import PureCloudWebrtcSdk

        PureCloudWebrtcSdk(access_token="t" * 20, voice_activity="webrtc")
