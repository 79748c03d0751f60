"""The live audio of one call: swappable source and sink, mute, levels, recording.

A call's peer connection is negotiated once, with one sending track.  To change
what a live call sends (another microphone, a prompt, back to the microphone)
without renegotiation, that track is a :class:`SendTrack`: a stable
``MediaStreamTrack`` that reads whichever inner track is current and rewrites
``pts`` so the encoder sees one continuous stream.  The receiving side is
symmetric: the :class:`~purecloud_webrtc.media.SinkPump` writes into a
:class:`ReceiveRouter`, which forwards each frame to the current sink.  Both
taps measure levels (:class:`LevelMeter`) and feed a :class:`CallRecorder`
when one runs.  :class:`CallMedia` ties them together for one session.

Threading: everything here runs on the SDK's core loop thread, except
:class:`CallRecorder`'s writer (a thread named ``pcw-rec-N``) and the public
read-only properties, which any thread may read.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import threading
import time
import wave
from dataclasses import dataclass
from typing import Any, Callable, Deque, Optional, Union

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ._pacing import grid_after, sleep_until
from .analysis import FRAME_SAMPLES, SAMPLE_RATE, SILENCE_DBFS, FrameConverter
from .sinks import AudioSink, _Worker
from .processing import AudioProcessing, MicProcessor
from .sources import AudioSource, MicrophoneSource, SilenceSource, make_frame
from .vad import VadConfig, create_vad

__all__ = [
    "AudioLevels",
    "CallMedia",
    "CallRecorder",
    "LEVEL_INTERVAL",
    "LevelMeter",
    "ReceiveRouter",
    "SILENT_MICROPHONE_DBFS",
    "SILENT_MICROPHONE_SECONDS",
    "SendTrack",
]

logger = logging.getLogger(__name__)

#: Seconds between two ``audioLevel`` events of a call (the newest official SDK uses 100 ms too).
LEVEL_INTERVAL = 0.1
#: A source whose level stays below this while unmuted counts as a silent microphone.  int16 digital
#: silence is -inf; one LSB of noise is about -90 dBFS, which any real (even quiet) microphone exceeds.
SILENT_MICROPHONE_DBFS = -90.0
#: How long the source must stay silent before ``silentMicrophone`` fires.
SILENT_MICROPHONE_SECONDS = 2.0


def _mean_square(samples: np.ndarray) -> float:
    """Mean square of int16 samples, full scale = 1.0: one conversion and einsum's own loop (never a BLAS
    call, whose thread pool would spin between frames; see docs/threading.rst)."""
    if samples.size == 0:
        return 0.0
    x = samples.reshape(-1).astype(np.float32)
    return float(np.einsum("i,i->", x, x)) / (x.size * 1073741824.0)


def _dbfs(mean_square: float) -> float:
    return SILENCE_DBFS if mean_square <= 0.0 else 10.0 * math.log10(mean_square)


class LevelMeter:
    """Accumulates the energy of the samples seen since the last :meth:`take` (one thread)."""

    def __init__(self) -> None:
        self._sum = 0.0
        self._count = 0
        self.last_dbfs = SILENCE_DBFS

    def add(self, samples: np.ndarray) -> float:
        """Add int16 mono samples; returns their mean square (0.0 for none)."""
        if not samples.size:
            return 0.0
        mean_square = _mean_square(samples)
        self._sum += mean_square * samples.size
        self._count += samples.size
        return mean_square

    def take(self) -> Optional[float]:
        """Return the RMS level in dBFS since the last call, or ``None`` when nothing came; then reset."""
        if self._count == 0:
            return None
        level = _dbfs(self._sum / self._count)
        self._sum, self._count = 0.0, 0
        self.last_dbfs = level
        return level


@dataclass(frozen=True)
class AudioLevels:
    """Payload of the ``audioLevel`` session event: the levels of the last ~100 ms.

    :ivar input_dbfs: RMS level of what our source produced, in dBFS, measured before mute
        (so a level meter still moves while muted); ``-inf`` for digital silence or no audio.
    :ivar output_dbfs: RMS level of the remote audio we received, in dBFS.
    :ivar muted: whether the call is locally muted (silence is being sent).
    :ivar time: ``time.monotonic()`` at the end of the interval.
    """

    input_dbfs: float
    output_dbfs: float
    muted: bool
    time: float


class SendTrack(MediaStreamTrack):
    """The one track a call sends: reads the current inner track, swappable and mutable live.

    Frames are converted to 48 kHz mono int16 and get continuous ``pts``.  While
    there is no inner track (none set, or it ended, e.g. a WAV played once)
    the track sends digital silence paced in real time, so RTP keeps flowing.
    ``recv()`` and :meth:`set_inner` run on the core loop thread.

    :param on_samples: ``on_samples(source_samples, sent_samples, live_source)`` for each frame:
        the source's samples before mute, what is sent, and whether an inner track produced them.
    :param on_inner_ended: called (loop thread) when the current inner track ends by itself.
    """

    kind = "audio"
    #: :meth:`recv_pcm` gives 48 kHz mono samples
    pcm_rate = SAMPLE_RATE

    def __init__(
        self,
        on_samples: Callable[[np.ndarray, np.ndarray, bool], None],
        on_inner_ended: Optional[Callable[[MediaStreamTrack], None]] = None,
    ) -> None:
        super().__init__()
        self._inner: Optional[MediaStreamTrack] = None
        self._swapped: Optional[asyncio.Future[None]] = None
        self._on_samples = on_samples
        self._on_inner_ended = on_inner_ended
        self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
        self._pts = 0
        self._silence_anchor: Optional[float] = None
        self._silence_pts = 0
        self.muted = False

    @property
    def inner(self) -> Optional[MediaStreamTrack]:
        return self._inner

    def set_inner(self, track: Optional[MediaStreamTrack]) -> Optional[MediaStreamTrack]:
        """Make ``track`` the one read from now on; return the previous one (not stopped here)."""
        previous, self._inner = self._inner, track
        self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
        self._silence_anchor = None
        waiter, self._swapped = self._swapped, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return previous

    async def _read_inner(self, inner: MediaStreamTrack) -> Optional[av.AudioFrame]:
        """Read one frame, giving up (``None``) if the inner track is swapped meanwhile."""
        loop = asyncio.get_running_loop()
        self._swapped = swapped = loop.create_future()
        reading = asyncio.ensure_future(inner.recv())
        try:
            await asyncio.wait({reading, swapped}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            reading.cancel()
            raise
        if not reading.done():
            # Swapped while a foreign track was blocked: never wait for it.
            reading.cancel()
            return None
        if self._swapped is swapped:
            self._swapped = None
        return reading.result()  # may raise MediaStreamError

    async def _silence(self) -> np.ndarray:
        now = time.monotonic()
        if self._silence_anchor is None:
            self._silence_anchor, self._silence_pts = now, 0
        else:
            delay = self._silence_anchor + self._silence_pts / SAMPLE_RATE - now
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._swapped = swapped = loop.create_future()
                # Wake up early if a real source arrives meanwhile.
                await asyncio.wait({swapped}, timeout=delay)
                if self._swapped is swapped:
                    self._swapped = None
            elif delay < -0.5:
                self._silence_anchor = now - self._silence_pts / SAMPLE_RATE
        self._silence_pts += FRAME_SAMPLES
        return np.zeros(FRAME_SAMPLES, dtype=np.int16)

    async def recv(self) -> av.AudioFrame:
        sent = await self.recv_pcm()
        out = make_frame(sent, self._pts - sent.size)
        return out

    async def recv_pcm(self) -> np.ndarray:
        """What is sent next, as 1-D int16 mono 48 kHz samples (mute applied, the taps fed).

        The SDK's own sources (tone, silence, WAV, callback) are read as samples too: no ``av.AudioFrame``
        is made and converted back on the way.  Such a source only waits for its own 20 ms pacing, so it
        is awaited directly; a frame it gives after a swap is dropped.
        """
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            inner = self._inner
            live_source = inner is not None
            if inner is None:
                samples = await self._silence()
            elif getattr(inner, "pcm_rate", None) == SAMPLE_RATE:
                try:
                    samples = await inner.recv_pcm()  # type: ignore[attr-defined]
                except MediaStreamError:
                    self._ended(inner)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("the audio source track %r failed; sending silence", inner)
                    self._ended(inner)
                    continue
                if self._inner is not inner or samples.size == 0:
                    continue
            else:
                try:
                    frame = await self._read_inner(inner)
                except MediaStreamError:
                    frame = None
                    ended = True
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A broken user track must not stop the call's sender for good: treat it as ended.
                    logger.exception("the audio source track %r failed; sending silence", inner)
                    frame = None
                    ended = True
                else:
                    ended = False
                if ended:
                    self._ended(inner)
                    continue
                if frame is None or not isinstance(frame, av.AudioFrame):
                    continue
                samples = self._converter.convert(frame)
                if samples.size == 0:
                    continue
            sent = np.zeros_like(samples) if self.muted else samples
            try:
                self._on_samples(samples, sent, live_source)
            except Exception:  # metering and recording must never stop the call's audio
                logger.exception("audio tap failed")
            self._pts += sent.size
            return sent

    def _ended(self, inner: MediaStreamTrack) -> None:
        if self._inner is inner:
            self._inner = None
            self._silence_anchor = None
            if self._on_inner_ended is not None:
                self._on_inner_ended(inner)

    def stop(self) -> None:
        super().stop()
        waiter, self._swapped = self._swapped, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class ReceiveRouter(AudioSink):
    """The sink the call's pump writes to: taps each frame, then forwards it to the current sink.

    ``write`` runs on the core loop thread.

    :param on_samples: ``on_samples(samples)`` with the frame as 48 kHz mono int16.
    """

    def __init__(self, target: Optional[AudioSink], on_samples: Callable[[np.ndarray], None]) -> None:
        self.target = target
        self._on_samples = on_samples
        self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
        self._last_error_log = -math.inf

    @property
    def accepts_pcm(self) -> bool:  # type: ignore[override]
        target = self.target
        return target is None or target.accepts_pcm

    def write(self, frame: av.AudioFrame) -> None:
        self._deliver(self._converter.convert(frame), frame)

    def write_pcm(self, samples: np.ndarray) -> None:
        self._deliver(samples, None)

    def _deliver(self, samples: np.ndarray, frame: Optional[av.AudioFrame]) -> None:
        try:
            self._on_samples(samples)
        except Exception:
            logger.exception("audio tap failed")
        target = self.target
        if target is not None:
            try:
                if frame is None:
                    target.write_pcm(samples)
                else:
                    target.write(frame)
            except Exception:
                now = time.monotonic()
                if now - self._last_error_log >= 1.0:
                    self._last_error_log = now
                    logger.exception("audio sink %r failed to take a frame", target)

    def close(self) -> None:
        """Closes nothing: the sinks belong to the session."""


class CallRecorder:
    """Records one call to a 48 kHz 16-bit stereo WAV: local party left, remote party right.

    Both channels are laid on one clock, the core loop's ``time.monotonic()`` at
    which each block passed the SDK (sent to the network / received from it),
    so what was said at the same moment lines up in the file.  Blocks that
    arrive back to back are written back to back; a channel that falls more than
    :attr:`GAP` behind its clock (packet loss, a stalled source, nothing
    received yet) is padded with silence, and one that runs more than
    :attr:`AHEAD` ahead (a burst after a stall, clock drift) drops the block, so
    the error stays bounded for calls of any length.

    :meth:`feed` runs on the core loop thread and never blocks; the file is written
    by a thread named ``pcw-rec-N``; :meth:`close` (any thread) finishes the file.

    :param path: the WAV file to (over)write; created at once (so a bad path fails here) with ``mode``.
    :param start: the ``time.monotonic()`` the file's first sample stands for (default: now).
    :param mode: the file's permissions (default ``0600``: the owner only).
    """

    #: Seconds a channel may lag behind its clock before silence is inserted.
    GAP = 0.06
    #: Seconds a channel may run ahead of its clock before blocks are dropped.
    AHEAD = 0.12
    #: Seconds after which a channel with no data is written out as silence.
    HOLD = 0.3

    LOCAL = 0
    REMOTE = 1

    def __init__(self, path: Union[str, "os.PathLike[str]"], start: Optional[float] = None, *,
                 mode: int = 0o600) -> None:
        from .sinks import create_private_file

        self.path = os.fspath(path)
        self.start = time.monotonic() if start is None else start
        self._file = create_private_file(self.path, mode)
        self._wav: Any = wave.open(self._file, "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._written = 0  # stereo frames in the file
        # Per channel: next position, and the blocks (start position, samples) not yet written.
        self._next = [0, 0]
        self._blocks: list[Deque[tuple[int, np.ndarray]]] = [collections.deque(), collections.deque()]
        self.dropped = [0, 0]
        self.padded = [0, 0]
        self._closed = False
        self._lock = threading.Lock()
        self._worker: _Worker[tuple[int, np.ndarray, float]] = _Worker(
            "pcw-rec", self._place, max_items=3000, what=f"call recorder {self.path!r}", on_exit=self._finish
        )

    def feed(self, channel: int, samples: np.ndarray, at: Optional[float] = None) -> None:
        """Queue mono int16 ``samples`` of ``channel`` (:attr:`LOCAL`/:attr:`REMOTE`) that passed at ``at``."""
        if self._closed or samples.size == 0:
            return
        self._worker.put((channel, np.array(samples, dtype=np.int16, copy=True), time.monotonic() if at is None else at))

    def _place(self, item: tuple[int, np.ndarray, float]) -> None:
        channel, samples, at = item
        # ``at`` is when the block passed the SDK: the moment a generated source makes it due, the
        # moment the receiver hands it over for playing; both are the block's *start* in real time.
        expected_start = int(round((at - self.start) * SAMPLE_RATE))
        position = self._next[channel]
        if expected_start > position + self.GAP * SAMPLE_RATE:
            self.padded[channel] += expected_start - position
            position = expected_start
        elif position > expected_start + self.AHEAD * SAMPLE_RATE:
            self.dropped[channel] += samples.size
            return
        if position + samples.size <= self._written:
            return  # entirely in the part already written out
        self._blocks[channel].append((position, samples))
        self._next[channel] = position + samples.size
        now_position = int((time.monotonic() - self.start - self.HOLD) * SAMPLE_RATE)
        ready = min(self._next)
        for c in (self.LOCAL, self.REMOTE):
            if not self._blocks[c] and self._next[c] < now_position:
                # A channel with nothing pending and nothing recent: silence up to the hold point.
                ready = max(ready, min(now_position, max(self._next)))
        self._flush(ready)

    def _flush(self, until: int) -> None:
        count = until - self._written
        if count <= 0:
            return
        stereo = np.zeros((count, 2), dtype=np.int16)
        for c in (self.LOCAL, self.REMOTE):
            blocks = self._blocks[c]
            while blocks:
                start, data = blocks[0]
                end = start + data.size
                lo, hi = max(start, self._written), min(end, until)
                if hi > lo:
                    stereo[lo - self._written : hi - self._written, c] = data[lo - start : hi - start]
                if end <= until:
                    blocks.popleft()
                else:
                    break
            # A channel that had nothing for this stretch continues after it (the stretch is silence).
            self._next[c] = max(self._next[c], until)
        self._wav.writeframes(stereo.astype("<i2", copy=False).tobytes())
        self._written = until

    def _finish(self) -> None:
        try:
            self._flush(max(self._next))
        finally:
            try:
                self._wav.close()
            finally:
                self._file.close()
        logger.debug("call recording %s closed after %.2f s", self.path, self.seconds_written)

    @property
    def seconds_written(self) -> float:
        """Seconds of stereo audio in the file so far."""
        return self._written / SAMPLE_RATE

    def close(self) -> None:
        """Write what is queued, complete the WAV header and stop the writer thread; idempotent, any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._worker.close()

    def __repr__(self) -> str:
        return f"<CallRecorder {self.path!r} {self.seconds_written:.2f} s>"


