"""A stand-in for ``pyaudio.PyAudio`` with a fixed device table (shared by the unit and device lanes)."""

from __future__ import annotations

import os
from typing import Any

from purecloud_webrtc.media._pyaudio import AudioDevice


DEVICES = [
    AudioDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, 2, 44100.0, False, False, "ALSA"),
    AudioDevice(1, "pulse", 32, 32, 44100.0, False, False, "ALSA"),
    AudioDevice(2, "virtual_mic", 1, 0, 48000.0, True, False, "ALSA"),
    AudioDevice(3, "speaker_sink", 0, 1, 48000.0, False, True, "ALSA"),
    AudioDevice(4, "Speaker Sink Monitor", 1, 0, 48000.0, False, False, "ALSA"),
]


class FakeStream:
    def __init__(self, pa: "FakePyAudio", kwargs: dict[str, Any]) -> None:
        self.pa = pa
        self.kwargs = kwargs
        self.stopped = not kwargs.get("start", True)
        self.closed = False
        self.written: list[bytes] = []
        self.starts = 0

    def is_stopped(self) -> bool:
        return self.stopped

    def start_stream(self) -> None:
        self.starts += 1
        self.stopped = False

    def stop_stream(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes, exception_on_underflow: bool = False) -> None:
        self.written.append(data)


class FakePyAudio:
    """Stands in for ``pyaudio.PyAudio`` with a fixed device table."""

    devices: list[AudioDevice] = DEVICES
    rates = {48000}
    live: list["FakePyAudio"] = []
    streams: list[FakeStream] = []

    def __init__(self) -> None:
        os.write(2, b"ALSA lib noise that must not reach stderr\n")
        self.terminated = False
        FakePyAudio.live.append(self)

    def terminate(self) -> None:
        self.terminated = True
        FakePyAudio.live.remove(self)

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, i: int) -> dict[str, Any]:
        d = self.devices[i]
        return {
            "index": d.index,
            "name": d.name,
            "maxInputChannels": d.max_input_channels,
            "maxOutputChannels": d.max_output_channels,
            "defaultSampleRate": d.default_sample_rate,
            "hostApi": 0,
        }

    def get_host_api_info_by_index(self, i: int) -> dict[str, Any]:
        return {"name": "ALSA"}

    def _default(self, attr: str) -> dict[str, Any]:
        for d in self.devices:
            if getattr(d, attr):
                return self.get_device_info_by_index(d.index)
        raise IOError("No Default Device Available")

    def get_default_input_device_info(self) -> dict[str, Any]:
        return self._default("is_default_input")

    def get_default_output_device_info(self) -> dict[str, Any]:
        return self._default("is_default_output")

    def is_format_supported(self, rate: int, **kwargs: Any) -> bool:
        if rate not in self.rates:
            raise ValueError("Invalid sample rate")
        return True

    def open(self, **kwargs: Any) -> FakeStream:
        if kwargs.get("input_device_index") == 0 or kwargs.get("output_device_index") == 0:
            raise OSError(-9996, "Invalid input device (no default output device)")
        stream = FakeStream(self, kwargs)
        FakePyAudio.streams.append(stream)
        return stream

