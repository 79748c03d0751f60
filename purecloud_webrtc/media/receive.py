"""Our audio receive path plugged into an aiortc receiver: packets in, paced 20 ms frames out.

aiortc's ``RTCRtpReceiver`` parses SRTP, keeps the RTCP statistics (receiver
reports, interarrival jitter, loss) and then hands every depayloaded packet to
its jitter buffer object.  :func:`attach` swaps that object, for one receiver,
for a *tap* with the same ``add(packet)`` method: the receiver keeps doing
everything else (RTCP, SSRC tracking, stats), but its decoder thread gets no
work, and the packets go to our :class:`~purecloud_webrtc.media.jitter.JitterBuffer`
instead.  A :class:`JitterBufferTrack` then plays them out on its own 20 ms
clock with loss concealment.  Nothing installed is edited; when the receiver
does not look as expected (another aiortc version), :func:`attach` returns
``None`` and aiortc's own path stays in place.

The remote track aiortc created still ends when the receiver stops (its
decoder thread sends the end-of-stream marker); :class:`JitterBufferTrack`
watches it and ends too.

Threading: everything here runs on the asyncio loop that owns the peer
connection (the SDK's core loop).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from typing import Any, Callable, Optional

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .. import _internals
from ._pacing import PLAYOUT_GRID, grid_after, sleep_until
from .jitter import FRAME, RATE, JitterBuffer, JitterBufferConfig, JitterBufferStats, make_decoder

__all__ = ["JitterBufferTrack", "attach", "find_receiver", "codec_of"]

log = logging.getLogger(__name__)

_TIME_BASE = fractions.Fraction(1, RATE)
#: When the loop falls this far behind the playout clock, the clock restarts instead of bursting.
MAX_LAG = 0.2


class _PacketTap:
    """Stands where aiortc's audio ``JitterBuffer`` was: takes packets, never returns a frame."""

    capacity = 16

    def __init__(self, on_packet: Callable[[Any], None]) -> None:
        self._on_packet = on_packet

    def add(self, packet: Any) -> tuple:
        try:
            self._on_packet(packet)
        except Exception:  # a bug of ours must never break aiortc's RTP handling
            log.exception("jitter buffer: packet handling failed")
        return False, None


def find_receiver(pc: Any, track: MediaStreamTrack) -> Any:
    """The ``RTCRtpReceiver`` of ``pc`` whose track is ``track`` (``None`` if none)."""
    for transceiver in pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver.receiver
    return None


def codec_of(receiver: Any, payload_type: Optional[int] = None) -> Any:
    """The negotiated codec of ``receiver`` for ``payload_type`` (or its first audio codec), if known."""
    codecs = _internals.receiver_codecs(receiver)
    if payload_type is not None and payload_type in codecs:
        return codecs[payload_type]
    for codec in codecs.values():
        if codec.mimeType.lower() not in ("audio/rtx", "audio/telephone-event", "audio/cn"):
            return codec
    return None


