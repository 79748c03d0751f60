"""Call setup times: ours (SDK + emulator, the whole signalling path) / two raw aiortc peers / two libwebrtc peers.

Ours, per call: propose sent by the emulator → ``sessionStarted`` → media connected (ICE completed on the
SDK's side) → first audible frame at the SDK's sink.  Raw aiortc and libwebrtc: offer created → ICE
connected on the answerer → first audible frame at the answerer.  Also the signalling round trip (an
XMPP ping between the SDK and the emulator), for the goal "within 1.5x of raw aiortc plus one round trip".
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Dict, List, Optional

import av
import numpy as np

import purecloud_webrtc as pcw
from purecloud_webrtc._xml import element, q
from purecloud_webrtc.media import AudioSink, ToneSource

from _common import NodeParty, loopback_only, new_pc

SILENT_RMS = 200.0


class FirstAudibleSink(AudioSink):
    """Notes when the first audible frame arrives (``write`` runs on the SDK's core loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.first: Optional[float] = None

    def write(self, frame: av.AudioFrame) -> None:
        if self.first is None:
            data = frame.to_ndarray().astype(np.float64)
            if float(np.sqrt(np.mean(data * data))) > SILENT_RMS:
                self.first = time.monotonic()


def measure_ours(n: int, log: Any) -> Dict[str, List[float]]:
    """``n`` inbound calls, auto-answered, one after the other, against an in-process emulator."""
    from purecloud_webrtc.emulator import Emulator

    out: Dict[str, List[float]] = {"started": [], "connected": [], "first_audio": [], "rtt": []}
    with Emulator() as emu:
        sinks: List[FirstAudibleSink] = []
        sdk = pcw.PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url,
                                     streaming_base_url=emu.streaming_base_url, ice_host_addresses=["127.0.0.1"],
                                     stats_interval=0)
        try:
            sdk.initialize(timeout=15)
            for _ in range(20):
                ping = element(q("client", "iq"), {"type": "get"}, element(q("ping", "ping")))
                t0 = time.monotonic()
                sdk._core.call(lambda: sdk._core.stream.iq(ping), 5, "ping")
                out["rtt"].append((time.monotonic() - t0) * 1000.0)
            for i in range(n):
                sink = FirstAudibleSink()
                sinks.append(sink)
                started = threading.Event()
                box: Dict[str, Any] = {}

                def on_pending(pending: Any, sink: FirstAudibleSink = sink) -> None:
                    # What a user's script does: answer from the callback, with its own sink.
                    sdk.accept_pending_session(pending.id, source=ToneSource(660.0), sink=sink)

                def on_started(session: Any, box: Dict[str, Any] = box, started: threading.Event = started) -> None:
                    box["t"] = time.monotonic()
                    box["session"] = session
                    started.set()

                sdk.once("pendingSession", on_pending)
                sdk.once("sessionStarted", on_started)
                t0 = time.monotonic()
                call = emu.inbound_call(tone_hz=440.0)
                if not started.wait(15):
                    raise RuntimeError("sessionStarted did not come")
                session = box["session"]
                deadline = time.monotonic() + 15
                while (sink.first is None or session._core_session.connected_at is None) and time.monotonic() < deadline:
                    time.sleep(0.005)
                if sink.first is None:
                    raise RuntimeError("no audio")
                out["started"].append((box["t"] - t0) * 1000.0)
                out["connected"].append((session._core_session.connected_at - t0) * 1000.0)
                out["first_audio"].append((sink.first - t0) * 1000.0)
                with sdk.expect_event("sessionEnded", timeout=15):
                    call.hangup()
        finally:
            sdk.close()
    log(f"setup ours: {n} calls")
    return out


async def _raw_once() -> Dict[str, float]:
    from aiortc import RTCSessionDescription

    a, b = new_pc(), new_pc()
    a.addTrack(ToneSource(440.0).create_track())
    t0 = time.monotonic()
    result: Dict[str, float] = {}
    got = asyncio.Event()

    @b.on("iceconnectionstatechange")
    def on_ice() -> None:
        if "connected" not in result and b.iceConnectionState in ("completed", "connected"):
            result["connected"] = (time.monotonic() - t0) * 1000.0

    @b.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            while True:
                frame = await track.recv()
                data = frame.to_ndarray().astype(np.float64)
                if float(np.sqrt(np.mean(data * data))) > SILENT_RMS:
                    result["first_audio"] = (time.monotonic() - t0) * 1000.0
                    got.set()
                    return
        asyncio.ensure_future(read())

    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(RTCSessionDescription(loopback_only(a.localDescription.sdp), "offer"))
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(RTCSessionDescription(loopback_only(b.localDescription.sdp), "answer"))
    await asyncio.wait_for(got.wait(), 15)
    await a.close()
    await b.close()
    return result


async def measure_raw(n: int) -> Dict[str, List[float]]:
    out: Dict[str, List[float]] = {"connected": [], "first_audio": []}
    for _ in range(n):
        r = await _raw_once()
        out["connected"].append(r["connected"])
        out["first_audio"].append(r["first_audio"])
    return out


async def measure_libwebrtc(node: NodeParty, n: int) -> Dict[str, List[float]]:
    reply = await node.request({"cmd": "setup", "n": n}, "setup", timeout=30 + 15 * n)
    rows = reply["setup"]
    return {"connected": [r["connected_ms"] for r in rows if r["connected_ms"] is not None],
            "first_audio": [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]}
