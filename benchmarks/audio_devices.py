"""Measure the sound-device path: added latency of pyaudio capture + playout, and CPU of a call.

    scripts/netns-run .venv/bin/python benchmarks/audio_devices.py            # everything
    scripts/netns-run .venv/bin/python benchmarks/audio_devices.py --only latency --clicks 20

Runs on a private PulseAudio with virtual devices (tests/pulse.py) and the bundled emulator,
so it needs no sound card and sends packets only to 127.0.0.1.

Latency, by clicks through the virtual devices.  A harness (its own pyaudio streams) plays a
click and listens for it on the virtual speaker's monitor, stamping both with
``time.monotonic()`` in the PortAudio callbacks:

* ``direct``: harness -> ``pcw_speaker`` -> monitor -> harness (the harness's own delay);
* ``sdk``: harness -> ``pcw_mic_feed`` -> virtual mic ``pcw_mic`` -> the SDK's
  :class:`MicrophoneSource` track -> the SDK's :class:`SpeakerSink` -> ``pcw_speaker`` ->
  monitor -> harness.

``sdk - direct`` is what the SDK's capture and playout add (plus PulseAudio's remap hop).
The network part of a call is measured separately (``call``): the far end starts its tone
at t0, and the SDK's sink stamps the first loud frame.

CPU: one 10 s call with the microphone and speaker (virtual devices) versus one with a WAV
file source and a WAV recorder sink; process CPU (the SDK and the emulator's far end, which is
the same in both) and the PulseAudio daemon's CPU, as percent of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import purecloud_webrtc as pcw  # noqa: E402
from purecloud_webrtc.media import (  # noqa: E402
    AudioSink,
    MicrophoneSource,
    NullSink,
    SpeakerSink,
    ToneSource,
    WavFileSource,
    WavRecorderSink,
    frame_to_mono,
    rms_dbfs,
)
from pulse import PulseServer, tone  # noqa: E402

RATE = 48000
CHUNK = 240  # 5 ms harness buffers: the harness's own jitter stays small


class ClickHarness:
    """Plays clicks into ``out_device`` and finds them on ``in_device``, with monotonic stamps."""

    def __init__(self, out_device: str, in_device: str) -> None:
        import pyaudio

        from purecloud_webrtc.media import _pyaudio, find_device

        _pyaudio._silence_native_logging()  # the harness's PortAudio must not print ALSA/JACK noise either
        # PortAudio's initialisation is not thread-safe: share the SDK's lock with its device code.
        self._sdk_lock = _pyaudio._lock
        with self._sdk_lock:
            self._pa = pyaudio.PyAudio()
        self._lock = threading.Lock()
        self._pending_click: Optional[int] = None  # sample offset within the next output chunk
        self.emitted: List[float] = []
        self._captured: List[Tuple[float, np.ndarray]] = []
        out_index = find_device(out_device, "output").index
        in_index = find_device(in_device, "input").index
        with self._sdk_lock:
            self._open(pyaudio, out_index, in_index)

    def _open(self, pyaudio: Any, out_index: int, in_index: int) -> None:
        self._out = self._pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, output=True,
                                  output_device_index=out_index, frames_per_buffer=CHUNK,
                                  stream_callback=self._play)
        self._in = self._pa.open(format=pyaudio.paInt16, channels=1, rate=RATE, input=True,
                                 input_device_index=in_index, frames_per_buffer=CHUNK,
                                 stream_callback=self._record)

    def _play(self, in_data: Any, frames: int, info: Any, status: int) -> Tuple[bytes, int]:
        out = np.zeros(frames, dtype=np.int16)
        with self._lock:
            if self._pending_click is not None:
                out[:48] = 20000  # a 1 ms click
                self._pending_click = None
                self.emitted.append(time.monotonic())
        return out.tobytes(), 0

    def _record(self, in_data: Optional[bytes], frames: int, info: Any, status: int) -> Tuple[None, int]:
        if in_data:
            samples = np.frombuffer(in_data, dtype="<i2").copy()
            with self._lock:
                self._captured.append((time.monotonic(), samples))
        return None, 0

    def click(self) -> None:
        with self._lock:
            self._pending_click = 0

    def arrivals(self, threshold: int = 5000) -> List[float]:
        """Monotonic times at which clicks were captured (first sample above ``threshold``, de-bounced)."""
        with self._lock:
            chunks = list(self._captured)
        times: List[float] = []
        for stamp, samples in chunks:
            hits = np.nonzero(np.abs(samples.astype(np.int32)) > threshold)[0]
            if hits.size:
                # The callback ran when the chunk was complete: its last sample is "now".
                at = stamp - (samples.size - 1 - int(hits[0])) / RATE
                if not times or at - times[-1] > 0.1:
                    times.append(at)
        return times

    def close(self) -> None:
        with self._sdk_lock:
            for stream in (self._out, self._in):
                stream.stop_stream()
                stream.close()
            self._pa.terminate()


def click_latency(harness: ClickHarness, clicks: int, spacing: float = 0.35) -> List[float]:
    """Milliseconds from each emitted click to its capture."""
    time.sleep(0.5)  # let both streams settle
    for _ in range(clicks):
        harness.click()
        time.sleep(spacing)
    time.sleep(0.5)
    emitted, arrived = list(harness.emitted), harness.arrivals()
    delays = []
    for sent in emitted:
        later = [a for a in arrived if 0 <= a - sent < spacing * 0.9]
        if later:
            delays.append((later[0] - sent) * 1000)
    return delays


def sdk_loop(mic_device: str, speaker_device: str, buffer_ms: float, stop: threading.Event) -> None:
    """The SDK's capture and playout with nothing in between: mic track frames written to the speaker."""
    mic = MicrophoneSource(mic_device, buffer_ms=buffer_ms)
    speaker = SpeakerSink(speaker_device, buffer_ms=buffer_ms)

    async def pump() -> None:
        track = mic.create_track()
        try:
            while not stop.is_set():
                frame = await asyncio.wait_for(track.recv(), 2)
                speaker.write(frame)
        finally:
            track.stop()

    try:
        asyncio.run(pump())
    finally:
        mic.close()
        speaker.close()


