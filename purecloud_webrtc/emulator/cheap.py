"""Far ends that cost little, so a benchmark measures the side it means to measure.

A far end built on aiortc the usual way encodes a tone every 20 ms (on aiortc's thread pool) and decodes
everything it receives (on its decoder thread): about as much CPU as the side under test, so with 2
cores the far ends ran out first and the capacity benchmark could not find the measured side's limit.
These send the same Opus packets over and over (a tone encoded once) and count what arrives without
decoding it; SRTP, RTP and ICE are still real.

- :class:`PreEncodedToneTrack`: an audio track yielding ready Opus packets (aiortc only packetizes them),
  paced in real time, with continuous timestamps.
- :class:`PacketCounter`: takes the place of an aiortc receiver's jitter buffer and counts packets.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any, Dict, List, Optional

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

__all__ = ["PreEncodedToneTrack", "PacketCounter"]

_RATE = 48000
_FRAME = 960
_TIME_BASE = fractions.Fraction(1, _RATE)
_cache: Dict[float, List[bytes]] = {}


def _tone_packets(frequency: float) -> List[bytes]:
    """One second of ``frequency`` as 50 Opus packets (cached); the tone is whole periods per second."""
    if frequency not in _cache:
        from ..media import _opus

        encoder = _opus.Encoder(channels=1, bitrate=32000)
        t = np.arange(_RATE) / _RATE
        pcm = (0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        try:
            _cache[frequency] = [encoder.encode(pcm[i:i + _FRAME]) for i in range(0, _RATE, _FRAME)]
        finally:
            encoder.close()
    return _cache[frequency]


class PreEncodedToneTrack(MediaStreamTrack):
    """A tone as ready Opus packets, one every 20 ms in real time (needs libopus; negotiate Opus)."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self._packets = _tone_packets(frequency)
        self._start: Optional[float] = None
        self._pts = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._pts / _RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        packet = av.Packet(self._packets[(self._pts // _FRAME) % len(self._packets)])
        packet.pts = self._pts
        packet.time_base = _TIME_BASE
        self._pts += _FRAME
        return packet


class PacketCounter:
    """Stands where an aiortc receiver's jitter buffer was: counts the RTP packets, decodes nothing.

    :ivar packets: packets received; :ivar first_at, last_at: ``time.monotonic()`` of the first and last.
    """

    def __init__(self) -> None:
        self.packets = 0
        self.first_at: Optional[float] = None
        self.last_at: Optional[float] = None

    def attach(self, receiver: Any) -> bool:
        """Put this counter in ``receiver``; ``False`` when aiortc does not look as expected."""
        from .. import _internals

        return _internals.replace_receiver_jitter_buffer(receiver, self)

    def add(self, packet: Any) -> tuple:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.packets += 1
        return False, None  # aiortc's jitter buffer contract: (PLI wanted, encoded frame)
