"""Real sound devices: pyaudio on a private PulseAudio with virtual microphones and speakers.

A tone played into a virtual microphone (``pacat`` into its feed sink) is captured by the SDK
with pyaudio, crosses a real call and is heard by the emulator's far end; the far end's tone is
played by the SDK into a virtual speaker and recorded from its monitor (``parec``).  Frequencies
are checked both ways, then the input and output devices are switched mid-call.
"""

from __future__ import annotations

from typing import Any, List

import numpy as np
import pytest

from purecloud_webrtc import media
from purecloud_webrtc.media import (
    AudioDeviceError,
    BufferSink,
    MicrophoneSource,
    SpeakerSink,
    dominant_frequency,
    rms_dbfs,
)

from helpers import wait_until
from pulse import PulseServer, tone

pytestmark = pytest.mark.timeout(90)

TOL = 5.0


def heard(capture: Any, frequency: float, seconds: float = 0.5) -> bool:
    samples = capture.samples(seconds)
    return samples.size >= seconds * 48000 * 0.9 and abs(dominant_frequency(samples) - frequency) <= TOL


def test_virtual_devices_are_listed_and_found(pulse_server: PulseServer, capfd: pytest.CaptureFixture[str]) -> None:
    devices = media.list_devices()
    names = {d.name for d in devices}
    assert {"pcw_mic", "pcw_mic2", "pcw_speaker", "pcw_speaker2", "pcw_speaker_monitor"} <= names
    mic = media.find_device("pcw_mic2", "input", devices=devices)
    assert mic.name == "pcw_mic2" and mic.max_input_channels > 0
    assert media.find_device(mic.index, "input", devices=devices) == mic
    assert media.find_device("PCW_SPEAKER2", "output", devices=devices).name == "pcw_speaker2"
    with pytest.raises(AudioDeviceError, match=r"no input device matches 'headset'.*'pcw_mic'") as info:
        MicrophoneSource("headset")
    assert info.value.kind == "input" and info.value.spec == "headset"
    with pytest.raises(ValueError, match="buffer_ms"):
        SpeakerSink("pcw_speaker", buffer_ms=0)
    err = capfd.readouterr().err
    assert "ALSA lib" not in err and "jack" not in err.lower()  # PortAudio's probing noise stays hidden


def test_microphone_and_speaker_through_a_call_then_switch_devices(
    pulse_server: PulseServer, emulator: Any, make_sdk: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    sdk = make_sdk()
    levels: List[Any] = []
    silent: List[bool] = []
    with pulse_server.play(tone(523.25, 60), "pcw_mic_feed"), \
            pulse_server.record("pcw_speaker.monitor") as speaker1, \
            pulse_server.record("pcw_speaker2.monitor") as speaker2:
        with sdk.expect_event("pendingSession") as ev:
            call = emulator.inbound_call(tone_hz=440.0)
        with sdk.expect_event("sessionStarted") as started:
            sdk.accept_pending_session(ev.value.id, source=MicrophoneSource("pcw_mic", buffer_ms=10),
                                       sink=SpeakerSink("pcw_speaker"))
        session = started.value
        session.on("audioLevel", lambda s, level: levels.append(level))
        session.on("silentMicrophone", lambda s, flag: silent.append(flag))
        call.wait_state("connected", timeout=15)
        # Microphone -> call -> far end; far end -> call -> speaker -> monitor.
        wait_until(lambda: abs(call.heard_frequency(0.5) - 523.25) <= TOL, 20, "the far end to hear the virtual mic")
        wait_until(lambda: heard(speaker1, 440.0), 20, "the virtual speaker to play the far end's tone")
        wait_until(lambda: any(lv.input_dbfs > -20 and lv.output_dbfs > -30 for lv in levels), 5, "levels")

        # Switch the input to the second microphone, which nothing feeds: digital silence, then a warning.
        session.set_source(MicrophoneSource("pcw_mic2"))
        assert session.source.device.name == "pcw_mic2"
        wait_until(lambda: silent == [True], 10, "silentMicrophone(True)")
        assert rms_dbfs(call_heard(call, 0.3)) < -60
        with pulse_server.play(tone(784.0, 60), "pcw_mic2_feed"):
            wait_until(lambda: abs(call.heard_frequency(0.5) - 784.0) <= TOL, 20, "the far end to hear mic 2")
            wait_until(lambda: silent == [True, False], 5, "silentMicrophone(False)")

            # Switch the output: the far end's tone now comes out of the second speaker.
            session.set_sink(SpeakerSink("pcw_speaker2"))
            wait_until(lambda: heard(speaker2, 440.0), 20, "the second speaker to play the far end's tone")
            assert session.sink.device.name == "pcw_speaker2"
            assert session.connection_state == "connected"  # no renegotiation, no interruption
            with sdk.expect_event("sessionEnded"):
                sdk.end_session(id=session.id)
    err = capfd.readouterr().err
    assert "ALSA lib" not in err and "jack" not in err.lower()


def call_heard(call: Any, seconds: float) -> np.ndarray:
    sink = call._sink  # the far end's BufferSink: what it heard, newest last
    return sink.samples(seconds) if sink is not None else np.zeros(0, dtype=np.int16)


def test_speaker_and_microphone_without_a_call(pulse_server: PulseServer) -> None:
    """The SDK's own playout into the virtual speaker, read back by its own microphone through a feed."""
    import asyncio

    import av

    from purecloud_webrtc.media import ToneSource

    heard_back = BufferSink()
    with SpeakerSink("pcw_mic2_feed", buffer_ms=10) as speaker, MicrophoneSource("pcw_mic2") as mic:
        async def main() -> None:
            out_track = ToneSource(1234.0).create_track()
            in_track = mic.create_track()

            async def read_back() -> None:
                while heard_back.total_seconds < 1.5:
                    heard_back.write(await in_track.recv())

            reader = asyncio.ensure_future(read_back())
            try:
                while not reader.done():
                    frame = await out_track.recv()
                    assert isinstance(frame, av.AudioFrame)
                    speaker.write(frame)
                    await asyncio.wait({reader}, timeout=0)
            finally:
                out_track.stop()
                in_track.stop()
            await reader

        asyncio.run(asyncio.wait_for(main(), 20))
    assert dominant_frequency(heard_back.samples(0.5)) == pytest.approx(1234.0, abs=TOL)


def test_a_busy_device_is_named_in_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """ALSA hw devices take one user at a time; PortAudio only says "Device unavailable" (-9985)."""
    from fake_pyaudio import DEVICES, FakePyAudio
    import types

    from purecloud_webrtc.media import _pyaudio

    def busy(self: Any, **kwargs: Any) -> Any:
        raise OSError(-9985, "Device unavailable")

    module = types.SimpleNamespace(PyAudio=FakePyAudio, paInt16=8, paContinue=0)
    monkeypatch.setattr(_pyaudio, "_import_pyaudio", lambda: module)
    monkeypatch.setattr(FakePyAudio, "live", [])
    monkeypatch.setattr(FakePyAudio, "devices", DEVICES)
    monkeypatch.setattr(FakePyAudio, "open", busy)
    with pytest.raises(AudioDeviceError, match=r"could not open input device \[2\] 'virtual_mic'.*busy") as info:
        MicrophoneSource("virtual_mic")
    assert info.value.kind == "input" and info.value.spec == 2
    with pytest.raises(AudioDeviceError, match=r"output device \[3\] 'speaker_sink'.*busy"):
        SpeakerSink("speaker_sink")
    assert FakePyAudio.live == []  # PortAudio released after the failure