class JitterBufferTrack(MediaStreamTrack):
    """The remote audio of one receiver, played out of our jitter buffer on a steady 20 ms clock.

    Frames are s16 stereo 48 kHz, 960 samples, like aiortc's.  Before the first
    packet ``recv()`` waits; after it, one frame leaves every 20 ms whatever the
    network does (decoded, recovered from FEC, concealed, or silence).

    :param remote: aiortc's remote track of the receiver (watched for its end).
    :param receiver: the ``RTCRtpReceiver``.
    :param config: jitter buffer tuning.
    :ivar buffer: the :class:`JitterBuffer` (``None`` until the first packet names the codec).
    :ivar codec: the codec of the stream, once known.
    """

    kind = "audio"

    def __init__(self, remote: MediaStreamTrack, receiver: Any, config: Optional[JitterBufferConfig] = None) -> None:
        super().__init__()
        self.remote = remote
        self.receiver = receiver
        self.config = config or JitterBufferConfig()
        self.buffer: Optional[JitterBuffer] = None
        self.codec: Any = None
        self.frames = 0
        #: RTP packets handed to us so far (media liveness reads it)
        self.packets = 0
        self.kinds: dict = {}
        self._payload_type: Optional[int] = None
        self._first_packet = asyncio.Event()
        self._first_arrival: Optional[float] = None
        self._next_tick: Optional[float] = None
        self._pts = 0
        self._retired = JitterBufferStats()
        self._watch = asyncio.ensure_future(self._watch_remote())

    # -- packets (called by the tap, on the loop) --------------------------------------------

    def _on_packet(self, packet: Any) -> None:
        if self.readyState != "live":
            return
        self.packets += 1
        if self.buffer is None or packet.payload_type != self._payload_type:
            codec = codec_of(self.receiver, packet.payload_type)
            if codec is None:
                return
            if self.buffer is not None:
                log.debug("jitter buffer: payload type %s -> %s; new decoder", self._payload_type,
                          packet.payload_type)
                self.buffer.close()
            self.codec, self._payload_type = codec, packet.payload_type
            self.buffer = JitterBuffer(make_decoder(codec), int(codec.clockRate), self.config)
        now = time.monotonic()
        self.buffer.put(packet.sequence_number, packet.timestamp, _internals.packet_payload(packet),
                        now, packet.ssrc)
        if self._first_arrival is None:
            self._first_arrival = now
            self._first_packet.set()

    async def _watch_remote(self) -> None:
        try:
            while True:
                await self.remote.recv()  # aiortc decodes nothing for it: this only returns at the end
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception:
            log.debug("jitter buffer: watching the remote track failed", exc_info=True)
        finally:
            if self.readyState == "live":
                self.stop()

    # -- frames ----------------------------------------------------------------------------

    #: :meth:`recv_pcm` gives 48 kHz mono samples
    pcm_rate = RATE

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame (s16 stereo), paced in real time.

        :raises MediaStreamError: once the track has ended.
        """
        pcm = np.repeat(await self._next(), 2, axis=1)  # the buffer is mono; frames are stereo like aiortc's
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self._pts - FRAME
        frame.time_base = _TIME_BASE
        return frame

    async def recv_pcm(self) -> np.ndarray:
        """The next 20 ms as 1-D int16 mono samples, paced in real time.

        :raises MediaStreamError: once the track has ended.
        """
        return (await self._next()).reshape(-1)

    async def _next(self) -> np.ndarray:
        if self.readyState != "live":
            raise MediaStreamError
        if self._next_tick is None:
            await self._first_packet.wait()
            if self.readyState != "live":
                raise MediaStreamError
            # The phase of our 20 ms clock against the packets' arrivals sets the delay for the whole
            # call (a packet is due at the tick that plays it): start ticking initial_delay_ms after the
            # first arrival, so packets arrive that long before their tick rather than just after one.
            assert self._first_arrival is not None
            # On the shared 5 ms playout grid (_pacing): the calls' playouts wake the loop together.
            start = grid_after(self._first_arrival + self.config.initial_delay_ms / 1000.0, PLAYOUT_GRID)
            if start > time.monotonic():
                await sleep_until(start)
                if self.readyState != "live":
                    raise MediaStreamError
                self._next_tick = start  # (not the grid after the wake-up: that is one step late)
            else:
                self._next_tick = grid_after(time.monotonic(), PLAYOUT_GRID)
        else:
            delay = self._next_tick - time.monotonic()
            if delay > 0:
                await sleep_until(self._next_tick)
                if self.readyState != "live":
                    raise MediaStreamError
            elif delay < -MAX_LAG:
                log.debug("jitter buffer track fell %.0f ms behind; re-anchoring its clock", -delay * 1000)
                self._next_tick = grid_after(time.monotonic(), PLAYOUT_GRID)
        assert self.buffer is not None
        pcm, kind = self.buffer.pull(time.monotonic())
        self._next_tick += FRAME / RATE
        self.frames += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self._pts += FRAME
        return pcm

    def stats(self) -> Optional[JitterBufferStats]:
        """The jitter buffer's counters (``None`` before the first packet)."""
        return self.buffer.stats if self.buffer is not None else None

    def stop(self) -> None:
        was_live = self.readyState == "live"
        super().stop()
        if was_live:
            self._first_packet.set()  # wake a recv() waiting for the first packet
            if not self._watch.done():
                self._watch.cancel()
            if self.buffer is not None:
                self.buffer.close()


def attach(pc: Any, track: MediaStreamTrack, config: Optional[JitterBufferConfig] = None) -> Optional[JitterBufferTrack]:
    """Route the packets of ``track``'s receiver into our jitter buffer; return the track to read instead.

    Call it from the peer connection's ``track`` event, before media flows.  Returns ``None`` (and
    leaves aiortc's path alone) for non-audio tracks or when the receiver has no jitter buffer
    where aiortc 1.x keeps it.
    """
    if track.kind != "audio":
        return None
    receiver = find_receiver(pc, track)
    holder: list = []
    tap = _PacketTap(lambda packet: holder[0]._on_packet(packet) if holder else None)
    if not _internals.replace_receiver_jitter_buffer(receiver, tap):
        # Recorded (and logged) by the adapter; the call goes on with aiortc's own receive path.
        return None
    ours = JitterBufferTrack(track, receiver, config)
    holder.append(ours)
    return ours
