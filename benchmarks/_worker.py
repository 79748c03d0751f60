"""The measured process of the capacity and idle benchmarks, driven by JSON lines on stdin.

``python _worker.py sdk API_URL STREAMING_URL TOKEN``: one SDK connected to the emulator; it places
outbound calls by REST (the emulator's far end plays a tone, the SDK answers with a tone and plays the
far end into a null sink).  ``python _worker.py raw``: raw aiortc peers answering offers from the
orchestrator, each sending a tone and reading the remote track.

Commands: ``{"cmd":"calls","n":N}`` (sdk: have N calls up) / ``{"cmd":"answer","offers":[...]}`` (raw),
``{"cmd":"measure","seconds":S}``, ``{"cmd":"idle","seconds":S}``, ``{"cmd":"quit"}``.  Answers are one
JSON line each.  CPU is this process's (all threads), RSS from /proc.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, __file__.rsplit("/", 1)[0])


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def reply(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def track(seconds: float, backlog: Any, interval: float = 0.05) -> List[List[float]]:
    """``[[time.monotonic(), backlog_ms], ...]`` every ``interval`` s for ``seconds`` s."""
    out: List[List[float]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append([time.monotonic(), float(backlog())])
        time.sleep(interval)
    return out


# -- the SDK ---------------------------------------------------------------------------------------


def make_source(kind: str) -> Any:
    """What the measured side sends: ``tone`` (660 Hz) or ``noise`` (audio that never repeats a frame, so
    every frame is encoded: no frame is ever the same within the run)."""
    import numpy as np

    from purecloud_webrtc.media import CallbackSource, ToneSource

    if kind == "tone":
        return ToneSource(660.0)
    noise = np.random.default_rng(1).normal(0, 3000, 48000 * 10 + 7).clip(-32767, 32767).astype(np.int16)
    pos = 0

    def produce(n: int) -> Any:
        nonlocal pos
        out = np.take(noise, np.arange(pos, pos + n), mode="wrap")
        pos = (pos + n) % noise.size
        return out

    return CallbackSource(produce)


def run_sdk(api: str, streaming: str, token: str, jitter_buffer: bool = True, source: str = "tone") -> None:
    import purecloud_webrtc as pcw
    from purecloud_webrtc.media import NullSink

    sdk = pcw.PureCloudWebrtcSdk(token, api_base_url=api, streaming_base_url=streaming,
                                 ice_host_addresses=["127.0.0.1"], default_source=make_source(source),
                                 default_sink=NullSink(), stats_interval=0, jitter_buffer=jitter_buffer)
    sdk.initialize(timeout=30)
    reply({"ready": True, "rss_mb": rss_mb()})
    try:
        for line in sys.stdin:
            msg = json.loads(line)
            if msg["cmd"] == "calls":
                want = int(msg["n"])
                have = len(sdk.sessions)
                for i in range(want - have):
                    sdk.start_softphone_session(phone_number=f"+1555{have + i:07d}")
                deadline = time.monotonic() + 30 + want
                while time.monotonic() < deadline:
                    live = sdk.sessions
                    if len(live) >= want and all(s.frames_received > 25 for s in live):
                        break
                    time.sleep(0.1)
                reply({"calls": len(sdk.sessions)})
            elif msg["cmd"] == "measure":
                sessions = sdk.sessions
                before = {s.id: s.get_stats() for s in sessions}
                frames0 = {s.id: s.frames_received for s in sessions}
                cpu0, t0 = time.process_time(), time.monotonic()
                time.sleep(float(msg["seconds"]))
                cpu1, t1 = time.process_time(), time.monotonic()
                fps, growth, concealed = [], [], []
                for s in sessions:
                    after = s.get_stats()
                    fps.append((s.frames_received - frames0[s.id]) / (t1 - t0))
                    b = before[s.id]
                    growth.append(after.jitter_buffer_delay_ms - b.jitter_buffer_delay_ms)
                    frames = max(1.0, (s.frames_received - frames0[s.id]))
                    concealed.append((after.concealed_ms - b.concealed_ms) / 20.0 / frames)
                reply({"fps": fps, "lag_growth_ms": growth, "concealed_fraction": concealed,
                       "cpu": (cpu1 - cpu0) / (t1 - t0), "rss_mb": rss_mb()})
            elif msg["cmd"] == "track":
                # The backlog over time: audio buffered ahead of the playout point (the worst call).
                reply({"samples": track(float(msg["seconds"]), lambda: max(
                    s.get_stats().jitter_buffer_depth_ms for s in sdk.sessions))})
            elif msg["cmd"] == "idle":
                cpu0, t0 = time.process_time(), time.monotonic()
                time.sleep(float(msg["seconds"]))
                reply({"cpu": (time.process_time() - cpu0) / (time.monotonic() - t0), "rss_mb": rss_mb()})
            elif msg["cmd"] == "quit":
                break
    finally:
        sdk.close()
        reply({"bye": True})


# -- raw aiortc ------------------------------------------------------------------------------------


class RawCall:
    def __init__(self, source: str = "tone") -> None:
        from _common import new_pc

        self.source = source
        self.pc = new_pc()
        self.frames = 0
        self.t_first: Optional[float] = None
        self.pts_first = 0
        self.lag = 0.0
        self.last_at: Optional[float] = None
        self.stall = 0.0

    async def answer(self, offer: str) -> str:
        from aiortc import RTCSessionDescription

        from _common import loopback_only

        self.pc.addTrack(make_source(self.source).create_track())

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            asyncio.ensure_future(self.read(track))

        await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return loopback_only(self.pc.localDescription.sdp)

    async def read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if self.t_first is None:
                self.t_first, self.pts_first = now, frame.pts
            self.frames += 1
            if self.last_at is not None and now - self.last_at > 0.030:
                # Nothing to play for that long: what a real-time output hears as a gap.
                self.stall += now - self.last_at - 0.020
            self.last_at = now
            # How far behind the sender's clock this frame comes out (grows when we cannot keep up).
            self.lag = (now - self.t_first) - (frame.pts - self.pts_first) / 48000.0


def run_raw(source: str = "tone") -> None:
    from purecloud_webrtc import _ice

    async def main() -> None:
        loop = asyncio.get_running_loop()
        _ice.restrict_host_addresses(loop, ["127.0.0.1"])
        calls: List[RawCall] = []
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        reply({"ready": True, "rss_mb": rss_mb()})
        while True:
            line = await reader.readline()
            if not line:
                break
            msg = json.loads(line)
            if msg["cmd"] == "answer":
                answers = []
                for offer in msg["offers"]:
                    call = RawCall(source)
                    calls.append(call)
                    answers.append(await call.answer(offer))
                reply({"answers": answers})
            elif msg["cmd"] == "wait":
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not all(c.frames > 25 for c in calls):
                    await asyncio.sleep(0.1)
                reply({"calls": sum(1 for c in calls if c.frames > 25)})
            elif msg["cmd"] == "measure":
                frames0 = [c.frames for c in calls]
                lag0 = [c.lag for c in calls]
                stall0 = [c.stall for c in calls]
                cpu0, t0 = time.process_time(), time.monotonic()
                await asyncio.sleep(float(msg["seconds"]))
                cpu1, t1 = time.process_time(), time.monotonic()
                reply({"fps": [(c.frames - f) / (t1 - t0) for c, f in zip(calls, frames0)],
                       "lag_growth_ms": [(c.lag - l0) * 1000.0 for c, l0 in zip(calls, lag0)],
                       # aiortc conceals nothing: the share of the window it had nothing to play instead.
                       "concealed_fraction": [(c.stall - s0) / (t1 - t0) for c, s0 in zip(calls, stall0)],
                       "cpu": (cpu1 - cpu0) / (t1 - t0), "rss_mb": rss_mb()})
            elif msg["cmd"] == "track":
                # How late the worst call's frames come out against the sender's clock, above its own
                # level when the tracking began (aiortc has no buffer depth to read).
                base = [c.lag for c in calls]
                samples: List[List[float]] = []
                end = time.monotonic() + float(msg["seconds"])
                while time.monotonic() < end:
                    samples.append([time.monotonic(), max((c.lag - b) * 1000.0 for c, b in zip(calls, base))])
                    await asyncio.sleep(0.05)
                reply({"samples": samples})
            elif msg["cmd"] == "quit":
                break
        for call in calls:
            await call.pc.close()
        reply({"bye": True})

    asyncio.run(main())


if __name__ == "__main__":
    kind = "noise" if "--noise" in sys.argv else "tone"
    if sys.argv[1] == "sdk":
        run_sdk(*sys.argv[2:5], jitter_buffer="--no-jitter-buffer" not in sys.argv, source=kind)
    else:
        run_raw(kind)
