"""A real call between two aiortc peers on 127.0.0.1 with our sources and sinks: a tone each way."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from purecloud_webrtc import _ice
from purecloud_webrtc.media import (
    BufferSink,
    SinkPump,
    ToneSource,
)


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def _candidate_addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


def test_loopback_call_tones_both_ways() -> None:
    """Two real aiortc peers on 127.0.0.1: Opus over DTLS-SRTP, a tone each way."""

    async def main() -> tuple[float, float, list[str], list[str]]:
        _ice.restrict_host_addresses(asyncio.get_running_loop(), ["127.0.0.1"])
        config = RTCConfiguration(iceServers=[])
        pc1, pc2 = RTCPeerConnection(config), RTCPeerConnection(config)
        buf1, buf2 = BufferSink(), BufferSink()  # what pc1 hears, what pc2 hears
        pumps: list[SinkPump] = []
        states1: list[str] = []
        states2: list[str] = []

        def watch(pc: RTCPeerConnection, sink: BufferSink, states: list[str]) -> None:
            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                pump = SinkPump(track, sink)
                pumps.append(pump)
                pump.start()

            @pc.on("connectionstatechange")
            def on_state() -> None:
                states.append(pc.connectionState)

        watch(pc1, buf1, states1)
        watch(pc2, buf2, states2)
        source1, source2 = ToneSource(440), ToneSource(880)
        pc1.addTrack(source1.create_track())
        pc2.addTrack(source2.create_track())
        try:
            await pc1.setLocalDescription(await pc1.createOffer())
            assert _candidate_addresses(pc1.localDescription.sdp) == {"127.0.0.1"}
            await pc2.setRemoteDescription(pc1.localDescription)
            await pc2.setLocalDescription(await pc2.createAnswer())
            assert _candidate_addresses(pc2.localDescription.sdp) == {"127.0.0.1"}
            await pc1.setRemoteDescription(pc2.localDescription)
            await wait_until(
                lambda: buf1.total_seconds >= 1.5 and buf2.total_seconds >= 1.5, 8, "1.5 s of audio each way"
            )
            return buf1.dominant_frequency(1.0), buf2.dominant_frequency(1.0), states1, states2
        finally:
            for pump in pumps:
                await pump.stop()
            source1.close()
            source2.close()
            await pc1.close()
            await pc2.close()
            _ice.release_host_addresses(asyncio.get_running_loop())

    heard_by_1, heard_by_2, states1, states2 = run(main())
    assert heard_by_1 == pytest.approx(880, abs=2)
    assert heard_by_2 == pytest.approx(440, abs=2)
    assert states1[:2] == ["connecting", "connected"]
    assert states2[:2] == ["connecting", "connected"]