def capture_only(clicks: int, buffer_ms: float, spacing: float = 0.35) -> List[float]:
    """Harness click into the mic feed at t0; the SDK's microphone track returns the frame holding it at t1."""
    mic = MicrophoneSource("pcw_mic", buffer_ms=buffer_ms)
    found: List[float] = []

    async def read(stop: threading.Event) -> None:
        track = mic.create_track()
        try:
            while not stop.is_set():
                frame = await asyncio.wait_for(track.recv(), 2)
                now = time.monotonic()
                samples = frame_to_mono(frame)
                hits = np.nonzero(np.abs(samples.astype(np.int32)) > 5000)[0]
                if hits.size:
                    # The frame is returned once its last sample exists: that sample is "now".
                    at = now - (samples.size - 1 - int(hits[0])) / RATE
                    if not found or at - found[-1] > 0.1:
                        found.append(at)
        finally:
            track.stop()

    stop = threading.Event()
    reader = threading.Thread(target=lambda: asyncio.run(read(stop)), name="bench-capture")
    reader.start()
    time.sleep(0.5)
    harness = ClickHarness("pcw_mic_feed", "pcw_speaker_monitor")
    try:
        time.sleep(0.5)
        for _ in range(clicks):
            harness.click()
            time.sleep(spacing)
        time.sleep(0.3)
    finally:
        harness.close()
        stop.set()
        reader.join(10)
        mic.close()
    delays = []
    for sent in harness.emitted:
        later = [a for a in found if 0 <= a - sent < spacing * 0.9]
        if later:
            delays.append((later[0] - sent) * 1000)
    return delays


