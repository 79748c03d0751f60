"""Mouth-to-ear latency and continuity under loss and jitter: ours / raw aiortc / libwebrtc, side by side.

For one network condition, three calls run at the same time, each through its
own loss relay on 127.0.0.1 with the same settings and seed: an aiortc sender
playing clicks (:class:`~_common.ClickTrack`) to

* **ours**: an aiortc receiver with the SDK's receive path
  (:func:`purecloud_webrtc.media.receive.attach`, exactly what every SDK session installs);
* **raw aiortc**: an aiortc receiver as it comes;
* **libwebrtc**: the Node party (``@roamhq/wrtc``).

Only the sender → receiver direction is impaired; RTCP and ICE pass untouched.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from purecloud_webrtc.media.receive import attach

from _common import (ClickDetector, ClickTrack, LossRelay, NodeParty, loopback_only, match_latencies, median,
                     new_pc, read_track)


@dataclass
class Outcome:
    """One receiver's figures for one condition."""

    latencies: List[float] = field(default_factory=list)
    gap_ms: float = 0.0
    gap_events: int = 0
    concealed_ms: Optional[float] = None
    frames: int = 0
    sent_clicks: int = 0
    rtp_dropped: int = 0

    @property
    def p50(self) -> Optional[float]:
        return median(self.latencies)

    @property
    def start(self) -> Optional[float]:
        return median(self.latencies[:5])

    @property
    def end(self) -> Optional[float]:
        return median(self.latencies[-5:])

    @property
    def heard(self) -> str:
        return f"{len(self.latencies)}/{self.sent_clicks}"


async def _python_receiver(ours: bool, relay: LossRelay, stop: asyncio.Event) -> Dict[str, Any]:
    sender, receiver = new_pc(), new_pc()
    clicks = ClickTrack()
    sender.addTrack(clicks)
    detector = ClickDetector()
    state: Dict[str, Any] = {"sender": sender, "receiver": receiver, "clicks": clicks, "detector": detector,
                             "track": None, "tasks": []}

    @receiver.on("track")
    def on_track(track: Any) -> None:
        if track.kind != "audio":
            return
        if ours:
            wrapped = attach(receiver, track)
            assert wrapped is not None, "the receive path could not be attached"
            track = wrapped
        state["track"] = track
        state["tasks"].append(asyncio.ensure_future(read_track(track, detector, stop)))

    await sender.setLocalDescription(await sender.createOffer())
    offer = relay.rewrite_sdp(loopback_only(sender.localDescription.sdp), "b")
    from aiortc import RTCSessionDescription

    await receiver.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await receiver.setLocalDescription(await receiver.createAnswer())
    answer = relay.rewrite_sdp(loopback_only(receiver.localDescription.sdp), "a")
    await sender.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return state


async def _node_receiver(node: NodeParty, call_id: int, relay: LossRelay) -> Dict[str, Any]:
    from aiortc import RTCSessionDescription

    sender = new_pc()
    clicks = ClickTrack()
    sender.addTrack(clicks)
    await sender.setLocalDescription(await sender.createOffer())
    offer = relay.rewrite_sdp(loopback_only(sender.localDescription.sdp), "b")
    reply = await node.request({"cmd": "answer", "id": call_id, "sdp": offer}, call_id)
    answer = relay.rewrite_sdp(loopback_only(reply["sdp"]), "a")
    await sender.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return {"sender": sender, "clicks": clicks, "id": call_id}


async def run_condition(loss: float, jitter: float, seconds: float, node: Optional[NodeParty], seed: int,
                        call_id: int) -> Dict[str, Outcome]:
    """Run the three receivers for ``seconds`` under ``loss`` (fraction) and ``jitter`` (seconds)."""
    stop = asyncio.Event()
    relays = {name: LossRelay(loss=loss, jitter=jitter, impaired=("a->b",), seed=seed, max_seconds=seconds + 120)
              for name in ("ours", "raw", "libwebrtc")}
    results: Dict[str, Outcome] = {}
    states: Dict[str, Dict[str, Any]] = {}
    try:
        states["ours"] = await _python_receiver(True, relays["ours"], stop)
        states["raw"] = await _python_receiver(False, relays["raw"], stop)
        if node is not None:
            states["libwebrtc"] = await _node_receiver(node, call_id, relays["libwebrtc"])
        await asyncio.sleep(seconds)
        for name, state in states.items():
            out = Outcome(sent_clicks=len(state["clicks"].sent), rtp_dropped=relays[name].stats["a->b"].dropped)
            if name == "libwebrtc":
                assert node is not None
                heard = node.clicks.get(call_id, [])
                stats = (await node.request({"cmd": "stats", "id": call_id}, call_id))["stats"]
                out.gap_ms = 10.0 * stats["silent10ms"] + stats["lateMs"]
                out.gap_events = stats["gapEvents"]
                out.concealed_ms = stats["concealedMs"]
                out.frames = stats["frames10ms"] // 2
            else:
                detector: ClickDetector = state["detector"]
                heard = detector.clicks
                out.gap_ms, out.gap_events, out.frames = detector.gap_ms, detector.gap_events, detector.frames
                if name == "ours" and state["track"] is not None:
                    jb = state["track"].stats()
                    out.concealed_ms = jb.concealed_ms if jb is not None else 0.0
            out.latencies = match_latencies(state["clicks"].sent, heard)
            results[name] = out
    finally:
        stop.set()
        for name, state in states.items():
            if name == "libwebrtc" and node is not None:
                try:
                    await node.request({"cmd": "close", "id": state["id"]}, state["id"])
                except Exception:
                    pass
            for key in ("sender", "receiver"):
                if key in state:
                    await state[key].close()
            for task in state.get("tasks", []):
                task.cancel()
        for relay in relays.values():
            relay.close()
    return results


CONDITIONS = [
    ("0 % loss", 0.0, 0.0),
    ("1 % loss", 0.01, 0.0),
    ("5 % loss", 0.05, 0.0),
    ("30 ms jitter", 0.0, 0.030),
]


async def run_all(seconds: float, node: Optional[NodeParty], log: Any) -> Dict[str, Dict[str, Outcome]]:
    """Every condition of :data:`CONDITIONS`, one after the other."""
    out: Dict[str, Dict[str, Outcome]] = {}
    for i, (label, loss, jitter) in enumerate(CONDITIONS):
        t0 = time.monotonic()
        out[label] = await run_condition(loss, jitter, seconds, node, seed=11 + i, call_id=100 + i)
        log(f"latency {label}: " + ", ".join(
            f"{name} p50 {o.p50 if o.p50 is None else round(o.p50)} ms ({o.heard} clicks)"
            for name, o in out[label].items()) + f" [{time.monotonic() - t0:.0f} s]")
    return out
