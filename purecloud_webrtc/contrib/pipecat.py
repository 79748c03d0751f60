"""A Pipecat transport over a softphone call: a voice bot that logs in as a Genesys Cloud user.

``pip install 'purecloud_webrtc[pipecat]'`` (Pipecat needs Python 3.11 or later).  One
:class:`PureCloudTransport` per call; its :meth:`~PureCloudTransport.input` and
:meth:`~PureCloudTransport.output` go at the two ends of a pipeline, as with any Pipecat transport::

    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineTask
    from purecloud_webrtc.aio import AsyncPureCloudWebrtcSdk
    from purecloud_webrtc.contrib.pipecat import PureCloudTransport

    async with AsyncPureCloudWebrtcSdk(token, environment="mypurecloud.ie") as sdk:
        await sdk.initialize()
        async for ring in sdk.events("pendingSession"):
            transport = PureCloudTransport(sdk)
            await transport.answer(ring.value.id)
            task = PipelineTask(Pipeline([transport.input(), my_bot, transport.output()]))
            asyncio.create_task(PipelineRunner(handle_sigint=False).run(task))

What the pipeline gets and gives:

* **Input**: the caller's audio as ``InputAudioRawFrame`` at the pipeline's input rate (resampled from
  48 kHz after the SDK's jitter buffer and concealment), one per 20 ms; each DTMF digit the caller presses
  (RFC 4733 or in-band) as an ``InputDTMFFrame``; when the call ends (the caller hangs up, or it is ended
  from anywhere) the pipeline is asked to end (``EndWorkerFrame``; ``on_hangup="cancel"`` cancels it).
* **Output**: ``OutputAudioRawFrame`` audio is sent as the call's audio, paced in real time: at most
  ``max_output_ahead`` seconds are queued in the SDK, so a bot that produces audio faster than real time
  is held back, not buffered without end.  An ``InterruptionFrame`` (barge-in) drops what is queued at
  once.  ``OutputDTMFFrame`` / ``OutputDTMFUrgentFrame`` digits are sent with the call's DTMF method.
* **Control** from the pipeline's code: :meth:`~PureCloudTransport.answer`,
  :meth:`~PureCloudTransport.call`, :meth:`~PureCloudTransport.attach`, :meth:`~PureCloudTransport.hangup`,
  :meth:`~PureCloudTransport.mute`, :meth:`~PureCloudTransport.hold`, and the event handlers
  ``on_call_started(transport, session)``, ``on_call_ended(transport, session, reason)``,
  ``on_interrupted(transport, interrupted)`` (the call's media stopped or resumed flowing) and
  ``on_voice_activity(transport, speaking)`` (the caller started or stopped speaking: the SDK's energy
  detector, :class:`purecloud_webrtc.media.EnergyVad`; Pipecat's own VAD analyzers work on the input
  frames too).

Threads: the SDK's core hands received audio and events to the pipeline's event loop with
``call_soon_threadsafe``; nothing of the pipeline runs on the SDK's threads, and the transport starts no
thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, List, Optional

import numpy as np

from .._extras import MissingExtraError

try:
    from pipecat.audio.dtmf.types import KeypadEntry
    from pipecat.frames.frames import (
        CancelFrame,
        CancelWorkerFrame,
        EndFrame,
        EndWorkerFrame,
        InputAudioRawFrame,
        InputDTMFFrame,
        InterruptionFrame,
        OutputAudioRawFrame,
        OutputDTMFFrame,
        OutputDTMFUrgentFrame,
        StartFrame,
    )
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.transports.base_input import BaseInputTransport
    from pipecat.transports.base_output import BaseOutputTransport
    from pipecat.transports.base_transport import BaseTransport, TransportParams
    from pydantic import field_validator
except ImportError as exc:  # pragma: no cover - the hint is tested without the extra
    raise MissingExtraError("purecloud_webrtc.contrib.pipecat (a Pipecat transport)", "pipecat") from exc

from ..aio import AsyncPureCloudWebrtcSdk, AsyncSession
from ..media.analysis import SAMPLE_RATE
from ..media.sinks import AudioSink
from ..media.sources import StreamSource
from ..sdk import PureCloudWebrtcSdk

__all__ = ["PureCloudTransport", "PureCloudParams", "PureCloudInputTransport", "PureCloudOutputTransport"]

log = logging.getLogger(__name__)

_RATES = StreamSource.RATES


class PureCloudParams(TransportParams):
    """Pipecat's ``TransportParams`` with audio in and out on by default, and two of its own.

    ``max_output_ahead``: the most bot audio (seconds) queued in the SDK, the pacing of the output (0.06 by
    default, 0.02 to 1.0).  ``on_hangup``: what the pipeline is asked when the call ends, ``"end"`` (an
    ``EndWorkerFrame``: the pipeline finishes what it is doing; the default) or ``"cancel"`` (a
    ``CancelWorkerFrame``).
    """

    audio_in_enabled: bool = True
    audio_out_enabled: bool = True
    max_output_ahead: float = 0.06
    on_hangup: str = "end"

    @field_validator("max_output_ahead")
    @classmethod
    def _check_ahead(cls, value: float) -> float:
        if not 0.02 <= value <= 1.0:
            raise ValueError(f"max_output_ahead must be between 0.02 and 1.0 s, not {value!r}")
        return value

    @field_validator("on_hangup")
    @classmethod
    def _check_hangup(cls, value: str) -> str:
        if value not in ("end", "cancel"):
            raise ValueError(f"on_hangup must be 'end' or 'cancel', not {value!r}")
        return value


class _PipelineSink(AudioSink):
    """The call's sink: 48 kHz samples from the SDK's core, resampled and handed to the pipeline's loop."""

    accepts_pcm = True

    def __init__(self, transport: "PureCloudTransport") -> None:
        self._transport = transport
        self._rate = 0
        self._resampler: Any = None
        self._pts = 0
        self._closed = False
        self._converter: Any = None

    def write(self, frame: Any) -> None:  # frames of another rate or layout (not from the SDK's own pump)
        from ..media.analysis import FrameConverter

        if self._converter is None:
            self._converter = FrameConverter(channels=1, rate=SAMPLE_RATE)
        self.write_pcm(self._converter.convert(frame))

    def write_pcm(self, samples: np.ndarray) -> None:  # on the SDK's core loop thread
        if self._closed:
            return
        rate = self._transport.input_rate
        if not rate:
            return  # the pipeline has not started: nothing to hand it yet
        if rate != SAMPLE_RATE:
            import av

            if self._resampler is None or self._rate != rate:
                self._resampler, self._rate = av.AudioResampler(format="s16", layout="mono", rate=rate), rate
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, self._pts
            self._pts += samples.size
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)] or
                                     [np.zeros(0, dtype=np.int16)])
        if samples.size:
            self._transport._from_core(self._transport._audio_in, samples.astype("<i2", copy=False).tobytes())

    def close(self) -> None:
        self._closed = True