def playout_only(clicks: int, buffer_ms: float, spacing: float = 0.35) -> List[float]:
    """The SDK's speaker gets a frame with a click at t0 (written in real time); the harness hears it at t1."""
    import av

    speaker = SpeakerSink("pcw_speaker", buffer_ms=buffer_ms)
    harness = ClickHarness("pcw_speaker2", "pcw_speaker_monitor")  # only its input side is used
    sent: List[float] = []
    try:
        start = time.monotonic()
        frames = int((0.5 + clicks * spacing + 0.5) / 0.02)
        every = int(spacing / 0.02)
        for n in range(frames):
            due = start + n * 0.02
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            samples = np.zeros(960, dtype=np.int16)
            if n > 25 and n % every == 0 and len(sent) < clicks:
                samples[:48] = 20000
                sent.append(time.monotonic())
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            speaker.write(frame)
        time.sleep(0.3)
        arrived = harness.arrivals()
    finally:
        harness.close()
        speaker.close()
    delays = []
    for t0 in sent:
        later = [a for a in arrived if 0 <= a - t0 < spacing * 0.9]
        if later:
            delays.append((later[0] - t0) * 1000)
    return delays


def _summary(values: List[float]) -> Any:
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


def measure_latency(server: PulseServer, clicks: int, buffer_ms: float) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    harness = ClickHarness("pcw_speaker", "pcw_speaker_monitor")
    try:
        direct = click_latency(harness, clicks)
    finally:
        harness.close()
    stop = threading.Event()
    loop = threading.Thread(target=sdk_loop, args=("pcw_mic", "pcw_speaker", buffer_ms, stop), name="bench-sdk")
    loop.start()
    time.sleep(1.0)  # the SDK's streams are open and running before the clicks start
    harness = ClickHarness("pcw_mic_feed", "pcw_speaker_monitor")
    try:
        via_sdk = click_latency(harness, clicks)
    finally:
        harness.close()
        stop.set()
        loop.join(10)
    for name, values in (("direct", direct), ("sdk", via_sdk)):
        result[f"{name}_ms_median"] = round(statistics.median(values), 1) if values else None
        result[f"{name}_ms_min_max"] = [round(min(values), 1), round(max(values), 1)] if values else None
        result[f"{name}_clicks_found"] = f"{len(values)}/{clicks}"
    if direct and via_sdk:
        result["added_by_sdk_capture_and_playout_ms"] = round(statistics.median(via_sdk) - statistics.median(direct), 1)
    # The two halves on their own (each includes half of the harness's own ~10 ms).
    result["capture_only_ms"] = _summary(capture_only(clicks, buffer_ms))
    result["playout_only_ms"] = _summary(playout_only(clicks, buffer_ms))
    result["buffer_ms"] = buffer_ms
    return result


def connect(emulator: Any) -> pcw.PureCloudWebrtcSdk:
    sdk = pcw.PureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                 streaming_base_url=emulator.streaming_base_url, ice_host_addresses=["127.0.0.1"],
                                 default_source=pcw.media.SilenceSource(), default_sink=NullSink())
    sdk.initialize(timeout=15)
    return sdk


def answer(sdk: pcw.PureCloudWebrtcSdk, emulator: Any, source: Any, sink: Any) -> Tuple[Any, Any]:
    with sdk.expect_event("pendingSession", timeout=15) as ev:
        call = emulator.inbound_call(tone_hz=440.0)
    with sdk.expect_event("sessionStarted", timeout=15) as started:
        sdk.accept_pending_session(ev.value.id, source=source, sink=sink)
    call.wait_state("connected", timeout=15)
    call.wait_for_audio(timeout=15, min_seconds=0.5)
    return started.value, call


class StampedSink(AudioSink):
    def __init__(self) -> None:
        self.frames: List[Tuple[float, float]] = []

    def write(self, frame: Any) -> None:
        self.frames.append((time.monotonic(), rms_dbfs(frame_to_mono(frame))))


