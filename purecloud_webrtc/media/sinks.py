"""Audio sinks: where the SDK puts what it hears in a call.

A remote aiortc track must have exactly one reader, so sinks do not read
tracks: a :class:`SinkPump` reads the track on the core loop thread and calls
:meth:`AudioSink.write` with every frame.  ``write`` therefore runs on the core
loop thread and must never block; sinks that do slow things (files, devices,
user callbacks) hand the samples to their own named worker thread
(``pcw-wav-N``, ``pcw-speaker-N``, ``pcw-audio-cb-N``) through a bounded queue.

Received frames are normally s16 stereo 48 kHz (Opus); any other rate or layout
(PCMU's 8 kHz mono, for example) is converted, so every sink sees 48 kHz.

Threading: ``write`` on the core loop thread; ``close`` and the accessors on
any thread; worker threads as named above.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import fractions
import itertools
import logging
import math
import os
import threading
import time
import wave
from typing import Any, Callable, Deque, Generic, Optional, Sequence, TypeVar, Union

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from . import _pyaudio
from ._pyaudio import AudioDevice, AudioDeviceError
from .analysis import SAMPLE_RATE, FrameConverter, dominant_frequency, rms_dbfs
from .processing import playback_reference

__all__ = [
    "AudioSink",
    "NullSink",
    "BufferSink",
    "WavRecorderSink",
    "CallbackSink",
    "SpeakerSink",
    "MultiSink",
    "SinkPump",
    "resolve_sink",
    "SinkSpec",
]

logger = logging.getLogger(__name__)
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
_module_logger = logger  # resolve_sink() has a parameter named ``logger``

#: How long :meth:`AudioSink.close` waits for a worker thread to finish.
CLOSE_TIMEOUT = 5.0

SinkFunction = Callable[[Any, float], Any]
SinkSpec = Union[None, "AudioSink", str, "os.PathLike[str]", SinkFunction, Sequence[Any]]

_T = TypeVar("_T")
_thread_counters: dict[str, "itertools.count[int]"] = collections.defaultdict(lambda: itertools.count(1))
_thread_counters_lock = threading.Lock()


def _thread_name(prefix: str) -> str:
    with _thread_counters_lock:
        return f"{prefix}-{next(_thread_counters[prefix])}"


class _Worker(Generic[_T]):
    """A named daemon thread draining a bounded queue that drops its oldest item when full.

    ``put`` never blocks (any thread); ``handle`` and ``on_exit`` run on the
    worker thread, or ``on_exit`` on the closing thread if no item ever came.
    """

    def __init__(
        self,
        prefix: str,
        handle: Callable[[_T], None],
        *,
        max_items: int,
        what: str,
        on_exit: Optional[Callable[[], None]] = None,
        on_error: Optional[Callable[[BaseException], None]] = None,
    ) -> None:
        self._prefix = prefix
        self._handle = handle
        self._max_items = max(1, int(max_items))
        self._what = what
        self._on_exit = on_exit
        self._on_error = on_error
        self._cond = threading.Condition()
        self._items: Deque[_T] = collections.deque()
        self._closing = False
        self._thread: Optional[threading.Thread] = None
        self._last_drop_log = -math.inf
        self._last_error_log = -math.inf
        self.dropped = 0
        self.errors = 0

    @property
    def thread(self) -> Optional[threading.Thread]:
        return self._thread

    def put(self, item: _T) -> bool:
        """Queue ``item``; return False if the worker is closed."""
        dropped = 0
        with self._cond:
            if self._closing:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=_thread_name(self._prefix), daemon=True)
                self._thread.start()
            if len(self._items) >= self._max_items:
                self._items.popleft()
                self.dropped += 1
                dropped = self.dropped
            self._items.append(item)
            self._cond.notify()
        if dropped:
            now = time.monotonic()
            if now - self._last_drop_log >= 1.0:
                self._last_drop_log = now
                logger.warning(
                    "%s is too slow: its queue of %d is full, dropped the oldest audio (%d dropped so far)",
                    self._what,
                    self._max_items,
                    dropped,
                )
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._items)

    def trim(self, keep: int) -> int:
        """Drop the oldest items beyond the newest ``keep``; return how many were dropped (any thread)."""
        with self._cond:
            dropped = max(0, len(self._items) - keep)
            for _ in range(dropped):
                self._items.popleft()
            return dropped

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._items and not self._closing:
                        self._cond.wait()
                    if not self._items:
                        return
                    item = self._items.popleft()
                try:
                    self._handle(item)
                except Exception as exc:
                    self.errors += 1
                    now = time.monotonic()
                    if now - self._last_error_log >= 1.0:
                        self._last_error_log = now
                        logger.exception("%s failed (%d failures so far)", self._what, self.errors)
                    if self._on_error is not None:
                        try:
                            self._on_error(exc)
                        except Exception:
                            logger.exception("error handler of %s failed", self._what)
        finally:
            self._exit()

    def _exit(self) -> None:
        if self._on_exit is not None:
            try:
                self._on_exit()
            except Exception:
                logger.exception("%s failed while closing", self._what)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Finish the queued items, stop the thread and join it for at most ``timeout`` s.

        Safe from any thread, including the worker itself (then it does not join).
        """
        with self._cond:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._cond.notify_all()
            thread = self._thread
        if thread is None:
            if not already:
                self._exit()
            return
        if thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("%s: thread %s did not finish within %.1f s", self._what, thread.name, timeout)


