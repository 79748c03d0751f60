"""DTMF: in-band tone pairs to send, and a Goertzel detector for what is received.

aiortc negotiates no ``telephone-event`` (RFC 4733) and exposes no way to add packets to
its RTP stream, so digits go into the audio itself (ITU-T Q.23 tone pairs) or, against
the real service, through the REST digits endpoint.  Detection runs the Goertzel
algorithm on 20 ms blocks of the received audio (ITU-T Q.24-style checks: both tones
present, each clearly above the other tones of its group, limited twist, at least two
blocks long), so it finds in-band digits whichever side or codec produced them.

Threading: :class:`DtmfOverlayTrack` runs on the loop that owns the peer connection;
:meth:`DtmfOverlayTrack.send` may be called from any thread; :class:`DtmfDetector` is not
thread-safe (one per stream).
"""

from __future__ import annotations

import collections
import fractions
import logging
import threading
from typing import Callable, Deque, List, Optional

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from .analysis import FrameConverter, SAMPLE_RATE
from .sinks import AudioSink

_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
from .sources import make_frame

__all__ = ["DTMF_DIGITS", "dtmf_tone", "DtmfOverlayTrack", "DtmfDetector", "DtmfDetectorSink", "detect_digits",
           "check_digits"]

log = logging.getLogger(__name__)

LOW = (697.0, 770.0, 852.0, 941.0)
HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
#: The 16 DTMF keys, row by row (low tone) and column by column (high tone).
DTMF_DIGITS = "123A456B789C*0#D"
BLOCK = 960  # 20 ms at 48 kHz


def check_digits(digits: str) -> str:
    """Upper-case ``digits`` and check every one is a DTMF key.

    :raises ValueError: naming the first character that is not ``0-9``, ``*``, ``#`` or ``A-D``.
    """
    if not isinstance(digits, str) or not digits:
        raise ValueError("digits must be a non-empty string of 0-9, *, #, A-D")
    for ch in digits:
        if ch.upper() not in DTMF_DIGITS:
            raise ValueError(f"{ch!r} is not a DTMF digit (use 0-9, *, #, A-D)")
    return digits.upper()


def _freqs(digit: str) -> tuple:
    index = DTMF_DIGITS.index(digit)
    return LOW[index // 4], HIGH[index % 4]


def dtmf_tone(digit: str, duration: float = 0.1, rate: int = SAMPLE_RATE, amplitude: float = 0.3) -> np.ndarray:
    """int16 samples of ``digit``'s tone pair (each tone at ``amplitude`` of full scale)."""
    low, high = _freqs(check_digits(digit))
    t = np.arange(int(duration * rate)) / rate
    wave = amplitude * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    return np.clip(wave * 32767, -32768, 32767).astype(np.int16)


class _Player:
    """Queued digits as a stream of samples: tone, gap, tone, gap..."""

    def __init__(self) -> None:
        self._pending: Deque[np.ndarray] = collections.deque()
        self._current = np.zeros(0, dtype=np.int16)
        self._lock = threading.Lock()

    def queue(self, digits: str, duration: float, gap: float) -> None:
        chunks = []
        for digit in digits:
            chunks.append(dtmf_tone(digit, duration))
            chunks.append(np.zeros(int(gap * SAMPLE_RATE), dtype=np.int16))
        with self._lock:
            self._pending.extend(chunks)

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending) or self._current.size > 0

    def take(self, n: int) -> Optional[np.ndarray]:
        """``n`` samples of digits, or ``None`` when nothing is queued (the voice goes through)."""
        with self._lock:
            if not self._pending and self._current.size == 0:
                return None
            out = np.zeros(n, dtype=np.int16)
            filled = 0
            while filled < n:
                if self._current.size == 0:
                    if not self._pending:
                        break
                    self._current = self._pending.popleft()
                take = min(n - filled, self._current.size)
                out[filled:filled + take] = self._current[:take]
                self._current = self._current[take:]
                filled += take
            return out


class DtmfOverlayTrack(MediaStreamTrack):
    """Wraps the track a call sends; while digits are queued, their tones replace the voice.

    :param inner: the track to pass through otherwise (any audio track).
    """

    kind = "audio"

    def __init__(self, inner: MediaStreamTrack) -> None:
        super().__init__()
        self.inner = inner
        self._player = _Player()
        self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
        self._pts = 0

    def send(self, digits: str, duration: float = 0.1, gap: float = 0.07) -> float:
        """Queue ``digits`` (any thread); returns the seconds they take to play."""
        digits = check_digits(digits)
        if not 0.04 <= duration <= 1.0 or not 0.04 <= gap <= 1.0:
            raise ValueError("duration and gap must be between 0.04 and 1.0 s (ITU-T Q.24 needs >= 40 ms)")
        self._player.queue(digits, duration, gap)
        return len(digits) * (duration + gap)

    @property
    def busy(self) -> bool:
        return self._player.busy

    @property
    def pcm_rate(self) -> Optional[int]:
        """:data:`SAMPLE_RATE` when :meth:`recv_pcm` can be used (the inner track gives samples)."""
        return SAMPLE_RATE if getattr(self.inner, "pcm_rate", None) == SAMPLE_RATE else None

    async def recv_pcm(self) -> np.ndarray:
        """The next frame as 1-D int16 mono 48 kHz samples (needs an inner track with ``recv_pcm``)."""
        samples = await self.inner.recv_pcm()
        if self._player.busy and samples.size:
            tones = self._player.take(samples.size)
            if tones is not None:
                samples = tones
        self._pts += samples.size
        return samples

    async def recv(self) -> av.AudioFrame:
        frame = await self.inner.recv()
        if (not self._player.busy and isinstance(frame, av.AudioFrame) and frame.sample_rate == SAMPLE_RATE
                and frame.format.name == "s16" and frame.layout.name == "mono"):
            # No digit to play and already what we send (the call's own track makes such frames): as it is.
            frame.pts = self._pts
            frame.time_base = _TIME_BASE
            self._pts += frame.samples
            return frame
        samples = self._converter.convert(frame)
        tones = self._player.take(samples.size) if samples.size else None
        out = make_frame(tones if tones is not None else samples, self._pts)
        self._pts += samples.size
        return out

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


