"""Microphone audio processing: echo cancellation, noise suppression, automatic gain control.

What a browser does to a microphone before it sends it, from the same WebRTC audio processing module
(AEC3, the noise suppressor, AGC2) through the ``voice`` extra (PyPI ``pywebrtc-audio``)::

    pip install 'purecloud_webrtc[voice]'

The stages run on :class:`~purecloud_webrtc.media.MicrophoneSource` calls only, each on by default
when the extra is installed (as in browsers) and each switchable: per SDK with the options
``mic_echo_cancellation``, ``mic_noise_suppression`` and ``mic_auto_gain_control`` (the official SDK's
``defaults.micEchoCancellation`` ...), per call with the microphone's own ``echo_cancellation``,
``noise_suppression`` and ``auto_gain_control``.  Files, tones and callbacks are sent as they are.

**The echo reference.** An echo canceller must know what the speaker played.  Every
:class:`~purecloud_webrtc.media.SpeakerSink` hands the samples it writes to its device, at the moment
it writes them, to :data:`playback_reference`; a microphone with echo cancellation reads, for each chunk
it captures, what the speakers played over the same interval.  Both sides are placed on the monotonic
clock as their devices run them: back to back from the start of a run, anchored again only when a
device reports a gap (an output underflow, an input overflow), so a busy machine that delays the threads
handing audio over does not shift the alignment the canceller converged on; the remaining delay (the
devices' buffers and the acoustic path) is found by AEC3's delay estimator.  A
speaker switched mid-call (``set_sink``) joins the reference when it first plays and leaves it when it
closes; the canceller re-converges on the new path.  ``echo_delay_ms`` gives AEC3 a starting hint where
the delay is known.

**What it costs and measures.** About 1.2 % of a core per call at 48 kHz with all three stages (most of it
AEC3; ``make bench`` measures it).  :attr:`MicProcessor.stats` (and ``CallStats.audio_processing``)
shows the stages in force, the measured echo return loss enhancement (input over output power of the
canceller while the far end talks) and the delay between the speaker's audio and its echo found by
cross-correlation, once per 1.4 s of far-end audio (``None`` until then, or while the correlation has no
clear peak).

**A note on tones.** The noise suppressor treats any steady sound as noise: a continuous tone into the
microphone is attenuated by 13-22 dB within a second, exactly as in a browser.  Speech, which comes in
syllables and pauses, passes.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np

from .._extras import MissingExtraError

__all__ = [
    "AudioProcessing",
    "AudioProcessingStats",
    "MicProcessor",
    "PlaybackReference",
    "playback_reference",
    "processing_available",
]

SAMPLE_RATE = 48000
_CHUNK = 480  # the module's 10 ms frame at 48 kHz: process whole multiples of it only
_STAGES = ("echo_cancellation", "noise_suppression", "auto_gain_control")
_module: Optional[ModuleType] = None
_missing = False


def _backend() -> Optional[ModuleType]:
    global _module, _missing
    if _module is None and not _missing:
        try:
            _module = importlib.import_module("pywebrtc_audio")
        except ImportError:
            _missing = True
    return _module


def processing_available() -> bool:
    """Whether the ``voice`` extra (the WebRTC audio processing module) is installed."""
    return _backend() is not None


def _require() -> ModuleType:
    module = _backend()
    if module is None:
        raise MissingExtraError("microphone echo cancellation, noise suppression and gain control", "voice")
    return module


def check_stage_option(name: str, value: Any) -> Optional[bool]:
    """Validate one stage switch (``None``: the default, on when the extra is installed; a bool).

    :raises TypeError: not ``None`` or a bool.
    :raises MissingExtraError: ``True`` without the ``voice`` extra (one line naming it).
    """
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None (the default), not {value!r}")
    if value is True:
        _require()
    return value


@dataclass(frozen=True)
class AudioProcessing:
    """Which stages run on a microphone (``None``: the default, on when the ``voice`` extra is installed).

    :ivar echo_delay_ms: the delay from the speaker's audio to its echo in the microphone, as a hint for
        the canceller (``None``: found by the canceller alone).
    """

    echo_cancellation: Optional[bool] = None
    noise_suppression: Optional[bool] = None
    auto_gain_control: Optional[bool] = None
    echo_delay_ms: Optional[float] = None

    def __post_init__(self) -> None:
        for name in _STAGES:
            check_stage_option(name, getattr(self, name))
        if self.echo_delay_ms is not None and not 0 <= float(self.echo_delay_ms) <= 500:
            raise ValueError(f"echo_delay_ms must be between 0 and 500, not {self.echo_delay_ms!r}")

    def over(self, defaults: "AudioProcessing") -> "AudioProcessing":
        """These settings, with ``defaults`` where these say ``None``."""
        values = {name: getattr(self, name) if getattr(self, name) is not None else getattr(defaults, name)
                  for name in (*_STAGES, "echo_delay_ms")}
        return AudioProcessing(**values)

    def resolved(self) -> Dict[str, bool]:
        """Each stage on or off, ``None`` meaning on when the extra is installed."""
        default = processing_available()
        return {name: default if getattr(self, name) is None else bool(getattr(self, name)) for name in _STAGES}

    @property
    def any(self) -> bool:
        return any(self.resolved().values())


@dataclass(frozen=True)
class AudioProcessingStats:
    """The microphone processing of one call.

    :ivar echo_cancellation: / :ivar noise_suppression: / :ivar auto_gain_control: whether the stage runs.
    :ivar erle_db: echo return loss enhancement, the canceller's input over output power while the far end
        is talking (about 1 s smoothing; ``None`` before the far end was heard).  Near-end speech at the
        same time lowers it.
    :ivar delay_ms: the delay from the speaker's audio to its echo in the microphone, by cross-correlation
        (``None`` while not clear).
    :ivar gain_db: the gain control's current gain (``None`` without it).
    :ivar reference_ms: speaker audio (not silent) received as echo reference so far (0: nothing played).
    """

    echo_cancellation: bool
    noise_suppression: bool
    auto_gain_control: bool
    erle_db: Optional[float] = None
    delay_ms: Optional[float] = None
    gain_db: Optional[float] = None
    reference_ms: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# -- the echo reference ----------------------------------------------------------------------


def _now_tick() -> int:
    """The monotonic clock in 48 kHz samples."""
    return int(round(time.monotonic() * SAMPLE_RATE))


class _Anchored:
    """A device's samples on the monotonic clock: back to back, except where the device had a gap.

    A device plays (or captures) its samples back to back at its own pace, whenever the thread that
    hands them over happens to run, so a delayed thread does not move them.  What does: a gap the device
    shows, and what is physically impossible.  Samples handed to a speaker at ``now`` cannot play before
    ``now`` (if back to back would put them earlier, the device ran dry meanwhile); samples a microphone
    delivers at ``now`` cannot have been captured after it.  A drift of over ``MAX_DRIFT`` anchors again.
    """

    MAX_DRIFT = SAMPLE_RATE // 2  # 0.5 s

    __slots__ = ("end", "playback")

    def __init__(self, playback: bool) -> None:
        self.end: Optional[int] = None  # the clock tick after the last sample
        self.playback = playback

    def place(self, n: int, now: int, gap: bool) -> int:
        """The tick of the first of ``n`` samples: played from ``now`` on (a speaker), or captured by
        ``now`` (a microphone: ``now`` is then the earliest the chunk can have started)."""
        end = self.end
        if end is None or gap or abs(end - now) > self.MAX_DRIFT:
            start = now
        elif self.playback:
            start = max(end, now)
        else:
            start = min(end, now)
        self.end = start + n
        return start


class _ReferenceReader:
    """One microphone's view of what the speakers play, on the monotonic clock.

    Each speaker's samples are placed where the device plays them (:class:`_Anchored`, from the moment
    each run starts); the microphone's captured chunks likewise.  A chunk captured over ``[t, t + n)``
    is given the speakers' samples of ``[t, t + n)``: their echo comes in later chunks, after the
    devices' latencies and the acoustic path, which the canceller finds.
    """

    def __init__(self, owner: "PlaybackReference", max_samples: int) -> None:
        self._owner = owner
        self._max = max_samples
        self._lines: Dict[int, Deque[Tuple[int, np.ndarray]]] = {}
        self._capture = _Anchored(playback=False)
        self.received = 0  # samples pushed, all speakers
        self.realigned = 0  # capture gaps (input overflows, drift) after the first chunk

    def _push(self, key: int, start: int, samples: np.ndarray) -> None:  # under the owner's lock
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = deque()
        line.append((start, samples))
        self.received += samples.size
        newest = start + samples.size
        while line and newest - (line[0][0] + line[0][1].size) > self._max:  # bounded: nobody read them
            line.popleft()

    def _forget(self, key: int) -> None:  # under the owner's lock
        self._lines.pop(key, None)

    def read(self, n: int, *, gap: bool = False, now: Optional[int] = None) -> np.ndarray:
        """The speakers' samples (mixed; zeros where none played) for ``n`` samples just captured.

        :param gap: the device reported lost input (an overflow) before this chunk.
        :param now: the clock tick when the chunk was complete (default: now).
        """
        now = _now_tick() if now is None else now
        if self._capture.end is not None and (gap or abs(self._capture.end - (now - n)) > _Anchored.MAX_DRIFT):
            self.realigned += 1
        start = self._capture.place(n, now - n, gap)
        end = start + n
        out = np.zeros(n, dtype=np.int32)
        with self._owner._lock:
            for line in self._lines.values():
                for chunk_start, chunk in line:
                    chunk_end = chunk_start + chunk.size
                    if chunk_end > start and chunk_start < end:
                        lo, hi = max(chunk_start, start), min(chunk_end, end)
                        out[lo - start:hi - start] += chunk[lo - chunk_start:hi - chunk_start]
                while line and line[0][0] + line[0][1].size <= start:  # played before this chunk: done
                    line.popleft()
        return np.clip(out, -32768, 32767).astype(np.int16)

    def close(self) -> None:
        self._owner._close_reader(self)


class PlaybackReference:
    """What the SDK's speakers play, for the echo cancellers (thread-safe).

    Speakers :meth:`write` the 48 kHz samples they hand their device, as they hand them over; a
    microphone with echo cancellation opens a reader and reads as much as it captures.  Nothing is kept
    while no reader is open, and each reader keeps at most ``max_seconds`` per speaker.
    """

    def __init__(self, max_seconds: float = 0.5) -> None:
        self._lock = threading.Lock()
        self._readers: List[_ReferenceReader] = []
        self._timelines: Dict[int, _Anchored] = {}
        self._max = int(max_seconds * SAMPLE_RATE)

    @property
    def active(self) -> bool:
        return bool(self._readers)

    def write(self, key: int, samples: np.ndarray, *, gap: bool = False, now: Optional[int] = None) -> None:
        """Speaker ``key`` (any stable int, e.g. ``id(sink)``) has just handed ``samples`` (int16, 48 kHz) to
        its device; ``gap``: the device reported an underflow (it ran dry) before them."""
        if not self._readers:
            return
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        now = _now_tick() if now is None else now
        with self._lock:
            timeline = self._timelines.get(key)
            if timeline is None:
                timeline = self._timelines[key] = _Anchored(playback=True)
            start = timeline.place(samples.size, now, gap)
            for reader in self._readers:
                reader._push(key, start, samples)

    def remove(self, key: int) -> None:
        """Speaker ``key`` stopped (closed, or switched away from)."""
        with self._lock:
            self._timelines.pop(key, None)
            for reader in self._readers:
                reader._forget(key)

    def open_reader(self) -> _ReferenceReader:
        reader = _ReferenceReader(self, self._max)
        with self._lock:
            self._readers.append(reader)
        return reader

    def _close_reader(self, reader: _ReferenceReader) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)


#: The process's speakers, as heard by its microphones' echo cancellers.
playback_reference = PlaybackReference()


# -- the stage ----------------------------------------------------------------------------------


class _DelayEstimator:
    """Delay from the reference to the microphone by cross-correlation, once a second, at 8 kHz."""

    WINDOW = 8000  # 1 s at 8 kHz
    MAX_LAG = 3200  # 400 ms

    def __init__(self) -> None:
        self._near: List[np.ndarray] = []
        self._far: List[np.ndarray] = []
        self._count = 0
        self.delay_ms: Optional[float] = None

    def feed(self, near: np.ndarray, far: np.ndarray) -> None:
        self._near.append(near.reshape(-1, 6).mean(axis=1))
        self._far.append(far.reshape(-1, 6).mean(axis=1))
        self._count += near.size // 6
        if self._count >= self.WINDOW + self.MAX_LAG:
            near_all = np.concatenate(self._near)
            far_all = np.concatenate(self._far)
            self._near, self._far, self._count = [], [], 0
            self._estimate(near_all, far_all)

    def _estimate(self, near: np.ndarray, far: np.ndarray) -> None:
        if float(np.dot(far, far)) / far.size < 10.0 ** (-50 / 10) * 32768.0 ** 2:
            return  # the far end is quiet: nothing to correlate, keep the last estimate
        size = 1 << int(np.ceil(np.log2(near.size + far.size)))
        # A window first: without it a tone's leakage correlates at lag 0 whatever the delay.
        window = np.hanning(near.size)
        spectrum = np.fft.rfft(near * window, size) * np.conj(np.fft.rfft(far * window, size))
        # Phase transform: each frequency weighs the same, so a peaky sound cannot dominate.
        spectrum /= np.maximum(np.abs(spectrum), 1e-9)
        corr = np.fft.irfft(spectrum, size)[: self.MAX_LAG]
        peak = int(np.argmax(corr))
        guard = 40  # 5 ms either side
        others = np.concatenate([corr[: max(0, peak - guard)], corr[peak + guard:]])
        if others.size and corr[peak] > 3.0 * max(float(np.max(others)), 1e-9) and corr[peak] > 0.05:
            self.delay_ms = peak / 8.0
        # else: ambiguous (a pure tone correlates at every period): keep the last clear estimate


class MicProcessor:
    """The stages of one call's microphone, run on 20 ms frames on the core loop thread.

    :param settings: the stages (already merged with the SDK's defaults).
    :raises MissingExtraError: a stage is asked for without the ``voice`` extra.
    """

    def __init__(self, settings: AudioProcessing) -> None:
        stages = settings.resolved()
        self.echo_cancellation = stages["echo_cancellation"]
        self.noise_suppression = stages["noise_suppression"]
        self.auto_gain_control = stages["auto_gain_control"]
        self._ec: Any = None
        self._ns: Any = None
        self._agc: Any = None
        if any(stages.values()):
            module = _require()
            if self.echo_cancellation:
                delay = int(round(settings.echo_delay_ms or 0))
                self._ec = module.EchoCanceller(sample_rate=SAMPLE_RATE, num_channels=1, stream_delay_ms=delay)
            if self.noise_suppression:
                self._ns = module.NoiseSuppressor(sample_rate=SAMPLE_RATE, num_channels=1, level=2)
            if self.auto_gain_control:
                self._agc = module.GainController(sample_rate=SAMPLE_RATE, num_channels=1)
        self._in_power = 0.0
        self._out_power = 0.0
        self._erle: Optional[float] = None
        self._delay = _DelayEstimator() if self._ec is not None else None
        self.reference_samples = 0

    @property
    def active(self) -> bool:
        return self._ec is not None or self._ns is not None or self._agc is not None

    @property
    def wants_reference(self) -> bool:
        return self._ec is not None

    def process(self, near: np.ndarray, far: Optional[np.ndarray]) -> np.ndarray:
        """One frame (int16, a multiple of 10 ms at 48 kHz) through the stages; ``far`` is the reference."""
        out = near
        if self._ec is not None:
            if far is None or far.size != near.size:
                far = np.zeros_like(near)
            out = self._ec.process(near, far)
            self._measure(near, out, far)
        if self._ns is not None:
            out = self._ns.process(out)
        if self._agc is not None:
            out = self._agc.process(out)
        return out

    def _measure(self, near: np.ndarray, out: np.ndarray, far: np.ndarray) -> None:
        far_f = far.astype(np.float32)
        far_power = float(np.dot(far_f, far_f)) / far.size
        if far_power > 0.0:
            self.reference_samples += far.size
        if self._delay is not None:
            self._delay.feed(near.astype(np.float32), far_f)
        if far_power < 10.0 ** (-50 / 10) * 32768.0 ** 2:
            return  # the far end is quiet: no echo to measure
        near_f = near.astype(np.float32)
        out_f = out.astype(np.float32)
        alpha = 0.05  # ~0.4 s at 50 frames/s
        self._in_power += alpha * (float(np.dot(near_f, near_f)) / near.size - self._in_power)
        self._out_power += alpha * (float(np.dot(out_f, out_f)) / out.size - self._out_power)
        if self._in_power > 1.0:
            self._erle = 10.0 * float(np.log10(self._in_power / max(self._out_power, 1e-3)))

    @property
    def stats(self) -> AudioProcessingStats:
        gain = None
        if self._agc is not None:
            try:
                gain = float(self._agc.gain_db)
            except (RuntimeError, AttributeError):  # pragma: no cover - before the first frame
                gain = None
        return AudioProcessingStats(
            echo_cancellation=self._ec is not None,
            noise_suppression=self._ns is not None,
            auto_gain_control=self._agc is not None,
            erle_db=None if self._erle is None else round(self._erle, 1),
            delay_ms=None if self._delay is None else self._delay.delay_ms,
            gain_db=gain,
            reference_ms=self.reference_samples / (SAMPLE_RATE / 1000.0),
        )
