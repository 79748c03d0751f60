"""A time-based adaptive jitter buffer with loss concealment (pure logic, no I/O, no clock of its own).

aiortc's audio jitter buffer counts packets, waits for four of them before it
plays anything, has no concealment, and after one lost packet stalls ~300 ms and
keeps ~200 ms of extra latency for the rest of the call (docs/protocol.rst §13.2).  This
one is driven by time, like a telephone's:

* **A playout timeline.**  The caller pulls one 20 ms frame per tick of its own
  clock (:meth:`JitterBuffer.pull`); the buffer decodes the packet whose RTP
  timestamp is due, or conceals it.  A lost packet never stops the timeline, so
  latency does not grow with loss.
* **Loss concealment.**  A missing packet is rebuilt from the in-band FEC copy
  (LBRR) carried by the next packet when that one is already here, otherwise by
  the Opus decoder's packet loss concealment; a long outage fades to silence
  and the stream restarts cleanly when packets come back.
* **Adaptive delay.**  For every packet the buffer records its *lead*: how long
  before it was needed it arrived.  The target is that a low quantile of the
  leads over the last seconds stays just above a small safety margin: when
  packets arrive later than that (jitter grows, the sender's clock is slow) the
  buffer *expands* (inserts a pitch period, crossfaded); when they all arrive
  with room to spare (jitter shrank, the sender's clock is fast) it
  *accelerates* (removes one).  Both are small WSOLA-style edits, so clock drift
  is absorbed without clicks.  The depth is bounded by ``max_delay_ms``: beyond
  it the oldest audio is dropped.
* **Packet hygiene.**  Duplicates are dropped, reordered packets are put in
  place, packets that arrive after their playout time are counted late and
  dropped (and push the delay up), and timestamp jumps or a new SSRC restart
  the timeline.
* **FEC-aware delay.**  When the stream carries Opus in-band FEC and packets are
  being lost, the target grows by one packet so the FEC copy has arrived when a
  packet is missing.

Samples are 48 kHz mono int16, shaped ``(n, 1)`` (a stereo Opus stream is decoded to mono by libopus:
a call carries one voice, and half the samples are half the work of every stage here); RTP timestamps of
other clock rates are scaled to 48 kHz.  Everything here runs on one thread (the SDK's core loop); nothing
here sleeps or reads a clock: times are passed in (seconds, any monotonic
origin), which is what makes the buffer testable with a simulated network.
"""

from __future__ import annotations

import bisect
import collections
import logging
from dataclasses import dataclass, replace
from typing import Any, Deque, Dict, List, Optional, Protocol, Tuple

import numpy as np

from . import _opus

__all__ = [
    "JitterBufferConfig",
    "JitterBufferStats",
    "JitterBuffer",
    "AudioDecoder",
    "OpusAudioDecoder",
    "GenericAudioDecoder",
    "make_decoder",
    "FRAME",
    "RATE",
]

log = logging.getLogger(__name__)

RATE = 48000
#: Samples per channel of one 20 ms output frame.
FRAME = 960
CHANNELS = 1

#: Shortest pitch period a stretch inserts or removes (2 ms), and the crossfade length (5 ms).
_MIN_LAG = 96
_WIDTH = 240

# Kinds of output frame (what :meth:`JitterBuffer.pull` says it produced).
NORMAL, FEC, PLC, SILENCE, IDLE = "normal", "fec", "plc", "silence", "idle"


