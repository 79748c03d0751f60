"""Shared pieces of the benchmarks: the click signal, its detector, peers on 127.0.0.1, the Node party.

The signal every sender plays is a quiet 300 Hz tone (so gaps are visible) with
a loud 5 ms 2 kHz burst (a *click*) at the start of one frame every second.
The sender notes the wall-clock time each click frame leaves its track; a
receiver notes the wall-clock time the frame holding the click comes out of
its track (plus the click's offset in it).  The difference is the mouth-to-ear
latency track to track.  The Node party (libwebrtc) runs the same detector.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the loss relay lives with the tests

from lossrelay import LossRelay  # noqa: E402

RATE = 48000
FRAME = 960
CLICK_LEVEL = 14000
SILENT_RMS = 200.0
QUIET = 0.3
TIME_BASE = fractions.Fraction(1, RATE)

__all__ = ["ClickTrack", "ClickDetector", "LossRelay", "NodeParty", "new_pc", "loopback_only", "percentile",
           "match_latencies", "ROOT"]


def new_pc() -> RTCPeerConnection:
    """A peer connection with no ICE server (aiortc would otherwise add a public STUN server)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def loopback_only(sdp: str) -> str:
    """``sdp`` without any candidate that is not 127.0.0.1/UDP."""
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if parts[2].lower() != "udp" or parts[4] != "127.0.0.1":
                continue
        out.append(line)
    return "\r\n".join(out)


def percentile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


class ClickTrack(MediaStreamTrack):
    """Quiet tone + a click every ``period`` seconds, paced in real time; remembers when each click left."""

    kind = "audio"

    def __init__(self, period: float = 1.0, tone_hz: float = 300.0) -> None:
        super().__init__()
        self.period_frames = max(1, int(round(period * RATE / FRAME)))
        self.tone_hz = tone_hz
        self.sent: List[float] = []
        self._n = 0
        self._start: Optional[float] = None
        self._phase = 0.0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            delay = self._start + self._n * FRAME / RATE - now
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:
                self._start = now - self._n * FRAME / RATE
        step = 2 * np.pi * self.tone_hz / RATE
        samples = np.sin(self._phase + step * np.arange(FRAME)) * 3000.0
        self._phase = float((self._phase + step * FRAME) % (2 * np.pi))
        click = self._n > 25 and self._n % self.period_frames == 0
        if click:
            burst = np.sin(2 * np.pi * 2000.0 * np.arange(240) / RATE) * 29000.0
            samples[:240] = burst
        frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._n * FRAME
        frame.time_base = TIME_BASE
        self._n += 1
        if click:
            self.sent.append(time.time())
        return frame


class ClickDetector:
    """Receiver side: clicks heard (wall-clock times), frames, gaps (silent or missing audio)."""

    def __init__(self) -> None:
        self.clicks: List[float] = []
        self.frames = 0
        self.silent_ms = 0.0
        self.stall_ms = 0.0
        self.gap_events = 0
        self.first_audio: Optional[float] = None
        self._last_click = -1e9
        self._last_at: Optional[float] = None
        self._in_gap = False

    def feed(self, frame: av.AudioFrame, at: float) -> None:
        data = frame.to_ndarray().reshape(-1)
        channels = len(frame.layout.channels)
        mono = data[::channels].astype(np.float64)
        rms = float(np.sqrt(np.mean(mono * mono))) if mono.size else 0.0
        if self.first_audio is None:
            if rms < SILENT_RMS:
                return
            self.first_audio = at
        self.frames += 1
        duration = mono.size / float(frame.sample_rate or RATE)
        gap = False
        if self._last_at is not None and at - self._last_at > duration + 0.010:
            # The track stalled: nothing to play for that long (aiortc after a loss).
            self.stall_ms += (at - self._last_at - duration) * 1000.0
            gap = True
        self._last_at = at
        if rms < SILENT_RMS:
            self.silent_ms += duration * 1000.0
            gap = True
        if gap and not self._in_gap:
            self.gap_events += 1
        self._in_gap = gap
        loud = np.flatnonzero(np.abs(mono) > CLICK_LEVEL)
        if loud.size:
            t = at + loud[0] / float(frame.sample_rate or RATE)
            if t - self._last_click > QUIET:
                self.clicks.append(t)
            self._last_click = t

    @property
    def gap_ms(self) -> float:
        return self.silent_ms + self.stall_ms


def match_latencies(sent: List[float], heard: List[float], window: float = 0.95) -> List[float]:
    """Latency of each heard click: to the latest click sent before it (within ``window`` seconds)."""
    out = []
    for t in heard:
        before = [s for s in sent if s <= t and t - s < window]
        if before:
            out.append((t - max(before)) * 1000.0)
    return out


async def read_track(track: MediaStreamTrack, detector: ClickDetector, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        detector.feed(frame, time.time())


class NodeParty:
    """The libwebrtc party (``benchmarks/node/party.js``) as an asyncio subprocess."""

    def __init__(self) -> None:
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._waiters: Dict[Any, "asyncio.Future[Dict[str, Any]]"] = {}
        self.clicks: Dict[int, List[float]] = {}
        self._reader: Optional["asyncio.Task[None]"] = None

    @staticmethod
    def available() -> bool:
        return os.path.isdir(os.path.join(HERE, "node", "node_modules", "@roamhq", "wrtc"))

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "node", os.path.join(HERE, "node", "party.js"), cwd=os.path.join(HERE, "node"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24)
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == "click":
                self.clicks.setdefault(msg["id"], []).append(msg["t"] / 1000.0)
                continue
            key = msg.get("id", "setup" if "setup" in msg else None)
            fut = self._waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(RuntimeError("the Node party exited"))

    async def request(self, msg: Dict[str, Any], key: Any, timeout: float = 30.0) -> Dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        fut: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        result = await asyncio.wait_for(fut, timeout)
        if "error" in result:
            raise RuntimeError(f"Node party: {result['error']}")
        return result

    async def close(self) -> None:
        if self.proc is None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd":"quit"}\n')
            await self.proc.stdin.drain()
            await asyncio.wait_for(self.proc.wait(), 5)
        except Exception:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


def median(values: List[float]) -> Optional[float]:
    return statistics.median(values) if values else None