class AudioSink(abc.ABC):
    """Receives the audio of a call, frame by frame, from a :class:`SinkPump`.

    :meth:`write` is called on the core loop thread and must not block;
    :meth:`close` may be called from any thread and is idempotent.
    """

    #: whether :meth:`write_pcm` takes samples without an ``av.AudioFrame`` made for it: the call's
    #: receive path then hands over its samples directly (about a third less work per received frame)
    accepts_pcm = False

    @abc.abstractmethod
    def write(self, frame: av.AudioFrame) -> None:
        """Take one received frame; called on the core loop thread, must not block."""

    def write_pcm(self, samples: np.ndarray) -> None:
        """Take one received frame as 1-D int16 mono 48 kHz samples (core loop thread, must not block).

        By default a frame is made of them for :meth:`write`; sinks that set :attr:`accepts_pcm` take them
        as they are.
        """
        pts = getattr(self, "_pcm_pts", 0)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = _TIME_BASE
        self._pcm_pts = pts + samples.size
        self.write(frame)

    def close(self) -> None:
        """Flush, stop worker threads (joined with a bound) and release resources; idempotent."""

    def __enter__(self) -> "AudioSink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullSink(AudioSink):
    """Discards audio (counting the frames)."""

    def __init__(self) -> None:
        self.frames_received = 0

    accepts_pcm = True

    def write(self, frame: av.AudioFrame) -> None:
        self.frames_received += 1

    def write_pcm(self, samples: np.ndarray) -> None:
        self.frames_received += 1

    def __repr__(self) -> str:
        return f"<NullSink frames={self.frames_received}>"