@dataclass(frozen=True)
class JitterBufferConfig:
    """Tuning of a :class:`JitterBuffer` (the defaults suit a softphone).

    :ivar margin_ms: how early the latest packets (the ``quantile`` of leads) should arrive.
    :ivar hysteresis_ms: slack above the margin before the buffer speeds up (avoids hunting).
    :ivar quantile: the fraction of packets allowed to be close to late (0.02 = 2 %).
    :ivar window_packets: how many recent packets the delay estimate looks at (~3 s at 50/s).
    :ivar initial_delay_ms: delay of the first packet (and after a restart) before anything is known.
    :ivar min_delay_ms: the delay never shrinks below this (user comfort / echo cancellers).
    :ivar max_delay_ms: hard bound of the buffered audio; beyond it the oldest audio is dropped.
    :ivar max_stretch_ms: the most audio one expand or accelerate step adds or removes.
    :ivar starve_ms: after this long without any packet the output is silence and the timeline
        restarts with the next packet (the sender paused, DTX, a network outage).
    :ivar fec_delay: hold one extra packet while losses happen and the stream carries in-band FEC.
    :ivar max_packets: bound on stored packets (protects against floods of future timestamps).
    """

    margin_ms: float = 4.0
    hysteresis_ms: float = 5.0
    quantile: float = 0.02
    window_packets: int = 150
    initial_delay_ms: float = 10.0
    min_delay_ms: float = 0.0
    max_delay_ms: float = 400.0
    max_stretch_ms: float = 10.0
    starve_ms: float = 300.0
    fec_delay: bool = True
    max_packets: int = 250


@dataclass
class JitterBufferStats:
    """Counters of one :class:`JitterBuffer` (a copy is returned by :attr:`JitterBuffer.stats`).

    Times are milliseconds; counts are packets or frames as named.
    """

    packets_received: int = 0
    packets_expected: int = 0
    packets_lost: int = 0
    duplicates: int = 0
    reordered: int = 0
    late: int = 0
    discarded: int = 0
    invalid: int = 0
    resets: int = 0
    frames_out: int = 0
    frames_normal: int = 0
    frames_concealed: int = 0
    frames_fec: int = 0
    frames_silence: int = 0
    concealment_events: int = 0
    concealed_ms: float = 0.0
    expanded_ms: float = 0.0
    accelerated_ms: float = 0.0
    jitter_ms: float = 0.0
    depth_ms: float = 0.0
    max_depth_ms: float = 0.0
    delay_ms: float = 0.0
    target_delay_ms: float = 0.0
    fec_in_stream: bool = False


class AudioDecoder(Protocol):
    """What the buffer needs from a codec: decode, conceal, and optionally recover from FEC."""

    def decode(self, payload: bytes) -> np.ndarray:
        """Decode one packet to ``(n, 2)`` int16 at 48 kHz."""

    def conceal(self, samples: int) -> np.ndarray:
        """Make ``samples`` of concealment audio for a lost packet."""

    def decode_fec(self, next_payload: bytes, samples: int) -> Optional[np.ndarray]:
        """Rebuild the ``samples`` before ``next_payload`` from its FEC; ``None`` if the codec cannot."""

    def duration(self, payload: bytes) -> Optional[int]:
        """Samples at 48 kHz of ``payload``; ``None`` if unknown; raises ``ValueError`` if corrupt."""

    def has_fec(self, payload: bytes) -> Optional[bool]:
        """Whether ``payload`` carries FEC for the previous packet; ``None`` if unknown."""


class OpusAudioDecoder:
    """libopus through :mod:`._opus`: real PLC and in-band FEC."""

    def __init__(self) -> None:
        self._dec = _opus.Decoder(CHANNELS)

    def decode(self, payload: bytes) -> np.ndarray:
        return self._dec.decode(payload)

    def conceal(self, samples: int) -> np.ndarray:
        return self._dec.conceal(samples)

    def decode_fec(self, next_payload: bytes, samples: int) -> Optional[np.ndarray]:
        return self._dec.decode_fec(next_payload, samples)

    def duration(self, payload: bytes) -> Optional[int]:
        try:
            return _opus.packet_samples(payload)
        except _opus.OpusError as exc:
            raise ValueError(str(exc)) from None

    def has_fec(self, payload: bytes) -> Optional[bool]:
        return _opus.packet_has_lbrr(payload)

    def close(self) -> None:
        self._dec.close()