def measure_call_one_way(rounds: int) -> Dict[str, Any]:
    """Far end starts its tone at t0; the SDK's sink gets the first loud frame at t1: t1 - t0 (ms)."""
    from purecloud_webrtc.emulator import Emulator

    delays = []
    with Emulator() as emulator:
        sdk = connect(emulator)
        try:
            sink = StampedSink()
            session, call = answer(sdk, emulator, ToneSource(660.0), sink)
            for _ in range(rounds):
                call.set_tone(amplitude=0.0)
                time.sleep(0.4)
                t0 = time.monotonic()
                call.set_tone(amplitude=0.3)
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:
                    loud = [at for at, level in list(sink.frames) if at >= t0 and level > -40]
                    if loud:
                        delays.append((loud[0] - t0) * 1000)
                        break
                    time.sleep(0.005)
                time.sleep(0.2)
            sdk.end_session(id=session.id)
        finally:
            sdk.close()
    return {"call_one_way_ms_median": round(statistics.median(delays), 1) if delays else None,
            "call_one_way_ms_min_max": [round(min(delays), 1), round(max(delays), 1)] if delays else None,
            "rounds": len(delays)}


def measure_cpu(server: PulseServer, seconds: float) -> Dict[str, Any]:
    from purecloud_webrtc.emulator import Emulator

    result: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "source.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(tone(523.25, 5).astype("<i2").tobytes())
        with server.play(tone(523.25, seconds + 30), "pcw_mic_feed"):
            for kind in ("files", "devices"):
                with Emulator() as emulator:
                    sdk = connect(emulator)
                    try:
                        if kind == "files":
                            source: Any = WavFileSource(wav)
                            sink: Any = WavRecorderSink(Path(scratch) / "heard.wav")
                        else:
                            source, sink = MicrophoneSource("pcw_mic"), SpeakerSink("pcw_speaker")
                        session, call = answer(sdk, emulator, source, sink)
                        time.sleep(1.0)
                        wall, cpu, pulse_cpu = time.monotonic(), time.process_time(), server.cpu_seconds()
                        time.sleep(seconds)
                        wall = time.monotonic() - wall
                        cpu = time.process_time() - cpu
                        pulse_cpu = server.cpu_seconds() - pulse_cpu
                        heard = call.heard_frequency(1.0)
                        sdk.end_session(id=session.id)
                    finally:
                        sdk.close()
                result[kind] = {
                    "process_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
                    "pulseaudio_cpu_percent_of_one_core": round(100 * pulse_cpu / wall, 1),
                    "far_end_heard_hz": round(heard, 1),
                }
    result["seconds"] = seconds
    result["note"] = "process CPU includes the emulator's far end (an aiortc peer), the same in both runs"
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("latency", "call", "cpu"), help="run one measurement")
    p.add_argument("--clicks", type=int, default=12)
    p.add_argument("--buffer-ms", type=float, default=20.0, help="SDK device buffer for the latency run")
    p.add_argument("--seconds", type=float, default=10.0, help="call length for the CPU run")
    args = p.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aioice").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="pcw-bench-") as root:
        server = PulseServer(Path(root))
        server.start()
        import os

        os.environ.update(server.env)
        try:
            report: Dict[str, Any] = {}
            if args.only in (None, "latency"):
                report["latency"] = measure_latency(server, args.clicks, args.buffer_ms)
                print(json.dumps({"latency": report["latency"]}), flush=True)
            if args.only in (None, "call"):
                report["call"] = measure_call_one_way(max(3, args.clicks // 2))
                print(json.dumps({"call": report["call"]}), flush=True)
            if args.only in (None, "cpu"):
                report["cpu"] = measure_cpu(server, args.seconds)
                print(json.dumps({"cpu": report["cpu"]}), flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