@dataclass(frozen=True)
class Recording:
    """What :meth:`Session.stop_recording` returns.

    :ivar path: the stereo WAV file (left: local party, right: remote party).
    :ivar seconds: its length.
    """

    path: str
    seconds: float


class CallMedia:
    """The live media controls of one session (core loop thread, except where noted).

    :param emit: ``emit(event_name, *args)`` for session events (any thread-safe emitter).
    """

    def __init__(self, emit: Callable[..., None], listening: Optional[Callable[[str], bool]] = None,
                 mic_defaults: Optional[AudioProcessing] = None, vad: Optional[VadConfig] = None) -> None:
        self._emit = emit
        #: the SDK's ``mic_*`` options: the stages of a microphone that leaves them to the SDK
        self.mic_defaults = mic_defaults or AudioProcessing()
        self._listening = listening or (lambda name: True)
        #: the remote party's voice activity (runs while someone listens to ``voiceActivity``)
        self.vad = create_vad(vad)
        self.send_track = SendTrack(self._on_sent, self._on_inner_ended)
        self.router = ReceiveRouter(None, self._on_received)
        self.input_meter = LevelMeter()
        self.output_meter = LevelMeter()
        self.recorder: Optional[CallRecorder] = None
        self.last_recorder: Optional[CallRecorder] = None
        self.source: Optional[AudioSource] = None
        self.retired_sources: list[AudioSource] = []
        self.retired_sinks: list[AudioSink] = []
        self.source_ended = False
        self.silent_microphone = False
        self._silent_since: Optional[float] = None
        self._level_task: Optional[asyncio.Task[None]] = None
        self.levels = AudioLevels(SILENCE_DBFS, SILENCE_DBFS, False, time.monotonic())

    # -- taps (loop thread) ---------------------------------------------------------------

    def _on_sent(self, source_samples: np.ndarray, sent: np.ndarray, live_source: bool) -> None:
        if live_source:
            mean_square = self.input_meter.add(source_samples)
            if not self.send_track.muted and not isinstance(self.source, SilenceSource):
                level = _dbfs(mean_square)
                now = time.monotonic()
                if level >= SILENT_MICROPHONE_DBFS:
                    self._silent_since = None
                    if self.silent_microphone:
                        self.silent_microphone = False
                        self._emit("silentMicrophone", False)
                elif self._silent_since is None:
                    self._silent_since = now
                elif not self.silent_microphone and now - self._silent_since >= SILENT_MICROPHONE_SECONDS:
                    self.silent_microphone = True
                    logger.warning("the audio source %r has sent only digital silence for %.1f s while unmuted",
                                   self.source, now - self._silent_since)
                    self._emit("silentMicrophone", True)
            else:
                self._silent_since = None
        recorder = self.recorder
        if recorder is not None:
            recorder.feed(CallRecorder.LOCAL, sent)

    def _on_received(self, samples: np.ndarray) -> None:
        mean_square = self.output_meter.add(samples)
        vad = self.vad
        if self._listening("voiceActivity"):
            change = vad.feed_frame(samples, _dbfs(mean_square))
            if change is not None:
                self._emit("voiceActivity", change)
        elif vad.floor_dbfs is not None:
            vad.reset()  # a later listener starts from what it hears, not from a state nobody saw
        recorder = self.recorder
        if recorder is not None:
            recorder.feed(CallRecorder.REMOTE, samples)

    def _on_inner_ended(self, track: MediaStreamTrack) -> None:
        self.source_ended = True
        self._silent_since = None
        logger.debug("the source %r of a call ended; sending silence", self.source)

    # -- control (loop thread) ----------------------------------------------------------------

    def start(self, source: Optional[AudioSource]) -> SendTrack:
        """Begin with ``source`` (``None``: silence) and start the level timer; returns the track to send."""
        self.set_source(source)
        self._level_task = asyncio.get_running_loop().create_task(self._levels(), name="pcw-levels")
        return self.send_track

    def set_source(self, source: Optional[AudioSource]) -> Optional[AudioSource]:
        """Send ``source`` from the next frame on; return the previous source (its track is stopped)."""
        track: Optional[MediaStreamTrack]
        if isinstance(source, MicrophoneSource):
            track = source.create_track(processing_defaults=self.mic_defaults)
        else:
            track = source.create_track() if source is not None else None
        previous_source, self.source = self.source, source
        previous = self.send_track.set_inner(track)
        if previous is not None and previous is not track and getattr(previous, "readyState", "") == "live":
            if previous_source is None or not _is_user_track(previous_source, previous):
                previous.stop()
        self.source_ended = False
        self._silent_since = None
        if self.silent_microphone:
            self.silent_microphone = False
            self._emit("silentMicrophone", False)
        return previous_source

    def set_sink(self, sink: Optional[AudioSink]) -> Optional[AudioSink]:
        """Play the remote audio into ``sink`` from the next frame on; return the previous sink."""
        previous, self.router.target = self.router.target, sink
        return previous

    def set_muted(self, muted: bool) -> bool:
        """Send silence (or the source again); return whether it changed."""
        if self.send_track.muted == muted:
            return False
        self.send_track.muted = muted
        self._silent_since = None
        if muted and self.silent_microphone:
            self.silent_microphone = False
            self._emit("silentMicrophone", False)
        self._emit("change:muted", muted)
        return True

    @property
    def muted(self) -> bool:
        return self.send_track.muted

    @property
    def mic_processor(self) -> Optional[MicProcessor]:
        """The current microphone's processing stages (``None``: the source is not a processed microphone)."""
        inner = self.send_track.inner
        processor = getattr(inner, "processor", None)
        return processor if isinstance(processor, MicProcessor) else None

    async def _levels(self) -> None:
        while True:
            # On a 100 ms grid, which is also the senders' (_pacing): no wake-up of its own.
            await sleep_until(grid_after(time.monotonic() + LEVEL_INTERVAL / 2, LEVEL_INTERVAL))
            level_in = self.input_meter.take()
            level_out = self.output_meter.take()
            self.levels = AudioLevels(
                SILENCE_DBFS if level_in is None else level_in,
                SILENCE_DBFS if level_out is None else level_out,
                self.send_track.muted,
                time.monotonic(),
            )
            self._emit("audioLevel", self.levels)

    async def close(self) -> Optional[CallRecorder]:
        """Stop the timer and the sending track; return the recorder to close (off-loop), if any."""
        if self._level_task is not None:
            self._level_task.cancel()
            try:
                await self._level_task
            except asyncio.CancelledError:
                pass
            self._level_task = None
        inner = self.send_track.set_inner(None)
        if inner is not None and self.source is not None and not _is_user_track(self.source, inner):
            inner.stop()
        self.send_track.stop()
        recorder, self.recorder = self.recorder, None
        return recorder


def _is_user_track(source: AudioSource, track: MediaStreamTrack) -> bool:
    # A TrackSource hands over the user's own track: it is not ours to stop.
    return getattr(source, "track", None) is track