class GenericAudioDecoder:
    """Any codec aiortc decodes (PCMU, PCMA, G722, or Opus without libopus): concealment repeats the
    last 20 ms with a fade, which is what simple phones do.

    :param codec: the aiortc ``RTCRtpCodecParameters``.
    """

    def __init__(self, codec: Any) -> None:
        import av
        from aiortc.codecs import get_decoder

        from .._internals import jitter_frame

        self._decoder = get_decoder(codec)
        self._frame_type = jitter_frame
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._last = np.zeros((FRAME, CHANNELS), dtype=np.int16)
        self._fade = 1.0
        self._clock_rate = int(codec.clockRate)
        self._opus = codec.mimeType.lower() == "audio/opus"
        self._ts = 0

    def decode(self, payload: bytes) -> np.ndarray:
        self._ts += FRAME
        chunks = []
        for frame in self._decoder.decode(self._frame_type(payload, self._ts)):
            for out in self._resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, CHANNELS))
        pcm = np.concatenate(chunks) if chunks else np.zeros((0, CHANNELS), dtype=np.int16)
        if len(pcm):
            self._last, self._fade = pcm[-FRAME:], 1.0
        return pcm

    def conceal(self, samples: int) -> np.ndarray:
        reps = -(-samples // len(self._last))
        out = np.tile(self._last.astype(np.float32), (reps, 1))[:samples]
        gain = self._fade * np.linspace(1.0, 0.5, samples, dtype=np.float32)[:, None]
        self._fade *= 0.5
        return np.asarray(out * gain, dtype=np.int16)

    def decode_fec(self, next_payload: bytes, samples: int) -> Optional[np.ndarray]:
        return None

    def duration(self, payload: bytes) -> Optional[int]:
        if self._opus and _opus.available():
            try:
                return _opus.packet_samples(payload)
            except _opus.OpusError as exc:
                raise ValueError(str(exc)) from None
        if self._clock_rate == 8000 and not self._opus:
            return len(payload) * 6  # G.711 and G.722: one byte per 1/8000 s
        return None

    def has_fec(self, payload: bytes) -> Optional[bool]:
        return None

    def close(self) -> None:
        pass


def make_decoder(codec: Any) -> AudioDecoder:
    """The best decoder for ``codec`` (an aiortc ``RTCRtpCodecParameters``)."""
    if codec.mimeType.lower() == "audio/opus" and _opus.available():
        return OpusAudioDecoder()
    return GenericAudioDecoder(codec)


@dataclass
class _Packet:
    seq: int
    ts: int
    payload: bytes
    arrival: float
    duration: Optional[int]


def _unwrap(value: int, ref: Optional[int], bits: int) -> int:
    if ref is None:
        return value
    span = 1 << bits
    diff = (value - ref + span // 2) % span - span // 2
    return ref + diff


def _crossfade(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.linspace(0.0, 1.0, len(a), dtype=np.float32)[:, None]
    return a * (1.0 - w) + b * w


def _best_lag(x: np.ndarray, lo: int, hi: int, width: int) -> Tuple[int, float]:
    """The lag in ``[lo, hi]`` where ``x`` best repeats itself (normalised cross-correlation)."""
    mono = x.mean(axis=1)
    ref = mono[:width]
    # einsum, not np.dot: per-frame work must never enter the multithreaded BLAS (its threads spin).
    ref_energy = float(np.einsum("i,i->", ref, ref))
    best, best_c = hi, -1.0
    # Coarse then fine search: cheap enough on the core loop (a few hundred dot products of 5 ms).
    for step, start, stop in ((8, lo, hi), (1, None, None)):
        if start is None:
            start, stop = max(lo, best - 8), min(hi, best + 8)
        for lag in range(start, stop + 1, step):
            seg = mono[lag:lag + width]
            denom = np.sqrt(ref_energy * float(np.einsum("i,i->", seg, seg))) or 1.0
            c = float(np.einsum("i,i->", ref, seg)) / denom
            if c > best_c:
                best, best_c = lag, c
    return best, best_c


class JitterBuffer:
    """Packets in, one 20 ms frame out per :meth:`pull`.

    :param decoder: the codec (see :func:`make_decoder`).
    :param clock_rate: the RTP clock rate of the stream (timestamps are scaled to 48 kHz).
    :param config: tuning; :class:`JitterBufferConfig` defaults otherwise.

    Threading: one thread (the SDK's core loop).  ``put`` and ``pull`` take the
    current time from the caller.
    """

    def __init__(self, decoder: AudioDecoder, clock_rate: int = RATE,
                 config: Optional[JitterBufferConfig] = None) -> None:
        self.decoder = decoder
        self.config = config or JitterBufferConfig()
        self.clock_rate = int(clock_rate)
        self._s = JitterBufferStats()
        self._packets: Dict[int, _Packet] = {}
        self._seen: "collections.OrderedDict[int, None]" = collections.OrderedDict()
        self._seq_ref: Optional[int] = None
        self._ts_ref: Optional[int] = None
        self._base_seq: Optional[int] = None
        self._max_seq: Optional[int] = None
        self._ssrc: Optional[int] = None
        self._unique = 0
        # Counts of the sources before an SSRC change.
        self._expected_before = 0
        self._lost_before = 0
        # RFC 3550 interarrival jitter, seconds.
        self._jitter = 0.0
        self._last_transit: Optional[float] = None
        # Playout timeline.
        self._started = False
        self._starved_since: Optional[float] = None
        self._dec_pos = 0
        self._fifo = np.zeros((0, CHANNELS), dtype=np.int16)
        self._last_tick: Optional[float] = None
        self._frame_dur = FRAME
        self._missing_run = 0
        self._newest_end: Optional[int] = None
        self._first_arrival: Optional[float] = None
        # Transit times (arrival - RTP time, seconds) of recent packets: the network's share of the
        # delay, independent of what the playout timeline does, so stretching never makes them stale.
        self._transits: Deque[float] = collections.deque(maxlen=self.config.window_packets)
        # The same transits kept in order (bisect in, bisect out): the quantiles are then two lookups
        # instead of a sort of the whole window per packet.
        self._ordered: List[float] = []
        self._levels: Optional[Tuple[float, float]] = None
        self._grid_ref: Optional[int] = None
        self._recent_kinds: Deque[str] = collections.deque(maxlen=250)
        self._recent_fec: Deque[bool] = collections.deque(maxlen=50)

    # -- input ---------------------------------------------------------------------------

    def put(self, seq: int, timestamp: int, payload: bytes, arrival: float, ssrc: Optional[int] = None) -> str:
        """Take one RTP packet's payload.

        :param seq: RTP sequence number (16 bits).
        :param timestamp: RTP timestamp (32 bits, stream clock rate).
        :param payload: the codec payload.
        :param arrival: arrival time in seconds (same clock as :meth:`pull`).
        :param ssrc: the packet's SSRC; a change restarts the stream.
        :returns: what happened: ``"stored"``, ``"duplicate"``, ``"late"``, ``"invalid"`` or ``"discarded"``.
        """
        s = self._s
        if ssrc is not None and self._ssrc is not None and ssrc != self._ssrc:
            log.debug("jitter buffer: SSRC changed %s -> %s; restarting", self._ssrc, ssrc)
            self._restart(hard=True)
        if ssrc is not None:
            self._ssrc = ssrc
        ext_seq = _unwrap(seq & 0xFFFF, self._seq_ref, 16)
        if ext_seq in self._seen:
            s.duplicates += 1
            return "duplicate"
        try:
            duration = self.decoder.duration(payload) if payload else 0
        except ValueError:
            s.invalid += 1
            return "invalid"
        raw_ts = _unwrap(timestamp & 0xFFFFFFFF, self._ts_ref, 32)
        ts = raw_ts * RATE // self.clock_rate
        if self._first_arrival is None:
            self._first_arrival = arrival
        self._seen[ext_seq] = None
        if len(self._seen) > 1024:
            self._seen.popitem(last=False)
        s.packets_received += 1
        self._unique += 1
        if self._max_seq is not None and ext_seq < self._max_seq:
            s.reordered += 1
        else:
            self._seq_ref, self._ts_ref = ext_seq, raw_ts
        if self._base_seq is None:
            self._base_seq = ext_seq
        self._max_seq = ext_seq if self._max_seq is None else max(self._max_seq, ext_seq)
        expected = self._max_seq - self._base_seq + 1
        s.packets_expected = self._expected_before + expected
        s.packets_lost = self._lost_before + max(0, expected - self._unique)
        transit = arrival - ts / RATE
        if self._last_transit is not None:
            self._jitter += (abs(transit - self._last_transit) - self._jitter) / 16.0
        self._last_transit = transit
        s.jitter_ms = self._jitter * 1000.0
        if duration:
            self._frame_dur = duration
        fec = self.decoder.has_fec(payload) if payload else None
        if fec is not None:
            self._recent_fec.append(fec)

        if self._started and self._starved_since is None:
            jump = ts - self._dec_pos
            bound = self.config.max_delay_ms * RATE / 1000.0 + 2 * RATE
            if abs(jump) > bound:
                log.debug("jitter buffer: timestamp jump of %d samples; restarting", jump)
                self._restart(hard=False)
            elif ts < self._dec_pos:
                s.late += 1
                self._add_transit(arrival - ts / RATE)
                return "late"
        if ts in self._packets:
            s.duplicates += 1
            return "duplicate"
        if len(self._packets) >= self.config.max_packets:
            s.discarded += 1
            return "discarded"
        self._packets[ts] = _Packet(ext_seq, ts, payload, arrival, duration)
        end = ts + (duration or self._frame_dur)
        if self._newest_end is None or end > self._newest_end:
            self._newest_end = end
        if self._grid_ref is None or ts > self._grid_ref:
            self._grid_ref = ts
        if self._started and self._starved_since is None:
            self._add_transit(arrival - ts / RATE)
        return "stored"

    # -- output --------------------------------------------------------------------------

    def pull(self, now: float) -> Tuple[np.ndarray, str]:
        """The next 20 ms frame, ``(960, 2)`` int16, and what it is (``normal``, ``fec``, ``plc``,
        ``silence`` or ``idle`` before the first packet).

        :param now: the time this frame starts playing (seconds, the clock of :meth:`put`).
        """
        s = self._s
        cfg = self.config
        if not self._started or self._starved_since is not None:
            if not self._packets:
                kind = IDLE if not self._started else SILENCE
                self._last_tick = now
                return self._emit(np.zeros((FRAME, CHANNELS), dtype=np.int16), kind, count=self._started)
            self._anchor(now)
        self._bound_depth()
        self._adapt(now)
        self._last_tick = now
        kinds = []
        while len(self._fifo) < FRAME:
            kinds.append(self._produce_next())
        out, self._fifo = self._fifo[:FRAME], self._fifo[FRAME:]
        kind = NORMAL
        for k in (SILENCE, PLC, FEC):
            if k in kinds:
                kind = k
                break
        if kind == SILENCE and self._starved_since is None:
            self._starved_since = now
        depth = self.depth_ms
        s.depth_ms = depth
        s.max_depth_ms = max(s.max_depth_ms, depth)
        return self._emit(out, kind, count=True)

    def _emit(self, pcm: np.ndarray, kind: str, count: bool) -> Tuple[np.ndarray, str]:
        s = self._s
        if count:
            s.frames_out += 1
            if kind == NORMAL:
                s.frames_normal += 1
            elif kind == FEC:
                s.frames_fec += 1
            elif kind == PLC:
                s.frames_concealed += 1
            elif kind == SILENCE:
                s.frames_silence += 1
            self._recent_kinds.append(kind)
        return pcm, kind

    def _anchor(self, now: float) -> None:
        """Start (or restart after starving) the timeline at the oldest packet."""
        first = min(self._packets)
        waited = now - self._packets[first].arrival
        prebuffer = max(self.config.initial_delay_ms, self.config.min_delay_ms) / 1000.0 - waited
        self._dec_pos = first
        self._fifo = np.zeros((int(max(0.0, prebuffer) * RATE), CHANNELS), dtype=np.int16)
        if self._started:
            self._s.resets += 1
        self._started = True
        self._starved_since = None
        self._missing_run = 0
        self._transits.clear()
        self._ordered.clear()
        self._levels = None
        self._grid_ref = first

    def _restart(self, hard: bool) -> None:
        """Forget the stored packets; the timeline re-anchors at the next packet (counted then)."""
        self._packets.clear()
        self._newest_end = None
        self._transits.clear()
        self._ordered.clear()
        self._levels = None
        self._grid_ref = None
        if self._started and self._starved_since is None:
            self._starved_since = self._last_tick or 0.0
        if hard:
            self._expected_before = self._s.packets_expected
            self._lost_before = self._s.packets_lost
            self._unique = 0
            self._seen.clear()
            self._seq_ref = self._ts_ref = None
            self._base_seq = self._max_seq = None
            self._last_transit = None

    def _produce_next(self) -> str:
        """Append the audio at ``_dec_pos`` to the FIFO: decoded, recovered or concealed."""
        s = self._s
        pkt = self._packets.pop(self._dec_pos, None)
        if pkt is not None:
            try:
                pcm = self.decoder.decode(pkt.payload) if pkt.payload else self.decoder.conceal(self._frame_dur)
            except Exception as exc:  # a corrupt packet is concealed, never fatal
                log.debug("jitter buffer: decoding failed: %s", exc)
                pcm = self.decoder.conceal(pkt.duration or self._frame_dur)
            n = pkt.duration or len(pcm) or self._frame_dur
            self._append(pcm, n)
            self._dec_pos += n
            self._missing_run = 0
            return NORMAL
        later = [ts for ts in self._packets if ts > self._dec_pos]
        n = self._frame_dur
        if later:
            nxt = min(later)
            gap = nxt - self._dec_pos
            if gap > self.config.starve_ms * RATE / 1000.0:
                # A long hole with audio after it (DTX, a pause): skip to the audio.
                self._dec_pos = nxt
                return self._produce_next()
            n = min(n, gap)
        self._missing_run += n
        if self._missing_run > self.config.starve_ms * RATE / 1000.0:
            self._append(np.zeros((n, CHANNELS), dtype=np.int16), n)
            self._dec_pos += n
            return SILENCE
        kind = PLC
        pcm: Optional[np.ndarray] = None
        nxt_pkt = self._packets.get(self._dec_pos + n)
        if nxt_pkt is not None and nxt_pkt.payload:
            try:
                pcm = self.decoder.decode_fec(nxt_pkt.payload, n)
            except Exception:
                pcm = None
            if pcm is not None and self.decoder.has_fec(nxt_pkt.payload):
                kind = FEC
        if pcm is None:
            try:
                pcm = self.decoder.conceal(n)
            except Exception:
                pcm = np.zeros((n, CHANNELS), dtype=np.int16)
        self._append(pcm, n)
        self._dec_pos += n
        s.concealed_ms += n * 1000.0 / RATE
        if self._missing_run == n:
            s.concealment_events += 1
        return kind

    def _append(self, pcm: np.ndarray, n: int) -> None:
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1, CHANNELS)
        if len(pcm) < n:
            pcm = np.concatenate([pcm, np.zeros((n - len(pcm), CHANNELS), dtype=np.int16)])
        self._fifo = np.concatenate([self._fifo, pcm[:n]]) if len(self._fifo) else pcm[:n]

    # -- delay control -------------------------------------------------------------------

    def _desired_lead(self) -> float:
        cfg = self.config
        desired = cfg.margin_ms / 1000.0
        if cfg.fec_delay and self.fec_in_stream and any(k in (PLC, FEC) for k in self._recent_kinds):
            # Hold one more packet so the next one (carrying the FEC copy) is here when one is missing.
            desired += self._frame_dur / RATE
        return desired

    @property
    def fec_in_stream(self) -> bool:
        """Whether recent packets carry in-band FEC."""
        return bool(self._recent_fec) and sum(self._recent_fec) * 2 >= len(self._recent_fec)

    def _add_transit(self, transit: float) -> None:
        transits = self._transits
        if len(transits) == transits.maxlen:
            del self._ordered[bisect.bisect_left(self._ordered, transits[0])]
        transits.append(transit)
        bisect.insort(self._ordered, transit)
        self._levels = None

    def _timing(self, next_tick: Optional[float] = None) -> Optional[Tuple[float, float, int]]:
        """``(slack, delay, phase)`` of the current timeline, or ``None`` before enough packets.

        ``slack``: how long before its playout tick the latest packets (the high quantile of transit)
        arrive.  Frames leave on ticks, so a packet is due at the tick that plays its first sample
        and the slack moves in steps of one frame.  ``delay``: the continuous delay from arrival to
        playout of a typical (median) packet.  ``phase``: samples of older audio still queued before
        the next packet's first sample in that tick; they add latency and buy no slack, so they are
        trimmed.

        :param next_tick: when the next frame leaves (default: one frame after the last pull).
        """
        if len(self._transits) < 10 or self._last_tick is None or self._grid_ref is None:
            return None
        if next_tick is None:
            next_tick = self._last_tick + FRAME / RATE
        fd = max(120, self._frame_dur)
        playpos = self._dec_pos - len(self._fifo)
        k = -((self._grid_ref - playpos) // fd)  # ceil((playpos - grid_ref) / fd)
        x = self._grid_ref + k * fd  # the first packet boundary not yet played
        ahead = x - playpos
        due = next_tick + (ahead // FRAME) * FRAME / RATE
        high, typical = self._transit_levels()
        continuous = next_tick - playpos / RATE
        return due - x / RATE - high, continuous - typical, int(ahead % FRAME)

    def _transit_levels(self) -> Tuple[float, float]:
        """(high quantile, median) of the recent transits; recomputed only when a packet came in."""
        if self._levels is None:
            ordered = self._ordered
            n = len(ordered)
            self._levels = (ordered[min(n - 1, int((1.0 - self.config.quantile) * (n - 1) + 0.5))], ordered[n // 2])
        return self._levels

    def _adapt(self, now: float) -> None:
        timing = self._timing(now)
        if timing is None:
            return
        slack, _delay, phase = timing
        cfg = self.config
        desired = self._desired_lead()
        max_step = int(cfg.max_stretch_ms * RATE / 1000.0)
        step = FRAME / RATE
        if slack < desired:
            # Push the deadline back one tick: add enough audio to move the next packet's first
            # sample into the following frame (more steps if that is over max_stretch_ms).
            if self.depth_ms < cfg.max_delay_ms:
                need = FRAME - phase
                self._expand(min(max_step, max(_MIN_LAG, need)), max_step)
        elif slack - step >= desired + cfg.hysteresis_ms / 1000.0 and self.depth_ms > cfg.min_delay_ms:
            # A whole tick of slack to spare: remove the queued audio and a little more, so the
            # next packet becomes due one tick earlier (the trim below then shortens the rest).
            if phase + 1 <= max_step:
                self._accelerate(max(_MIN_LAG, phase + 1), max_step)
            else:
                self._accelerate(_MIN_LAG, min(max_step, phase - 48))
        elif phase - 48 >= _MIN_LAG:
            # Queued audio ahead of the next packet is pure latency: trim it, never past the boundary.
            self._accelerate(_MIN_LAG, min(max_step, phase - 48))

    def _ensure_fifo(self, n: int) -> bool:
        # Decode ahead only packets that are here: stretching must never cause a concealment.
        while len(self._fifo) < n:
            if self._dec_pos not in self._packets:
                return False
            self._produce_next()
        return True

    def _expand(self, lo: int, hi: int) -> None:
        """Insert one pitch period of ``lo..hi`` samples (WSOLA), or concealment if nothing is buffered."""
        if not self._ensure_fifo(hi + _WIDTH):
            # Nothing buffered to stretch: delay the timeline with concealment instead.
            # The concealment continues the last decoded audio, i.e. the end of the FIFO, and the
            # packet at _dec_pos (late, not lost) still fits after it.
            pcm = np.asarray(self.decoder.conceal(max(120, (lo + 119) // 120 * 120)), dtype=np.int16)
            n = len(pcm)
            self._fifo = np.concatenate([self._fifo, pcm.reshape(-1, CHANNELS)])
            self._s.expanded_ms += n * 1000.0 / RATE
            return
        x = self._fifo.astype(np.float32)
        lag, _ = _best_lag(x, lo, hi, _WIDTH)
        seam = _crossfade(x[lag:lag + _WIDTH], x[:_WIDTH])
        y = np.concatenate([x[:lag], seam, x[_WIDTH:]])
        self._fifo = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        self._s.expanded_ms += lag * 1000.0 / RATE

    def _accelerate(self, lo: int, hi: int) -> None:
        """Remove one pitch period of ``lo..hi`` samples (WSOLA) when the audio repeats well enough."""
        if hi < lo:
            return
        # This tick still needs a whole frame after the cut.
        if not self._ensure_fifo(hi + FRAME):
            return
        x = self._fifo.astype(np.float32)
        lag, corr = _best_lag(x, lo, hi, _WIDTH)
        quiet = float(np.abs(x[: hi + _WIDTH]).max()) < 300.0
        if corr < 0.6 and not quiet:
            return  # removing a piece of speech that does not repeat would be audible; try later
        seam = _crossfade(x[:_WIDTH], x[lag:lag + _WIDTH])
        y = np.concatenate([seam, x[lag + _WIDTH:]])
        self._fifo = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        self._s.accelerated_ms += lag * 1000.0 / RATE

    def _bound_depth(self) -> None:
        cfg = self.config
        if self.depth_ms <= cfg.max_delay_ms:
            return
        # Over the hard bound (a burst after an outage, a sender running far ahead): drop the oldest
        # audio down to the middle of the allowed range.
        keep = (cfg.max_delay_ms + cfg.initial_delay_ms) / 2.0
        assert self._newest_end is not None
        goal = self._newest_end - int(keep * RATE / 1000.0)
        ahead = [ts for ts in self._packets if ts >= goal]
        if ahead:
            goal = min(ahead)  # restart on a packet boundary, not in the middle of one
        self._fifo = self._fifo[:0]
        for ts in sorted(t for t in self._packets if t < goal):
            del self._packets[ts]
            self._s.discarded += 1
        self._dec_pos = max(self._dec_pos, goal)

    # -- state ----------------------------------------------------------------------------

    @property
    def depth_ms(self) -> float:
        """Audio buffered ahead of the playout point: decoded and not yet played, plus packets waiting."""
        if not self._started or self._newest_end is None:
            return len(self._fifo) * 1000.0 / RATE
        playpos = self._dec_pos - len(self._fifo)
        return max(0.0, (self._newest_end - playpos) * 1000.0 / RATE)

    @property
    def stats(self) -> JitterBufferStats:
        """A snapshot of the counters."""
        s = replace(self._s)
        s.depth_ms = self.depth_ms
        timing = self._timing()
        if timing is not None:
            slack, delay, _phase = timing
            s.delay_ms = max(0.0, delay * 1000.0)
            # Where the controller steers: the typical delay moved by the slack above the goal.
            s.target_delay_ms = max(0.0, (delay - slack + self._desired_lead()) * 1000.0)
        else:
            s.delay_ms = s.target_delay_ms = self.config.initial_delay_ms
        s.fec_in_stream = self.fec_in_stream
        return s

    def close(self) -> None:
        """Release the decoder."""
        close = getattr(self.decoder, "close", None)
        if close is not None:
            close()
