"""Audio sources: what the SDK sends into a call.

An :class:`AudioSource` makes one aiortc audio track per call with
:meth:`AudioSource.create_track`, which the SDK calls on its core loop thread.
The generated tracks (:class:`ToneSource`, :class:`SilenceSource`,
:class:`WavFileSource`, :class:`CallbackSource`) produce 20 ms frames of s16
mono at 48 kHz with continuous ``pts`` (``time_base`` 1/48000) and pace
themselves in real time, because aiortc's sender reads as fast as ``recv()``
returns.  :class:`MicrophoneSource` is paced by the sound card instead.

Threading: tracks are read (``recv()``) on the core loop thread only;
:meth:`AudioSource.close` may be called from any thread; a microphone's capture
callback runs on a PortAudio thread and hands its data to the core loop with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import collections.abc
import fractions
import logging
import math
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from . import _pyaudio
from ._pacing import SEND_GRID, grid_after, sleep_until
from ._pyaudio import AudioDevice, AudioDeviceError
from .analysis import FRAME_SAMPLES, SAMPLE_RATE, FrameConverter, to_int16
from .processing import AudioProcessing, MicProcessor, playback_reference

__all__ = [
    "AudioSource",
    "ToneSource",
    "SilenceSource",
    "WavFileSource",
    "MicrophoneSource",
    "TrackSource",
    "CallbackSource",
    "StreamSource",
    "resolve_source",
    "SourceSpec",
]

logger = logging.getLogger(__name__)
_module_logger = logger  # resolve_source() has a parameter named ``logger``

#: A generated track that falls further behind real time than this (the loop
#: stalled, or nobody read it for a while) re-anchors its clock instead of
#: bursting the backlog out at once.  ``pts`` stays continuous.
MAX_LAG_SECONDS = 0.5

SourceFunction = Callable[[int], Union[np.ndarray, bytes, bytearray, None]]
SourceSpec = Union[None, "AudioSource", MediaStreamTrack, str, "os.PathLike[str]", SourceFunction]


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _stop_track_threadsafe(track: MediaStreamTrack, loop: Optional[asyncio.AbstractEventLoop]) -> None:
    """Stop ``track`` on its loop thread (``track.stop()`` emits events, which belong to that loop)."""
    if track.readyState != "live":
        return
    if loop is not None and loop is not _running_loop() and not loop.is_closed():
        try:
            loop.call_soon_threadsafe(track.stop)
            return
        except RuntimeError:  # the loop closed in between
            pass
    track.stop()


def make_frame(samples: np.ndarray, pts: int, sample_rate: int = SAMPLE_RATE) -> av.AudioFrame:
    """Build an s16 mono ``av.AudioFrame`` with ``pts`` in units of ``1/sample_rate``.

    :param samples: 1-D int16 samples.
    """
    data = np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, sample_rate)
    return frame


class AudioSource(abc.ABC):
    """Something that can feed audio into calls.

    :meth:`create_track` runs on the SDK's core loop thread, once per call;
    :meth:`close` may run on any thread.  Subclasses that own devices or files
    release them in :meth:`_release`.
    """

    def __init__(self) -> None:
        self._closed = False
        self._state_lock = threading.Lock()
        self._tracks: "weakref.WeakKeyDictionary[MediaStreamTrack, Optional[asyncio.AbstractEventLoop]]" = (
            weakref.WeakKeyDictionary()
        )

    @abc.abstractmethod
    def create_track(self) -> MediaStreamTrack:
        """Return a new ``kind="audio"`` track for one call.

        Called on the core loop thread, once per call/session.

        :raises RuntimeError: if the source is closed.
        """

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return getattr(self, "_closed", False)

    def close(self) -> None:
        """Release devices/files and end the tracks this source made; idempotent, any thread."""
        lock = getattr(self, "_state_lock", None)
        if lock is None:  # a subclass that did not call __init__
            self._closed = True
            return
        with lock:
            if self._closed:
                return
            self._closed = True
            tracks = list(self._tracks.items())
        for track, loop in tracks:
            _stop_track_threadsafe(track, loop)
        try:
            self._release()
        except Exception:
            logger.exception("error while closing %r", self)

    def _release(self) -> None:
        """Release owned resources; called once by :meth:`close`."""

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    def _remember(self, track: MediaStreamTrack) -> None:
        with self._state_lock:
            self._tracks[track] = _running_loop()

    def __enter__(self) -> "AudioSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}{' closed' if self.closed else ''}>"


class _GeneratedTrack(MediaStreamTrack):
    """A real-time paced track whose samples come from a ``produce(n)`` function.

    ``produce`` returns ``n`` int16 samples, or ``None`` at the end of the
    stream.  ``recv()`` runs on the core loop thread.
    """

    kind = "audio"

    def __init__(self, produce: Callable[[int], Optional[np.ndarray]], sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        self._produce = produce
        self._sample_rate = sample_rate
        self._frame_samples = sample_rate // 50
        self._start: Optional[float] = None
        self._pts = 0

    #: :meth:`recv_pcm` gives 1-D int16 mono samples at this rate (the call's own tracks read them so, with
    #: no ``av.AudioFrame`` made and converted back per frame)
    @property
    def pcm_rate(self) -> int:
        return self._sample_rate

    async def recv(self) -> av.AudioFrame:
        samples = await self.recv_pcm()
        frame = make_frame(samples, self._pts - samples.size, self._sample_rate)
        return frame

    async def recv_pcm(self) -> np.ndarray:
        """The next frame's samples (1-D int16 mono at :attr:`pcm_rate`), paced in real time.

        :raises MediaStreamError: at the end of the stream.
        """
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            # The first frame waits for the process's shared 20 ms grid (at most 20 ms): then every call's
            # frames fall due at the same instants and one wake-up of the loop sends them all (_pacing).
            self._start = grid_after(now, SEND_GRID)
        # Each frame's due time is computed from the anchor, never from the
        # previous wake-up, so sleep overshoot does not accumulate.
        due = self._start + self._pts / self._sample_rate
        delay = due - now
        if delay > 0:
            await sleep_until(due)
            if self.readyState != "live":
                raise MediaStreamError
        elif delay < -MAX_LAG_SECONDS:
            logger.debug("%r fell %.0f ms behind real time; re-anchoring its clock", self, -delay * 1000)
            self._start = grid_after(now, SEND_GRID) - self._pts / self._sample_rate
        samples = self._produce(self._frame_samples)
        if samples is None:
            self.stop()
            raise MediaStreamError
        self._pts += self._frame_samples
        return np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)


#: a tone's frames are kept while it repeats within this many frames (a whole number of hertz at 48 kHz:
#: always, at most 50 frames of 1920 bytes)
_TONE_CACHE_FRAMES = 50


class ToneSource(AudioSource):
    """A sine tone; phase is continuous across frames.

    ``frequency`` and ``amplitude`` may be changed from any thread while a call
    runs; the next frame uses the new values, still phase-continuous.

    :param frequency: Hz, ``0 <= frequency < sample_rate / 2``.
    :param amplitude: peak level relative to full scale, ``0..1``.
    :param sample_rate: the tracks' rate (keep 48000 for Opus).
    """

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__()
        if sample_rate <= 0 or sample_rate % 50:
            raise ValueError(f"sample_rate must be a positive multiple of 50, not {sample_rate!r}")
        self.sample_rate = int(sample_rate)
        self._frequency = 0.0
        self._amplitude = 0.0
        self.frequency = frequency
        self.amplitude = amplitude

    @property
    def frequency(self) -> float:
        """The tone's frequency in Hz."""
        return self._frequency

    @frequency.setter
    def frequency(self, value: float) -> None:
        value = float(value)
        if not (0.0 <= value < self.sample_rate / 2):
            raise ValueError(f"frequency must be in [0, {self.sample_rate / 2:g}) Hz, not {value!r}")
        self._frequency = value

    @property
    def amplitude(self) -> float:
        """Peak amplitude relative to full scale (0..1)."""
        return self._amplitude

    @amplitude.setter
    def amplitude(self, value: float) -> None:
        value = float(value)
        if not (0.0 <= value <= 1.0):
            raise ValueError(f"amplitude must be in [0, 1], not {value!r}")
        self._amplitude = value

    def create_track(self) -> MediaStreamTrack:
        self._check_open()
        rate = self.sample_rate
        # The wave is computed from the phase where the current (frequency, amplitude) began and the
        # sample count since; a tone of a whole number of hertz repeats every ``cycle`` samples, so its
        # frames repeat too (at most 50 different ones) and are computed once.  A change of frequency or
        # amplitude starts a new count from where the wave is (phase-continuous).
        anchor = 0.0
        pos = 0
        tone: Optional[Tuple[float, float, int]] = None
        cycle = 0
        frames: Dict[int, np.ndarray] = {}

        def produce(n: int) -> np.ndarray:
            nonlocal anchor, pos, tone, cycle, frames
            frequency, amplitude = self._frequency, self._amplitude
            if (frequency, amplitude, n) != tone:
                if tone is not None:
                    anchor = (anchor + 2.0 * math.pi * tone[0] / rate * pos) % (2.0 * math.pi)
                tone, pos, frames = (frequency, amplitude, n), 0, {}
                cycle = 0
                if frequency.is_integer():
                    period = rate // math.gcd(rate, int(frequency))
                    whole = period * n // math.gcd(period, n)  # samples after which the frames repeat
                    cycle = whole if whole // n <= _TONE_CACHE_FRAMES else 0
            samples = frames.get(pos) if cycle else None
            if samples is None:
                step = 2.0 * math.pi * frequency / rate
                samples = np.rint(np.sin(anchor + step * (pos + np.arange(n))) * (amplitude * 32767.0)).astype(np.int16)
                if cycle:
                    samples.flags.writeable = False
                    frames[pos] = samples
            pos = (pos + n) % cycle if cycle else pos + n
            return samples

        track = _GeneratedTrack(produce, rate)
        self._remember(track)
        return track

    def __repr__(self) -> str:
        return f"<ToneSource {self._frequency:g} Hz amplitude {self._amplitude:g}{' closed' if self.closed else ''}>"