class PureCloudInputTransport(BaseInputTransport):
    """The caller's side of the call, as Pipecat input frames (made by :meth:`PureCloudTransport.input`)."""

    def __init__(self, transport: "PureCloudTransport", params: PureCloudParams, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._transport = transport

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._transport._input_started(self)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        self._transport._input_stopped()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        self._transport._input_stopped()
        await super().cancel(frame)


class PureCloudOutputTransport(BaseOutputTransport):
    """The bot's side of the call: Pipecat output frames sent as the call's audio and DTMF."""

    def __init__(self, transport: "PureCloudTransport", params: PureCloudParams, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._transport = transport
        self._max_ahead = float(params.max_output_ahead)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            # Barge-in: what the SDK still holds goes first, before the base class drains its own queue.
            self._transport.source.clear()
        await super().process_frame(frame, direction)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        transport = self._transport
        if not transport.live:
            return False
        source = transport.source
        if frame.sample_rate != source.sample_rate:
            transport._output_rate(frame.sample_rate)
            source = transport.source
        samples = np.frombuffer(frame.audio, dtype="<i2")
        if frame.num_channels > 1:
            samples = samples.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        try:
            source.write(samples)
        except RuntimeError:  # closed: the call ended and the SDK released it (the "terminated" event follows)
            return False
        # Pacing: return once the SDK holds at most max_output_ahead seconds (it sends 20 ms per 20 ms).
        while transport.live and not source.closed and source.buffered_seconds > self._max_ahead:
            await asyncio.sleep(min(0.02, max(0.005, source.buffered_seconds - self._max_ahead)))
        return transport.live and not source.closed

    def _supports_native_dtmf(self) -> bool:
        return True

    async def _write_dtmf_native(self, frame: Any) -> None:
        digits = "".join(str(getattr(b, "value", b)) for b in (frame.buttons or []))
        if digits:
            await self._transport.send_dtmf(digits)


class PureCloudTransport(BaseTransport):
    """One softphone call as a Pipecat transport.

    :param sdk: an :class:`~purecloud_webrtc.aio.AsyncPureCloudWebrtcSdk`, or a blocking
        :class:`~purecloud_webrtc.PureCloudWebrtcSdk` (wrapped here; closing the transport closes neither).
    :param params: :class:`PureCloudParams` (audio rates default to the pipeline's).
    """

    def __init__(self, sdk: Any, params: Optional[PureCloudParams] = None, *, name: Optional[str] = None) -> None:
        super().__init__(name=name)
        if isinstance(sdk, PureCloudWebrtcSdk):
            sdk = AsyncPureCloudWebrtcSdk.wrap(sdk)
        if not isinstance(sdk, AsyncPureCloudWebrtcSdk):
            raise TypeError(f"PureCloudTransport needs a PureCloudWebrtcSdk or AsyncPureCloudWebrtcSdk, not "
                            f"{type(sdk).__name__}")
        self.sdk: AsyncPureCloudWebrtcSdk = sdk
        self.params = params or PureCloudParams()
        self._input: Optional[PureCloudInputTransport] = None
        self._output: Optional[PureCloudOutputTransport] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._input_proc: Optional[PureCloudInputTransport] = None
        #: what the call sends (the bot's audio), at the pipeline's output rate
        self.source = StreamSource(self.params.audio_out_sample_rate or 16000, max_seconds=2.0)
        self.sink = _PipelineSink(self)
        #: the call, once answered, placed or attached
        self.session: Optional[AsyncSession] = None
        self.ended = False
        self._handlers: List[Any] = []
        for event in ("on_call_started", "on_call_ended", "on_interrupted", "on_voice_activity"):
            self._register_event_handler(event)

    # -- the two processors ------------------------------------------------------------------

    def input(self) -> PureCloudInputTransport:
        if self._input is None:
            self._input = PureCloudInputTransport(self, self.params, name=self._input_name)
        return self._input

    def output(self) -> PureCloudOutputTransport:
        if self._output is None:
            self._output = PureCloudOutputTransport(self, self.params, name=self._output_name)
        return self._output

    # -- state -------------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether a call is attached and has not ended."""
        return self.session is not None and not self.ended

    @property
    def input_rate(self) -> int:
        """The rate the pipeline's input gets (0 until the pipeline started)."""
        proc = self._input_proc
        return proc.sample_rate if proc is not None else 0

    # -- session control ---------------------------------------------------------------------

    async def answer(self, pending_id: str, *, timeout: float = 15.0) -> AsyncSession:
        """Answer the proposed call ``pending_id`` with this transport's audio; returns its session."""
        self._bind()
        await self.sdk.accept_pending_session(pending_id, source=self.source, sink=self.sink, timeout=timeout)
        return await self._attach_when(lambda s: s.id == pending_id, timeout, f"the session {pending_id}")

    async def call(self, phone_number: Optional[str] = None, *, timeout: float = 20.0, **target: Any) -> AsyncSession:
        """Place a call (``start_softphone_session``) with this transport's audio; returns its session
        once it started."""
        self._bind()
        conversation_id = await self.sdk.start_softphone_session(phone_number, source=self.source, sink=self.sink,
                                                                 timeout=timeout, **target)
        return await self._attach_when(lambda s: s.conversation_id == conversation_id, timeout,
                                       f"the call of conversation {conversation_id}")

    async def attach(self, session: Any) -> AsyncSession:
        """Use a call that is already up (a :class:`Session`, an :class:`AsyncSession` or an id): its source
        and sink become this transport's."""
        self._bind()
        if isinstance(session, str):
            session = self.sdk.sync.get_session(session)
        if not isinstance(session, AsyncSession):
            session = self.sdk._wrap_session(session)
        await session.set_source(self.source, close_previous=False)
        await session.set_sink(self.sink, close_previous=False)
        self._adopt(session)
        return session

    async def hangup(self, timeout: float = 15.0) -> None:
        """End the call (nothing happens if it has already ended)."""
        session = self.session
        if session is not None and not self.ended:
            await session.end(timeout=timeout)

    async def mute(self, muted: bool = True) -> None:
        """Mute the bot (silence is sent) or unmute it."""
        await self._need().set_audio_mute(muted)

    async def hold(self, held: bool = True) -> None:
        """Put the call on hold (or take it off) through the service."""
        session = self._need()
        if not session.conversation_id:
            raise RuntimeError("hold needs the call's conversation id, which this session does not have")
        await self.sdk.set_conversation_held(session.conversation_id, held)

    async def send_dtmf(self, digits: str) -> str:
        """Send DTMF ``digits`` on the call; returns the method used."""
        return await self._need().send_dtmf(digits)

    # -- internals ---------------------------------------------------------------------------

    def _need(self) -> AsyncSession:
        if self.session is None or self.ended:
            raise RuntimeError("no call: answer(), call() or attach() one first (or it has ended)")
        return self.session

    def _bind(self) -> None:
        if self.session is not None:
            raise RuntimeError("this transport already has a call: use one transport per call")
        self._loop = asyncio.get_running_loop()

    async def _attach_when(self, match: Any, timeout: float, what: str) -> AsyncSession:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for session in self.sdk.sync.sessions:
                if match(session):
                    wrapped = self.sdk._wrap_session(session)
                    self._adopt(wrapped)
                    return wrapped
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{what} did not start within {timeout:g} s")
            await asyncio.sleep(0.02)

    def _adopt(self, session: AsyncSession) -> None:
        self.session = session
        sync = session.sync
        # The SDK's events arrive on its events thread; each is handed to the pipeline's loop.
        sync.on("dtmf", lambda s, digit: self._from_core(self._dtmf_in, digit))
        sync.on("terminated", lambda s, reason: self._from_core(self._ended, reason))
        sync.on("change:interrupted", lambda s, value: self._from_core(self._interrupted, value))
        sync.on("voiceActivity", lambda s, speaking: self._from_core(self._voice, speaking))
        if sync.ended:
            self._from_core(self._ended, "already ended")
        self._from_core(self._started)

    def _from_core(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _input_started(self, proc: PureCloudInputTransport) -> None:
        self._input_proc = proc
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    def _input_stopped(self) -> None:
        self._input_proc = None

    def _output_rate(self, rate: int) -> None:
        if rate not in _RATES:
            raise ValueError(f"output audio at {rate} Hz: the call takes {_RATES}")
        # A new rate: a new resampler, the queued audio kept (rare: Pipecat resamples to the output rate).
        old = self.source
        new = StreamSource(rate, max_seconds=old.max_seconds)
        session = self.session
        self.source = new
        if session is not None and not self.ended:
            asyncio.ensure_future(session.set_source(new, close_previous=False))

    # -- on the pipeline's loop ----------------------------------------------------------------

    def _audio_in(self, data: bytes) -> None:
        proc = self._input_proc
        if proc is None or self.ended:
            return
        frame = InputAudioRawFrame(audio=data, sample_rate=proc.sample_rate, num_channels=1)
        proc.create_task(proc.push_audio_frame(frame))

    def _dtmf_in(self, digit: str) -> None:
        proc = self._input_proc
        if proc is None:
            return
        try:
            button = KeypadEntry(digit)
        except ValueError:
            log.debug("DTMF %r has no Pipecat keypad entry; not passed on", digit)
            return
        proc.create_task(proc.push_frame(InputDTMFFrame(button=button)))

    def _started(self) -> None:
        asyncio.ensure_future(self._call_event_handler("on_call_started", self.session))

    def _voice(self, speaking: bool) -> None:
        asyncio.ensure_future(self._call_event_handler("on_voice_activity", speaking))

    def _interrupted(self, value: bool) -> None:
        asyncio.ensure_future(self._call_event_handler("on_interrupted", value))

    def _ended(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        self.source.clear()
        asyncio.ensure_future(self._call_event_handler("on_call_ended", self.session, reason))
        proc = self._input_proc
        if proc is not None:
            frame = EndWorkerFrame() if self.params.on_hangup == "end" else CancelWorkerFrame()
            proc.create_task(proc.push_frame(frame, FrameDirection.UPSTREAM))