class BufferSink(AudioSink):
    """Keeps the last ``max_seconds`` of received audio in memory as 48 kHz mono int16.

    Meant for tests, monitoring and analysis.  ``write`` runs on the core loop
    thread; every accessor is thread-safe and may run on any thread.  Data
    stays readable after :meth:`close` (which only stops accepting frames).

    :param max_seconds: ring buffer length.
    """

    def __init__(self, max_seconds: float = 30.0) -> None:
        if not max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, not {max_seconds!r}")
        self.max_seconds = float(max_seconds)
        self._capacity = max(1, int(round(self.max_seconds * SAMPLE_RATE)))
        self._ring = np.zeros(self._capacity, dtype=np.int16)
        self._end = 0  # index after the newest sample
        self._count = 0  # valid samples in the ring
        self._frames = 0
        self._total_samples = 0
        self._closed = False
        self._cond = threading.Condition()
        self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)

    def write(self, frame: av.AudioFrame) -> None:
        if self._closed:
            return
        self.extend(self._converter.convert(frame), frames=1)

    accepts_pcm = True

    def write_pcm(self, samples: np.ndarray) -> None:
        if self._closed:
            return
        self.extend(samples, frames=1)

    def extend(self, samples: np.ndarray, *, frames: int = 0) -> None:
        """Append 48 kHz mono int16 samples directly (any thread)."""
        data = np.asarray(samples, dtype=np.int16).reshape(-1)
        with self._cond:
            self._frames += frames
            self._total_samples += data.size
            n = data.size
            if n >= self._capacity:
                self._ring[:] = data[-self._capacity :]
                self._end = 0
                self._count = self._capacity
            elif n:
                first = min(n, self._capacity - self._end)
                self._ring[self._end : self._end + first] = data[:first]
                self._ring[: n - first] = data[first:]
                self._end = (self._end + n) % self._capacity
                self._count = min(self._capacity, self._count + n)
            self._cond.notify_all()

    @property
    def frames_received(self) -> int:
        """Frames written so far (including those that fell out of the buffer)."""
        with self._cond:
            return self._frames

    @property
    def total_seconds(self) -> float:
        """Seconds of audio received since creation or :meth:`clear`, including what fell out."""
        with self._cond:
            return self._total_samples / SAMPLE_RATE

    def samples(self, last_seconds: Optional[float] = None) -> np.ndarray:
        """Return a copy of the newest ``last_seconds`` (default: everything held), oldest first."""
        with self._cond:
            n = self._count if last_seconds is None else min(self._count, max(0, int(round(last_seconds * SAMPLE_RATE))))
            if n == 0:
                return np.zeros(0, dtype=np.int16)
            start = (self._end - n) % self._capacity
            if start + n <= self._capacity:
                return self._ring[start : start + n].copy()
            return np.concatenate([self._ring[start:], self._ring[: self._end]])

    def duration(self) -> float:
        """Seconds of audio currently held (at most ``max_seconds``)."""
        with self._cond:
            return self._count / SAMPLE_RATE

    def dominant_frequency(self, last_seconds: float = 1.0) -> float:
        """FFT peak (Hz) of the newest ``last_seconds``; 0.0 for silence or no data."""
        return dominant_frequency(self.samples(last_seconds), SAMPLE_RATE)

    def rms_dbfs(self, last_seconds: float = 1.0) -> float:
        """RMS level of the newest ``last_seconds`` in dBFS (``-inf`` for silence or no data)."""
        return rms_dbfs(self.samples(last_seconds))

    def clear(self) -> None:
        """Forget all held audio and reset :attr:`total_seconds` (not :attr:`frames_received`)."""
        with self._cond:
            self._end = 0
            self._count = 0
            self._total_samples = 0

    def wait_for_duration(self, seconds: float, timeout: float) -> bool:
        """Block until :attr:`total_seconds` reaches ``seconds``; False on timeout.

        Call it from a user thread, never from the core loop thread (it blocks).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._total_samples < seconds * SAMPLE_RATE:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        self._closed = True

    def __repr__(self) -> str:
        return f"<BufferSink {self.duration():.2f}/{self.max_seconds:g} s, {self.frames_received} frames>"


#: Files the SDK writes (recordings) are readable by their owner only, unless the caller says otherwise.
PRIVATE_FILE_MODE = 0o600


def create_private_file(path: str, mode: int = PRIVATE_FILE_MODE) -> Any:
    """Create (or truncate) ``path`` for writing with exactly ``mode`` (default ``0600``), whatever the umask.

    A call recording is personal data: it is never created world-readable first and fixed later.

    :raises OSError: when the file cannot be created.
    :raises ValueError: for a mode outside ``0..0o777``.
    """
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise ValueError(f"mode must be a file permission such as 0o600, not {mode!r}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.fchmod(fd, mode)  # an existing file keeps its old mode, and the umask narrows a new one
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


class WavRecorderSink(AudioSink):
    """Records received audio to a 48 kHz 16-bit WAV file.

    The file is created in the constructor (so a bad path fails there) and
    written on a worker thread named ``pcw-wav-N``; the header is complete once
    :meth:`close` returns.  With ``channels=2`` stereo frames keep their two
    channels and mono frames are duplicated.  If the disk stalls for more than
    ~60 s of audio, the oldest queued audio is dropped with a warning.

    :param path: the file to (over)write; it is created with ``mode`` (owner only, ``0600``, by default).
    :param channels: 1 (mixed to mono) or 2.
    :param mode: the file's permissions.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], channels: int = 1, *,
                 mode: int = PRIVATE_FILE_MODE) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels!r}")
        self.path = os.fspath(path)
        self.channels = channels
        self._converter = FrameConverter(channels=channels, rate=SAMPLE_RATE)
        # Open the file ourselves: wave.open(path) leaves a half-built object
        # that complains in __del__ when the path is bad.
        self._file = create_private_file(self.path, mode)
        self._wav: Any = wave.open(self._file, "wb")
        self._wav.setnchannels(channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._samples_written = 0
        self._closed = False
        self._worker: _Worker[bytes] = _Worker(
            "pcw-wav", self._write_data, max_items=3000, what=f"WAV recorder {self.path!r}", on_exit=self._close_file
        )

    def write(self, frame: av.AudioFrame) -> None:
        if self._closed:
            return
        data = self._converter.convert(frame)
        if data.size:
            self._worker.put(data.astype("<i2", copy=False).tobytes())

    @property
    def accepts_pcm(self) -> bool:  # type: ignore[override]
        return self.channels == 1

    def write_pcm(self, samples: np.ndarray) -> None:
        if self.channels != 1:
            super().write_pcm(samples)
            return
        if self._closed:
            return
        if samples.size:
            self._worker.put(samples.astype("<i2", copy=False).tobytes())

    def _write_data(self, data: bytes) -> None:
        self._wav.writeframes(data)
        self._samples_written += len(data) // (2 * self.channels)

    def _close_file(self) -> None:
        try:
            self._wav.close()
        finally:
            self._file.close()
        logger.debug("WAV recording %s closed after %.2f s", self.path, self.seconds_written)

    @property
    def seconds_written(self) -> float:
        """Seconds of audio written to the file so far."""
        return self._samples_written / SAMPLE_RATE

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.close()

    def __repr__(self) -> str:
        return f"<WavRecorderSink {self.path!r} {self.seconds_written:.2f} s>"


class CallbackSink(AudioSink):
    """Hands received audio to ``fn(samples, timestamp_seconds)`` on a worker thread.

    ``fn`` runs on a dedicated thread named ``pcw-audio-cb-N``, in order, one
    20 ms frame at a time: ``samples`` is a 1-D int16 numpy array (mono, at
    ``sample_rate``, 48 kHz by default; resampled here) or, with ``as_numpy=False``,
    the same as little-endian bytes; ``timestamp_seconds`` is the frame's position
    in the received stream (the samples this sink got before it, over the rate),
    so gaps from dropped frames show.  If ``fn`` falls behind by ``max_queue`` frames the oldest are dropped
    (counted in :attr:`dropped`, with a warning at most once a second).  An
    exception in ``fn`` is logged with its traceback, counted in
    :attr:`errors` and passed to ``on_error`` (same thread) if given; it never
    propagates.

    :param fn: the callback.
    :param as_numpy: numpy arrays (default) or bytes.
    :param max_queue: frames queued before dropping.
    :param on_error: optional ``on_error(exc)`` called after an exception in ``fn``.
    :param sample_rate: the rate ``fn`` gets: 8000, 16000, 24000, 32000, 44100 or 48000 Hz.
    """

    def __init__(
        self,
        fn: SinkFunction,
        *,
        as_numpy: bool = True,
        max_queue: int = 100,
        on_error: Optional[Callable[[BaseException], None]] = None,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"CallbackSink needs a callable, not {type(fn).__name__}")
        if sample_rate not in (8000, 16000, 24000, 32000, 44100, 48000):
            raise ValueError(f"sample_rate must be 8000, 16000, 24000, 32000, 44100 or 48000, not {sample_rate!r}")
        self.fn = fn
        self.as_numpy = as_numpy
        self.sample_rate = int(sample_rate)
        self._converter = FrameConverter(channels=1, rate=self.sample_rate)
        self._pcm_pts = 0
        self._samples_seen = 0
        self._closed = False
        self._worker: _Worker[tuple[Any, float]] = _Worker(
            "pcw-audio-cb",
            self._deliver,
            max_items=max_queue,
            what=f"audio callback {fn!r}",
            on_error=on_error,
        )

    def write(self, frame: av.AudioFrame) -> None:
        if self._closed:
            return
        self._deliver_samples(self._converter.convert(frame))

    accepts_pcm = True

    def write_pcm(self, samples: np.ndarray) -> None:
        if self._closed:
            return
        if self.sample_rate != SAMPLE_RATE:
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, self._pcm_pts, _TIME_BASE
            self._pcm_pts += samples.size
            samples = self._converter.convert(frame)
        self._deliver_samples(samples)

    def _deliver_samples(self, samples: np.ndarray) -> None:
        timestamp = self._samples_seen / self.sample_rate
        self._samples_seen += samples.size
        if samples.size:
            payload: Any = samples if self.as_numpy else samples.astype("<i2", copy=False).tobytes()
            self._worker.put((payload, timestamp))

    def _deliver(self, item: tuple[Any, float]) -> None:
        self.fn(item[0], item[1])

    @property
    def dropped(self) -> int:
        """Frames dropped because ``fn`` was too slow."""
        return self._worker.dropped

    @property
    def errors(self) -> int:
        """Exceptions raised by ``fn`` so far."""
        return self._worker.errors

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The worker thread, once the first frame has started it."""
        return self._worker.thread

    def close(self) -> None:
        """Deliver what is queued, then stop the worker (joined for at most 5 s; not joined from ``fn`` itself)."""
        if self._closed:
            return
        self._closed = True
        self._worker.close()

    def __repr__(self) -> str:
        return f"<CallbackSink {self.fn!r}>"


class SpeakerSink(AudioSink):
    """Plays received audio on a PortAudio output device (needs pyaudio).

    The device is found and opened in the constructor (so a missing device
    fails there with :class:`AudioDeviceError`), at 48 kHz when it accepts it,
    otherwise at its default rate with resampling.  Samples are written by a
    thread named ``pcw-speaker-N`` with blocking writes; the queue holds at most
    ``max_queue`` 20 ms frames (dropping the oldest) to keep latency low.

    Latency: the device buffer is ``buffer_ms`` (default 20 ms; PortAudio keeps about two of
    them).  A queue that has not emptied for half a second (the device started late, the
    machine stalled) is cut back to what arrived last, so a backlog never turns into lasting
    delay while short bursts of network jitter are still absorbed (counted in
    :attr:`trimmed`).  ``max_queue`` caps the queue (10 frames, 200 ms) by dropping the oldest.

    :param device: PortAudio index, name (substring) or ``None`` for the default output.
    :param max_queue: 20 ms frames buffered before dropping.
    :param buffer_ms: PortAudio buffer size in milliseconds (1..200).
    :raises AudioDeviceError: pyaudio missing, no such device, or opening failed (busy, unsupported).
    :raises ValueError: ``buffer_ms`` out of range.
    """

    def __init__(self, device: Union[int, str, None] = None, *, max_queue: int = 10, buffer_ms: float = 20.0) -> None:
        if not 1.0 <= float(buffer_ms) <= 200.0:
            raise ValueError(f"buffer_ms must be between 1 and 200, not {buffer_ms!r}")
        self.buffer_ms = float(buffer_ms)
        self.device: AudioDevice = _pyaudio.find_device(device, "output")
        if _pyaudio.is_rate_supported(self.device, "output", SAMPLE_RATE):
            self.rate = SAMPLE_RATE
        else:
            self.rate = int(round(self.device.default_sample_rate))
        self._converter = FrameConverter(channels=1, rate=self.rate)
        self._reference_converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
        self._most_free = 0  # the device buffer's free space when empty (learnt): how a run dry is seen
        self._closed = False
        #: Frames dropped so far to keep the delay low.
        self.trimmed = 0
        self._window_min = 1 << 30
        self._window_writes = 0
        self._window_start = 0.0
        self._frame_seconds = 0.02
        self._stream: Any = _pyaudio.open_output_stream(
            self.device, rate=self.rate, channels=1,
            frames_per_buffer=max(1, int(round(self.rate * self.buffer_ms / 1000.0))),
        )
        self._worker: "_Worker[tuple[bytes, Optional[np.ndarray]]]" = _Worker(
            "pcw-speaker",
            self._play,
            max_items=max_queue,
            what=f"speaker {self.device.name!r}",
            on_exit=self._close_stream,
        )
        logger.info("speaker %s opened at %d Hz", self.device.describe(), self.rate)

    def write(self, frame: av.AudioFrame) -> None:
        if self._closed:
            return
        data = self._converter.convert(frame)
        if data.size:
            self._frame_seconds = data.size / self.rate
            reference = None
            if playback_reference.active:  # a microphone cancels echo: it needs what is played, at 48 kHz
                reference = data if self.rate == SAMPLE_RATE else self._reference_converter.convert(frame)
            self._worker.put((data.astype("<i2", copy=False).tobytes(), reference))

    @property
    def accepts_pcm(self) -> bool:  # type: ignore[override]
        return self.rate == SAMPLE_RATE

    def write_pcm(self, samples: np.ndarray) -> None:
        if self.rate != SAMPLE_RATE:
            super().write_pcm(samples)
            return
        if self._closed:
            return
        if samples.size:
            self._frame_seconds = samples.size / self.rate
            reference = samples if playback_reference.active else None
            self._worker.put((samples.astype("<i2", copy=False).tobytes(), reference))

    def _play(self, item: "tuple[bytes, Optional[np.ndarray]]") -> None:
        # A backlog that builds up once (the device starts late, a hiccup) would otherwise stay for the
        # rest of the call as added delay, since frames then arrive exactly as fast as they play.  So
        # every ~0.5 s the part of the queue that never emptied in that window is dropped (what a
        # jitter buffer calls its minimum level); bursts of network jitter are still absorbed.
        # Only while the device plays in real time: a device that takes data faster (catching up, or
        # a stream without a clock) drains the queue by itself.
        pending = self._worker.pending()
        now = time.monotonic()
        if self._window_writes == 0:
            self._window_start = now
        self._window_min = min(self._window_min, pending)
        self._window_writes += 1
        drop = 0
        if self._window_writes >= 25:
            paced = now - self._window_start >= 0.8 * (self._window_writes - 1) * self._frame_seconds
            drop = self._window_min if paced else 0
            self._window_min, self._window_writes = 1 << 30, 0
        if drop:
            trimmed = self._worker.trim(pending - drop)
            self.trimmed += trimmed
            logger.debug("speaker %r: dropped %d stale queued frames to keep the delay low", self.device.name, trimmed)
        data, reference = item
        if reference is None:
            self._stream.write(data, exception_on_underflow=False)
            return
        # What the device is given now is what the microphones' echo cancellers must expect back.  A
        # device whose buffer is all free before this write has run dry (a gap in what it played).
        # (pyaudio can raise on an underflow, but it closes the stream when it does.)
        try:
            free = int(self._stream.get_write_available())
        except Exception:  # a stream that cannot tell: no gap detection
            free = -1
        ran_dry = self._most_free > 0 and free >= self._most_free
        self._most_free = max(self._most_free, free)
        self._stream.write(data, exception_on_underflow=False)
        playback_reference.write(id(self), reference, gap=ran_dry)

    def _close_stream(self) -> None:
        playback_reference.remove(id(self))
        _pyaudio.close_stream(self._stream)
        logger.info("speaker %s closed", self.device.describe())

    @property
    def dropped(self) -> int:
        """Frames dropped because the device did not keep up."""
        return self._worker.dropped

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.close()

    def __repr__(self) -> str:
        return f"<SpeakerSink {self.device.name!r} {self.rate} Hz>"


class MultiSink(AudioSink):
    """Writes every frame to several sinks; one failing sink does not stop the others.

    :param sinks: the sinks, written in order on the core loop thread.
    """

    def __init__(self, sinks: Sequence[AudioSink]) -> None:
        self.sinks: tuple[AudioSink, ...] = tuple(sinks)
        for sink in self.sinks:
            if not isinstance(sink, AudioSink):
                raise TypeError(f"MultiSink takes AudioSink objects, not {type(sink).__name__}")
        self._last_error_log = -math.inf
        self._closed = False

    @property
    def accepts_pcm(self) -> bool:  # type: ignore[override]
        return all(sink.accepts_pcm for sink in self.sinks)

    def write_pcm(self, samples: np.ndarray) -> None:
        self._each(lambda sink: sink.write_pcm(samples))

    def write(self, frame: av.AudioFrame) -> None:
        self._each(lambda sink: sink.write(frame))

    def _each(self, deliver: Callable[[AudioSink], None]) -> None:
        for sink in self.sinks:
            try:
                deliver(sink)
            except Exception:
                now = time.monotonic()
                if now - self._last_error_log >= 1.0:
                    self._last_error_log = now
                    logger.exception("audio sink %r failed to take a frame", sink)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                logger.exception("audio sink %r failed to close", sink)

    def __repr__(self) -> str:
        return f"<MultiSink {list(self.sinks)!r}>"


def resolve_sink(spec: SinkSpec, *, logger: Optional[logging.Logger] = None) -> AudioSink:
    """Turn what a user passed as "where received audio goes" into an :class:`AudioSink`.

    - ``None``: the default speaker; if pyaudio is missing, no output device
      exists or it cannot be opened, a WARNING with the reason is logged and a
      :class:`NullSink` is returned instead;
    - an :class:`AudioSink`: itself;
    - a named spec (``"null"``, ``"buffer"``, ``"speaker:NAME"``, see :mod:`~purecloud_webrtc.media.specs`)
      or a path (``str`` or ``os.PathLike``): that sink, a path as a mono :class:`WavRecorderSink`;
    - a ``list`` or ``tuple``: a :class:`MultiSink` of each element, resolved;
    - a callable: a :class:`CallbackSink` (``fn(samples, timestamp_seconds)``).

    Runs on the calling thread.

    :param logger: where to log the fallback warning (default: this module's logger).
    :raises TypeError: for anything else.
    :raises MediaSpecError: for a path whose directory does not exist or cannot be written.
    """
    log = logger if logger is not None else _module_logger
    if spec is None:
        try:
            return SpeakerSink()
        except (AudioDeviceError, OSError) as exc:
            from ._pyaudio import warn_fallback

            warn_fallback(log, "speaker", f"no speaker available, discarding received audio: {exc}")
            return NullSink()
    if isinstance(spec, AudioSink):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        from .specs import sink_from_spec

        return sink_from_spec(spec)
    if isinstance(spec, (list, tuple)):
        resolved: list[AudioSink] = []
        try:
            for item in spec:
                resolved.append(resolve_sink(item, logger=logger))
        except BaseException:
            for sink in resolved:
                if sink not in spec:
                    sink.close()
            raise
        return MultiSink(resolved)
    if callable(spec):
        return CallbackSink(spec)
    raise TypeError(
        "an audio sink must be None (default speaker), an AudioSink, a WAV file path (str or os.PathLike), "
        f"a list/tuple of sinks, or a callable fn(samples, timestamp_seconds), not {type(spec).__name__}"
    )


class SinkPump:
    """Reads one remote track on the core loop and writes every frame to a sink.

    :meth:`start` and :meth:`stop` are called on the core loop thread; the
    reading task (named ``pcw-sink-pump``) runs there too.  The end of the
    track (``MediaStreamError``) ends the pump quietly; an exception from the
    sink's ``write`` is logged (at most once a second) and the pump goes on.
    The pump never closes the sink or stops the track.

    :param track: the remote audio track (read by nobody else).
    :param sink: where frames go.
    :ivar frames: frames delivered to the sink so far.
    :ivar first_frame_at: ``time.monotonic()`` when the first frame arrived, or ``None``.
    :ivar ended: True once the track has ended (not set by :meth:`stop`).
    """

    def __init__(self, track: MediaStreamTrack, sink: AudioSink) -> None:
        self.track = track
        self.sink = sink
        self.frames = 0
        self.first_frame_at: Optional[float] = None
        self.ended = False
        self._task: Optional[asyncio.Task[None]] = None
        self._last_error_log = -math.inf

    @property
    def running(self) -> bool:
        """Whether the reading task exists and has not finished."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start reading; call on the core loop thread (idempotent while running).

        :raises RuntimeError: if no asyncio loop runs on this thread.
        """
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pcw-sink-pump")

    async def _run(self) -> None:
        # Our jitter buffer's track gives samples; while the sink takes them (``accepts_pcm``: the SDK's
        # sinks do), no av.AudioFrame is made per frame only to be converted back.
        pcm = getattr(self.track, "pcm_rate", None) == SAMPLE_RATE
        while True:
            direct = pcm and self.sink.accepts_pcm
            try:
                frame = await (self.track.recv_pcm() if direct else self.track.recv())  # type: ignore[attr-defined]
            except MediaStreamError:
                self.ended = True
                logger.debug("sink pump: track %s ended after %d frames", self.track.id, self.frames)
                return
            except Exception:
                self.ended = True
                logger.exception("sink pump: reading track %s failed; pump stopped", self.track.id)
                return
            if not direct and not isinstance(frame, av.AudioFrame):
                continue  # a packet-mode (encoded) track; nothing a sink can use
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()
                logger.debug("sink pump: first frame from track %s", self.track.id)
            self.frames += 1
            try:
                if direct:
                    self.sink.write_pcm(frame)
                else:
                    self.sink.write(frame)
            except Exception:
                now = time.monotonic()
                if now - self._last_error_log >= 1.0:
                    self._last_error_log = now
                    logger.exception("audio sink %r failed to take a frame", self.sink)

    async def wait_ended(self) -> None:
        """Wait until the track ends or the pump is stopped (core loop thread)."""
        if self._task is not None:
            # asyncio.wait neither raises the task's outcome nor cancels it.
            await asyncio.wait({self._task})

    async def stop(self) -> None:
        """Cancel the reading task and wait for it; closes nothing else (core loop thread)."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            # Re-raise only if *we* are being cancelled, not just the pump task.
            if current is not None and current.cancelling():
                raise
        except Exception:
            logger.exception("sink pump ended with an error")

    def __repr__(self) -> str:
        return f"<SinkPump frames={self.frames} running={self.running}>"
