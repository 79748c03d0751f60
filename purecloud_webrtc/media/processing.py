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
it writes them, to :data:`playback_reference`; a microphone with echo cancellation reads the same amount
of that audio for each chunk it captures, by the position of each sample in the speaker's stream (20 ms
behind its writes), so the two stay in step at the devices' own pace even when a busy machine delays
the threads that hand the audio over; the remaining delay (the devices' buffers and the acoustic path)
is found by AEC3's delay estimator.  A
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
from collections import deque
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Deque, Dict, List, Optional

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


class _Timeline:
    """One speaker's audio as one reader sees it: samples by their index in the speaker's stream."""

    __slots__ = ("chunks", "head", "written", "pos")

    def __init__(self) -> None:
        self.chunks: Deque[np.ndarray] = deque()
        self.head = 0  # stream index of the first sample kept
        self.written = 0  # stream index after the last sample written
        self.pos: Optional[int] = None  # stream index the reader reads next (None: not anchored yet)


class _ReferenceReader:
    """One microphone's view of what the speakers play, read in step with its capture.

    A speaker's sample ``k`` is played at its device's clock, ``k / 48000`` s after its first one,
    whenever the writing thread happened to hand it over; a microphone's sample ``j`` likewise.  So the
    reader follows each speaker by *stream index*: it reads ``[pos, pos + n)`` for ``n`` captured samples,
    ``MARGIN`` behind what the speaker has written, and a late write (a busy machine) leaves zeros
    where it was due rather than shifting everything after it.  The alignment, and so the echo
    canceller's delay, stays fixed; it is anchored again only when the two drift apart by more than
    ``MAX_LAG`` or the speaker stopped (a jump the canceller re-converges from).
    """

    MARGIN = 960  # 20 ms: how far behind the speaker's writes the reader stays, absorbing late writes
    MAX_LAG = 9600  # 200 ms

    def __init__(self, owner: "PlaybackReference", max_samples: int) -> None:
        self._owner = owner
        self._max = max_samples
        self._lines: Dict[int, _Timeline] = {}
        self.received = 0  # samples pushed, all speakers
        self.realigned = 0  # times a speaker's alignment was anchored again after the first

    def _push(self, key: int, samples: np.ndarray) -> None:  # under the owner's lock
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Timeline()
        line.chunks.append(samples)
        line.written += samples.size
        self.received += samples.size
        kept = line.written - line.head
        while kept > self._max and line.chunks:  # a speaker that plays while nobody reads (bounded)
            dropped = line.chunks.popleft().size
            line.head += dropped
            kept -= dropped

    def _forget(self, key: int) -> None:  # under the owner's lock
        self._lines.pop(key, None)

    def read(self, n: int) -> np.ndarray:
        """The ``n`` samples the speakers played for the next ``n`` captured ones (mixed; zeros where none)."""
        out = np.zeros(n, dtype=np.int32)
        with self._owner._lock:
            for line in self._lines.values():
                pos = line.pos
                if pos is None or abs(line.written - pos) > self.MAX_LAG:
                    if pos is not None:
                        self.realigned += 1
                    pos = line.written - self.MARGIN
                self._copy(line, pos, out)
                line.pos = pos + n
                self._trim(line, pos + n)
        return np.clip(out, -32768, 32767).astype(np.int16)

    @staticmethod
    def _copy(line: _Timeline, start: int, out: np.ndarray) -> None:
        index = line.head
        end = start + out.size
        for chunk in line.chunks:
            chunk_end = index + chunk.size
            if chunk_end > start and index < end:
                lo, hi = max(index, start), min(chunk_end, end)
                out[lo - start:hi - start] += chunk[lo - index:hi - index]
            if chunk_end >= end:
                break
            index = chunk_end

    @staticmethod
    def _trim(line: _Timeline, upto: int) -> None:
        while line.chunks and line.head + line.chunks[0].size <= upto:
            line.head += line.chunks.popleft().size

    def close(self) -> None:
        self._owner._close_reader(self)


class PlaybackReference:
    """What the SDK's speakers play, for the echo cancellers (thread-safe).

    Speakers :meth:`write` the 48 kHz samples they hand their device; a microphone with echo cancellation
    opens a reader and reads as much as it captures.  Nothing is kept while no reader is open, and each
    reader keeps at most ``max_seconds`` per speaker.
    """

    def __init__(self, max_seconds: float = 0.5) -> None:
        self._lock = threading.Lock()
        self._readers: List[_ReferenceReader] = []
        self._max = int(max_seconds * SAMPLE_RATE)

    @property
    def active(self) -> bool:
        return bool(self._readers)

    def write(self, key: int, samples: np.ndarray) -> None:
        """Speaker ``key`` (any stable int, e.g. ``id(sink)``) is playing ``samples`` (int16, 48 kHz) now."""
        if not self._readers:
            return
        samples = np.asarray(samples, dtype=np.int16)
        with self._lock:
            for reader in self._readers:
                reader._push(key, samples)

    def remove(self, key: int) -> None:
        """Speaker ``key`` stopped (closed, or switched away from)."""
        with self._lock:
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