class SilenceSource(AudioSource):
    """Digital silence, paced in real time (keeps RTP flowing when there is nothing to say)."""

    def create_track(self) -> MediaStreamTrack:
        self._check_open()
        track = _GeneratedTrack(lambda n: np.zeros(n, dtype=np.int16))
        self._remember(track)
        return track


def decode_audio_file(path: Union[str, "os.PathLike[str]"], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a whole audio file to int16 mono at ``sample_rate``.

    Any format FFmpeg (through PyAV) reads: WAV with 8/16/24/32-bit integer or
    float samples, any rate and channel count (channels are averaged), and
    compressed formats too.  Runs on the calling thread.

    :raises FileNotFoundError: if ``path`` does not exist.
    :raises ValueError: if the file holds no decodable audio.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    pieces: list[np.ndarray] = []
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise ValueError(f"{path} has no audio stream")
            for frame in container.decode(audio=0):
                frame.pts = None  # let the resampler count samples itself
                pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            pieces.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.FFmpegError as exc:
        raise ValueError(f"cannot decode audio file {path}: {exc}") from exc
    if not pieces:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(pieces).astype(np.int16, copy=False)


class WavFileSource(AudioSource):
    """Plays an audio file (normally a WAV) into each call, from its start.

    The file is decoded once, in the constructor, to 48 kHz mono int16 held in
    memory (~5.8 MB per minute).  With ``loop=True`` it repeats seamlessly;
    with ``loop=False`` the track ends (``MediaStreamError``) after the last
    frame, whose tail is padded with silence.

    :param path: the file.
    :param loop: repeat forever instead of ending.
    :raises FileNotFoundError: if ``path`` does not exist.
    :raises ValueError: if it holds no decodable audio.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], loop: bool = True) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.loop = bool(loop)
        self._samples: np.ndarray = decode_audio_file(self.path)
        logger.debug("loaded %s: %.2f s", self.path, self.duration)

    @property
    def duration(self) -> float:
        """Length of the decoded audio in seconds."""
        return self._samples.size / SAMPLE_RATE

    @property
    def samples(self) -> np.ndarray:
        """The decoded 48 kHz mono int16 samples (read-only view)."""
        view = self._samples.view()
        view.flags.writeable = False
        return view

    def create_track(self) -> MediaStreamTrack:
        self._check_open()
        data = self._samples
        loop = self.loop
        position = 0

        def produce(n: int) -> Optional[np.ndarray]:
            nonlocal position
            total = data.size
            if loop:
                if total == 0:
                    return np.zeros(n, dtype=np.int16)
                indices = (position + np.arange(n)) % total
                position = (position + n) % total
                return data[indices]
            if position >= total:
                return None
            chunk = data[position : position + n]
            position += n
            if chunk.size < n:
                chunk = np.concatenate([chunk, np.zeros(n - chunk.size, dtype=np.int16)])
            return chunk

        track = _GeneratedTrack(produce)
        self._remember(track)
        return track

    def __repr__(self) -> str:
        return f"<WavFileSource {self.path!r} loop={self.loop}{' closed' if self.closed else ''}>"


class CallbackSource(AudioSource):
    """Audio produced by a function: ``fn(n_samples) -> samples``.

    ``fn`` is called on the core loop thread once per 20 ms frame (the one place user code runs on the
    core, see docs/threading.rst), so it must
    return quickly and must not block (do slow work elsewhere and hand over
    the results through a queue).  It returns int16 mono 48 kHz samples as a
    numpy array (floats are taken as full scale 1.0) or as little-endian
    int16 bytes.  Extra samples are kept for the next frame, a short answer is
    padded with silence, and ``None`` ends the track.  An exception in ``fn``
    is logged with its traceback (at most once a second) and the frame is
    silent; it never reaches aiortc.

    :param fn: the sample function.
    """

    def __init__(self, fn: SourceFunction) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(f"CallbackSource needs a callable, not {type(fn).__name__}")
        self.fn = fn
        self.errors = 0

    def create_track(self) -> MediaStreamTrack:
        self._check_open()
        pending = np.zeros(0, dtype=np.int16)
        last_logged = -math.inf
        short_logged = False

        def produce(n: int) -> Optional[np.ndarray]:
            nonlocal pending, last_logged, short_logged
            while pending.size < n:
                try:
                    result = self.fn(n - pending.size)
                except Exception:
                    self.errors += 1
                    now = time.monotonic()
                    if now - last_logged >= 1.0:
                        last_logged = now
                        logger.exception("audio source callback %r failed (%d failures so far)", self.fn, self.errors)
                    result = np.zeros(n - pending.size, dtype=np.int16)
                if result is None:
                    if pending.size == 0:
                        return None
                    result = np.zeros(0, dtype=np.int16)
                chunk = to_int16(result).reshape(-1)
                if chunk.size < n - pending.size:
                    if not short_logged:
                        short_logged = True
                        logger.debug("audio source callback returned fewer samples than asked; padding")
                    chunk = np.concatenate([chunk, np.zeros(n - pending.size - chunk.size, dtype=np.int16)])
                pending = np.concatenate([pending, chunk])
            out, pending = pending[:n], pending[n:]
            return out

        track = _GeneratedTrack(produce)
        self._remember(track)
        return track

    def __repr__(self) -> str:
        return f"<CallbackSource {self.fn!r}{' closed' if self.closed else ''}>"


class StreamSource(AudioSource):
    """Audio you push: PCM at ``sample_rate`` written from any thread, sent in real time.

    For bots and pipelines that produce audio in chunks (a TTS engine, a voice-bot framework): write what
    you have with :meth:`write` (resampled to 48 kHz here, no hand-written resampling), and the call sends
    it at 50 frames a second; while nothing is queued it sends silence.  :meth:`clear` drops what is queued
    (barge-in: the caller spoke over the bot).  At most ``max_seconds`` are held: a writer that runs ahead
    further loses its oldest audio (counted in :attr:`dropped_seconds`, with a warning); pace yourself
    with :attr:`buffered_seconds`.

    :param sample_rate: the rate of what is written: 8000, 16000, 24000, 32000, 44100 or 48000 Hz.
    :param max_seconds: the most audio held (default 2 s).
    """

    RATES = (8000, 16000, 24000, 32000, 44100, 48000)

    def __init__(self, sample_rate: int = SAMPLE_RATE, *, max_seconds: float = 2.0) -> None:
        super().__init__()
        if sample_rate not in self.RATES:
            raise ValueError(f"sample_rate must be one of {self.RATES}, not {sample_rate!r}")
        if not 0.02 <= max_seconds <= 60:
            raise ValueError(f"max_seconds must be between 0.02 and 60, not {max_seconds!r}")
        self.sample_rate = int(sample_rate)
        self.max_seconds = float(max_seconds)
        self._lock = threading.Lock()
        self._chunks: "collections.deque[np.ndarray]" = collections.deque()
        self._queued = 0  # samples at 48 kHz
        self._converter = _Resampler(self.sample_rate)
        self._warned = False
        #: seconds of written audio dropped because more than ``max_seconds`` were queued
        self.dropped_seconds = 0.0
        #: seconds of audio sent from what was written
        self.sent_seconds = 0.0

    def write(self, samples: Union[np.ndarray, bytes, bytearray, memoryview, Sequence[float]]) -> None:
        """Queue mono ``samples`` at :attr:`sample_rate` (int16 or float arrays, or little-endian int16
        bytes); any thread, never blocks."""
        if self.closed:
            raise RuntimeError("StreamSource is closed")
        data = to_int16(samples).reshape(-1)
        if data.size == 0:
            return
        with self._lock:
            pcm = self._converter.convert(data)
            if pcm.size == 0:
                return
            self._chunks.append(pcm)
            self._queued += pcm.size
            limit = int(self.max_seconds * SAMPLE_RATE)
            dropped = 0
            while self._queued > limit and self._chunks:
                extra = self._queued - limit
                head = self._chunks[0]
                if head.size <= extra:
                    self._chunks.popleft()
                    self._queued -= head.size
                    dropped += head.size
                else:
                    self._chunks[0] = head[extra:]
                    self._queued -= extra
                    dropped += extra
            warn = dropped and not self._warned
            if dropped:
                self.dropped_seconds += dropped / SAMPLE_RATE
                self._warned = True
        if warn:
            logger.warning("%r: more than %.1f s written ahead; the oldest audio was dropped (pace the writer "
                           "with buffered_seconds)", self, self.max_seconds)

    def clear(self) -> float:
        """Drop everything queued (barge-in); returns the seconds dropped.  Any thread."""
        with self._lock:
            dropped = self._queued / SAMPLE_RATE
            self._chunks.clear()
            self._queued = 0
        return dropped

    @property
    def buffered_seconds(self) -> float:
        """Seconds written and not sent yet."""
        return self._queued / SAMPLE_RATE

    def _take(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        with self._lock:
            while filled < n and self._chunks:
                head = self._chunks[0]
                take = min(n - filled, head.size)
                out[filled:filled + take] = head[:take]
                if take == head.size:
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[take:]
                filled += take
            self._queued -= filled
            self.sent_seconds += filled / SAMPLE_RATE
        return out

    def create_track(self) -> MediaStreamTrack:
        self._check_open()
        track = _GeneratedTrack(self._take)
        self._remember(track)
        return track

    def __repr__(self) -> str:
        return (f"<StreamSource {self.sample_rate} Hz, {self.buffered_seconds:.2f} s queued"
                f"{' closed' if self.closed else ''}>")


class _Resampler:
    """Mono int16 at ``rate`` to 48 kHz, stateful (consecutive chunks join without clicks)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._converter = None if rate == SAMPLE_RATE else FrameConverter(channels=1, rate=SAMPLE_RATE)
        self._pts = 0

    def convert(self, samples: np.ndarray) -> np.ndarray:
        if self._converter is None:
            return samples.copy()
        frame = make_frame(samples, self._pts, self.rate)
        self._pts += samples.size
        return self._converter.convert(frame)


class TrackSource(AudioSource):
    """The user's own aiortc audio track, handed to the call as is.

    The same track is returned for every call, so use one call at a time.
    :meth:`close` does not stop it: it belongs to the user.

    :param track: a ``kind="audio"`` :class:`aiortc.MediaStreamTrack`.
    :raises ValueError: for a non-audio track.
    """

    def __init__(self, track: MediaStreamTrack) -> None:
        super().__init__()
        if getattr(track, "kind", None) != "audio":
            raise ValueError(f"TrackSource needs an audio track, not kind={getattr(track, 'kind', None)!r}")
        self.track = track

    def create_track(self) -> MediaStreamTrack:
        self._check_open()
        if self.track.readyState != "live":
            logger.warning("TrackSource: the user's track %r has already ended", self.track)
        return self.track

    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"<TrackSource {self.track!r}{' closed' if self.closed else ''}>"


#: PortAudio's paInputOverflow status flag: input was lost before this chunk
_PA_INPUT_OVERFLOW = 0x2


class _MicrophoneTrack(MediaStreamTrack):
    """One call's view of a :class:`MicrophoneSource`.

    Captured chunks arrive on the loop thread through ``call_soon_threadsafe``
    into a bounded ``asyncio.Queue`` that drops its oldest chunk when full;
    ``recv()`` runs on that loop thread and cuts 960-sample frames.
    """

    kind = "audio"

    def __init__(self, source: "MicrophoneSource", loop: asyncio.AbstractEventLoop, max_queue: int,
                 processor: Optional[MicProcessor] = None) -> None:
        super().__init__()
        self._source = source
        self._capture_loop = loop
        # Each item: a captured chunk and the speakers' audio of the same moment (None without echo
        # cancellation), so that dropping a stale chunk drops its reference too.
        self._queue: "asyncio.Queue[Optional[Tuple[np.ndarray, Optional[np.ndarray]]]]" = asyncio.Queue(
            maxsize=max_queue)
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_far = np.zeros(0, dtype=np.int16)
        #: the call's echo canceller, noise suppressor and gain control (``None``: none runs)
        self.processor = processor
        self._pts = 0
        self.dropped = 0
        #: Chunks dropped as stale backlog (see ``recv``).
        self.trimmed = 0
        self._window_min = 1 << 30
        self._window_reads = 0
        self._window_start = 0.0

    def feed_threadsafe(self, samples: np.ndarray, far: Optional[np.ndarray] = None) -> None:
        """Hand captured samples (and the reference) to the loop; called on the PortAudio thread."""
        try:
            self._capture_loop.call_soon_threadsafe(self._put, (samples, far))
        except RuntimeError:  # loop closed
            pass

    @property
    def wants_reference(self) -> bool:
        return self.processor is not None and self.processor.wants_reference

    def _put(self, item: Optional[Tuple[np.ndarray, Optional[np.ndarray]]]) -> None:
        if self._queue.full():
            try:
                self._queue.get_nowait()
            except asyncio.QueueEmpty:  # pragma: no cover
                pass
            if item is not None:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 250 == 0:
                    logger.warning("microphone audio is not being read fast enough; dropped %d chunks", self.dropped)
        self._queue.put_nowait(item)

    async def recv(self) -> av.AudioFrame:
        # Capture starts when the call is answered but sending only once media connects: the chunks
        # captured meanwhile would stay queued as delay for the whole call, since afterwards they are
        # read exactly as fast as they come.  Every 25 reads, the part of the queue that never
        # emptied in that window (its minimum level) is dropped.
        # Only while capture runs in real time (a device's clock): a burst is no standing backlog.
        queued = self._queue.qsize()
        now = time.monotonic()
        if self._window_reads == 0:
            self._window_start = now
        self._window_min = min(self._window_min, queued)
        self._window_reads += 1
        if self._window_reads >= 25:
            paced = now - self._window_start >= 0.8 * 24 * FRAME_SAMPLES / SAMPLE_RATE
            stale = self._window_min if paced else 0
            self._window_min, self._window_reads = 1 << 30, 0
            for _ in range(stale):
                item = self._queue.get_nowait()
                if item is None:  # the end of the track stays in the queue
                    self._queue.put_nowait(item)
                    break
                self.trimmed += 1
            if stale:
                logger.debug("microphone: dropped %d stale chunks to keep the delay low", stale)
        while self._pending.size < FRAME_SAMPLES:
            if self.readyState != "live":
                raise MediaStreamError
            item = await self._queue.get()
            if item is None:
                raise MediaStreamError
            chunk, far = item
            self._pending = np.concatenate([self._pending, chunk])
            if self.processor is not None:
                if far is None or far.size != chunk.size:
                    far = np.zeros(chunk.size, dtype=np.int16)
                self._pending_far = np.concatenate([self._pending_far, far])
        samples, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
        if self.processor is not None:
            far_frame, self._pending_far = self._pending_far[:FRAME_SAMPLES], self._pending_far[FRAME_SAMPLES:]
            samples = self.processor.process(samples, far_frame)
        frame = make_frame(samples, self._pts)
        self._pts += FRAME_SAMPLES
        return frame

    def stop(self) -> None:
        was_live = self.readyState == "live"
        super().stop()
        if was_live:
            self._source._unsubscribe(self)
            if _running_loop() is self._capture_loop:
                self._put(None)
            else:
                try:
                    self._capture_loop.call_soon_threadsafe(self._put, None)
                except RuntimeError:
                    pass


class MicrophoneSource(AudioSource):
    """Captures from a PortAudio input device (needs pyaudio).

    The device is found and its stream opened in the constructor, so a
    missing or broken device fails there (:class:`AudioDeviceError`); capture
    starts when the first call's track is created and pauses when the last one
    stops.  Capture runs at 48 kHz when the device accepts it, otherwise at its
    default rate, resampled to 48 kHz.  The capture callback runs on
    PortAudio's thread and hands 20 ms chunks to the core loop thread with
    ``loop.call_soon_threadsafe``; each track buffers at most ``max_queue``
    chunks and drops the oldest beyond that.

    Latency: PortAudio delivers one buffer of ``buffer_ms`` at a time (default 20 ms, one Opus
    frame); smaller buffers (10, 5 ms) cut the capture delay by the difference at the price of
    more wake-ups, larger ones help a loaded machine.  ``max_queue`` bounds the backlog
    a slow loop can build; a backlog that does not drain within 25 reads is dropped as
    stale, so it never turns into lasting delay.

    Processing (the ``voice`` extra, :mod:`purecloud_webrtc.media.processing`): echo cancellation
    against what the SDK's speakers play, noise suppression and automatic gain control, each on by
    default when the extra is installed (the SDK's ``mic_*`` options change the default), run per call.

    :param device: PortAudio index, name (substring) or ``None`` for the default input.
    :param max_queue: chunks (``buffer_ms`` each) buffered per track.
    :param buffer_ms: PortAudio buffer size in milliseconds (1..200).
    :param echo_cancellation: cancel the echo of the SDK's speakers (``None``: the SDK's default).
    :param noise_suppression: suppress steady background noise (``None``: the SDK's default).
    :param auto_gain_control: level the voice (``None``: the SDK's default).
    :param echo_delay_ms: the speaker-to-microphone delay, when known, as a hint for the canceller.
    :raises AudioDeviceError: pyaudio missing, no such device, or opening failed (the message names
        the device and PortAudio's reason, e.g. "Device unavailable" for a busy device).
    :raises ValueError: ``buffer_ms`` or ``echo_delay_ms`` out of range.
    :raises TypeError: a stage switch that is not a bool or ``None``.
    :raises MissingExtraError: a stage asked for (``True``) without the ``voice`` extra.
    """

    def __init__(self, device: Union[int, str, None] = None, *, max_queue: int = 10, buffer_ms: float = 20.0,
                 echo_cancellation: Optional[bool] = None, noise_suppression: Optional[bool] = None,
                 auto_gain_control: Optional[bool] = None, echo_delay_ms: Optional[float] = None) -> None:
        super().__init__()
        if not 1.0 <= float(buffer_ms) <= 200.0:
            raise ValueError(f"buffer_ms must be between 1 and 200, not {buffer_ms!r}")
        #: the stages asked for on this microphone (``None`` fields: the SDK's defaults)
        self.processing = AudioProcessing(echo_cancellation, noise_suppression, auto_gain_control, echo_delay_ms)
        self._reference: Any = None  # the speakers' audio, read while a track cancels echo
        self.buffer_ms = float(buffer_ms)
        self.device: AudioDevice = _pyaudio.find_device(device, "input")
        self.max_queue = max(1, int(max_queue))
        if _pyaudio.is_rate_supported(self.device, "input", SAMPLE_RATE):
            self.capture_rate = SAMPLE_RATE
        else:
            self.capture_rate = int(round(self.device.default_sample_rate))
        self._resampler: Optional[av.AudioResampler] = None
        if self.capture_rate != SAMPLE_RATE:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._subscribers: list[_MicrophoneTrack] = []
        self._subscribers_lock = threading.Lock()  # the only lock the PortAudio callback takes
        self._stream_lock = threading.Lock()
        self._overflows = 0
        self._callback_errors = 0
        self._stream: Any = _pyaudio.open_input_stream(
            self.device,
            rate=self.capture_rate,
            channels=1,
            frames_per_buffer=max(1, int(round(self.capture_rate * self.buffer_ms / 1000.0))),
            callback=self._on_audio,
            start=False,
        )
        logger.info("microphone %s opened at %d Hz", self.device.describe(), self.capture_rate)

    def _on_audio(self, in_data: Optional[bytes], frame_count: int, time_info: Any, status: int) -> tuple[None, int]:
        # Runs on PortAudio's callback thread: no blocking, no loop access.
        try:
            if status:
                self._overflows += 1
                if self._overflows == 1:
                    logger.debug("microphone reported status flags %#x", status)
            if in_data:
                samples = np.frombuffer(in_data, dtype="<i2").astype(np.int16)
                if self._resampler is not None:
                    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
                    frame.sample_rate = self.capture_rate
                    parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
                    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
                if samples.size:
                    with self._subscribers_lock:
                        subscribers = list(self._subscribers)
                        reference = self._reference
                    # The speakers' audio of this moment, read in step with the capture (one reader per
                    # device, shared by its calls).
                    far = None
                    if reference is not None:
                        far = reference.read(samples.size, gap=bool(status & _PA_INPUT_OVERFLOW))
                    for track in subscribers:
                        track.feed_threadsafe(samples, far)
        except Exception:
            self._callback_errors += 1
            if self._callback_errors == 1:
                logger.exception("error in the microphone capture callback")
        return None, 0  # paContinue

    def create_track(self, *, processing_defaults: Optional[AudioProcessing] = None) -> MediaStreamTrack:
        """Return a track fed by the microphone; must be called on the core loop thread.

        :param processing_defaults: the stages for this call where :attr:`processing` says ``None``
            (the SDK passes its ``mic_*`` options).
        :raises RuntimeError: if the source is closed or no asyncio loop runs on this thread.
        :raises MissingExtraError: a stage is on without the ``voice`` extra.
        """
        self._check_open()
        loop = _running_loop()
        if loop is None:
            raise RuntimeError("MicrophoneSource.create_track() must be called on the running core loop thread")
        settings = self.processing.over(processing_defaults or AudioProcessing())
        processor = MicProcessor(settings) if settings.any else None
        track = _MicrophoneTrack(self, loop, self.max_queue, processor)
        self._remember(track)
        with self._subscribers_lock:
            self._subscribers.append(track)
        self._update_reference()
        self._update_stream()
        return track

    def _unsubscribe(self, track: _MicrophoneTrack) -> None:
        with self._subscribers_lock:
            if track in self._subscribers:
                self._subscribers.remove(track)
        self._update_reference()
        self._update_stream()

    def _update_reference(self) -> None:
        # Speakers keep their audio for the cancellers only while a call of this microphone cancels echo.
        with self._subscribers_lock:
            wanted = any(track.wants_reference for track in self._subscribers)
            reference = self._reference
            if wanted and reference is None:
                self._reference = playback_reference.open_reader()
            elif not wanted and reference is not None:
                self._reference = None
                reference.close()

    def _update_stream(self) -> None:
        # Never hold _subscribers_lock here: stop_stream() waits for a running
        # callback, which may be waiting for that lock.
        with self._subscribers_lock:
            wanted = bool(self._subscribers)
        with self._stream_lock:
            if self._stream is None:
                return
            try:
                if wanted and self._stream.is_stopped():
                    self._stream.start_stream()
                    logger.debug("microphone capture started")
                elif not wanted and not self._stream.is_stopped():
                    self._stream.stop_stream()
                    logger.debug("microphone capture paused")
            except Exception:
                logger.exception("could not %s microphone capture", "start" if wanted else "pause")

    def _release(self) -> None:
        with self._subscribers_lock:
            self._subscribers.clear()
            reference, self._reference = self._reference, None
        if reference is not None:
            reference.close()
        with self._stream_lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            _pyaudio.close_stream(stream)
            logger.info("microphone %s closed", self.device.describe())

    def __repr__(self) -> str:
        return f"<MicrophoneSource {self.device.name!r}{' closed' if self.closed else ''}>"


def _pull_from(iterator: "collections.abc.Iterator[Any]") -> SourceFunction:
    """A :class:`CallbackSource` function reading PCM chunks of any length from ``iterator``.

    It gathers chunks until it has the samples asked for (CallbackSource keeps any surplus
    for the next frame), so short chunks are joined rather than padded; exhaustion ends the track.
    """

    def pull(n: int) -> Optional[np.ndarray]:
        parts: list[np.ndarray] = []
        have = 0
        while have < n:
            chunk = next(iterator, None)
            if chunk is None:
                break
            samples = to_int16(chunk).reshape(-1)
            parts.append(samples)
            have += samples.size
        if not parts:
            return None
        return np.concatenate(parts)

    return pull


def resolve_source(spec: SourceSpec, *, logger: Optional[logging.Logger] = None) -> AudioSource:
    """Turn what a user passed as "audio to send" into an :class:`AudioSource`.

    - ``None``: the default microphone; if pyaudio is missing, no input device
      exists or it cannot be opened, a WARNING with the reason is logged and a
      :class:`SilenceSource` is returned instead;
    - an :class:`AudioSource`: itself;
    - an aiortc ``MediaStreamTrack``: a :class:`TrackSource`;
    - a named spec (``"silence"``, ``"tone:440"``, ``"mic:NAME"``, see :mod:`~purecloud_webrtc.media.specs`)
      or a path (``str`` or ``os.PathLike``): that source, a path as a looping :class:`WavFileSource`;
    - a callable: a :class:`CallbackSource`;
    - an iterator (e.g. a generator) yielding PCM chunks of any length (int16 numpy arrays, floats,
      or little-endian int16 bytes): a :class:`CallbackSource` reading it, ending when it is exhausted.

    Runs on the calling thread (opening a microphone can take tens of ms).

    :param logger: where to log the fallback warning (default: this module's logger).
    :raises TypeError: for anything else.
    :raises MediaSpecError: for a path that does not exist or a malformed spec.
    """
    log = logger if logger is not None else _module_logger
    if spec is None:
        try:
            return MicrophoneSource()
        except (AudioDeviceError, OSError) as exc:
            from ._pyaudio import warn_fallback

            warn_fallback(log, "microphone", f"no microphone available, sending silence instead: {exc}")
            return SilenceSource()
    if isinstance(spec, AudioSource):
        return spec
    if isinstance(spec, MediaStreamTrack):
        return TrackSource(spec)
    if isinstance(spec, (str, os.PathLike)):
        from .specs import source_from_spec

        return source_from_spec(spec)
    if callable(spec):
        return CallbackSource(spec)
    if isinstance(spec, collections.abc.Iterator):
        return CallbackSource(_pull_from(spec))
    raise TypeError(
        "an audio source must be None (default microphone), an AudioSource, an aiortc MediaStreamTrack, "
        f"a file path (str or os.PathLike) or a callable fn(n_samples) -> samples, not {type(spec).__name__}"
    )