# The power at each of the 8 DTMF frequencies, evaluated exactly (a 960-point block gives 50 Hz bins;
# the exact frequencies are used rather than the nearest bins).  Two real matrices, computed once: per
# block the detector then costs two 8 x 960 products.  They are einsum's own loops on purpose, never
# ``@``/``np.dot``: a matrix product goes to the multithreaded BLAS, whose worker threads then spin
# between our 20 ms blocks and burn a whole core per call (see tests/test_cost.py).
_ANGLES = 2 * np.pi * np.outer(LOW + HIGH, np.arange(BLOCK)) / SAMPLE_RATE
_COS = np.ascontiguousarray(np.cos(_ANGLES))
_SIN = np.ascontiguousarray(np.sin(_ANGLES))


def _powers(block: np.ndarray) -> np.ndarray:
    re = np.einsum("ij,j->i", _COS, block)
    im = np.einsum("ij,j->i", _SIN, block)
    return re * re + im * im


class DtmfDetector:
    """Finds DTMF digits in 48 kHz mono audio fed in any chunk size.

    A digit is reported once, when it has lasted ``min_blocks`` 20 ms blocks; it can be reported
    again only after a block without it.
    """

    def __init__(self, min_blocks: int = 2, min_level: float = 0.02) -> None:
        self.min_blocks = min_blocks
        self.min_level = min_level
        self._buffer = np.zeros(0, dtype=np.float64)
        self._candidate: Optional[str] = None
        self._count = 0
        self._reported = False

    def _classify(self, block: np.ndarray) -> Optional[str]:
        energy = float(np.einsum("i,i->", block, block))  # not np.dot: no BLAS on the media path
        if energy <= (self.min_level ** 2) * block.size:
            return None
        powers = _powers(block)
        lows, highs = list(powers[:4]), list(powers[4:])
        li, hi = int(np.argmax(lows)), int(np.argmax(highs))
        low, high = lows[li], highs[hi]
        # Each tone must dominate its group, the pair must carry most of the energy, twist within ~8 dB.
        if any(p * 6.0 > low for i, p in enumerate(lows) if i != li):
            return None
        if any(p * 6.0 > high for i, p in enumerate(highs) if i != hi):
            return None
        if not (1 / 6.3 <= high / low <= 6.3):
            return None
        # For a pure sine of amplitude A over N samples, |X|^2 = (A N / 2)^2 and the block energy is A^2 N / 2.
        if (low + high) * 2.0 / block.size < 0.5 * energy:
            return None
        return DTMF_DIGITS[li * 4 + hi]

    def feed(self, samples: np.ndarray) -> List[str]:
        """Feed int16 (or float) samples; returns the digits completed by them."""
        data = samples.astype(np.float64) / (32768.0 if samples.dtype == np.int16 else 1.0)
        self._buffer = np.concatenate([self._buffer, data])
        found: List[str] = []
        while self._buffer.size >= BLOCK:
            block, self._buffer = self._buffer[:BLOCK], self._buffer[BLOCK:]
            digit = self._classify(block)
            if digit is not None and digit == self._candidate:
                self._count += 1
            else:
                self._candidate, self._count, self._reported = digit, 1 if digit else 0, False
            if digit is not None and not self._reported and self._count >= self.min_blocks:
                self._reported = True
                found.append(digit)
        return found


def detect_digits(samples: np.ndarray) -> str:
    """All digits found in a whole recording (48 kHz mono)."""
    return "".join(DtmfDetector().feed(samples))


class DtmfDetectorSink(AudioSink):
    """An audio sink that calls ``on_digit(digit)`` (core loop thread) for each digit heard.

    :param downstream: a sink every frame is passed on to first (not closed by :meth:`close`).
    :param wanted: detection runs only while this says so (the SDK: while someone listens to ``dtmf``);
        it costs a conversion and two small matrix-vector products per 20 ms frame.
    """

    def __init__(self, on_digit: Callable[[str], None], downstream: Optional[AudioSink] = None,
                 wanted: Optional[Callable[[], bool]] = None) -> None:
        self._on_digit = on_digit
        self.downstream = downstream
        self._wanted = wanted
        self._listening = True
        self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
        self._detector = DtmfDetector()

    @property
    def accepts_pcm(self) -> bool:  # type: ignore[override]
        return self.downstream is None or self.downstream.accepts_pcm

    def write(self, frame: av.AudioFrame) -> None:
        if self.downstream is not None:
            self.downstream.write(frame)
        if self._listens():
            self._detect(self._converter.convert(frame))

    def write_pcm(self, samples: np.ndarray) -> None:
        if self.downstream is not None:
            self.downstream.write_pcm(samples)
        if self._listens():
            self._detect(samples)

    def _listens(self) -> bool:
        if self._wanted is not None and not self._wanted():
            if self._listening:  # a digit half heard before nobody listened is not reported later
                self._listening = False
                self._detector = DtmfDetector()
                self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
            return False
        self._listening = True
        return True

    def _detect(self, samples: np.ndarray) -> None:
        for digit in self._detector.feed(samples.reshape(-1)):
            try:
                self._on_digit(digit)
            except Exception:  # a listener's bug must not stop the audio
                log.exception("DTMF listener failed")

    def close(self) -> None:
        pass
