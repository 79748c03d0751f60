"""The asyncio twin of the SDK: :class:`AsyncPureCloudWebrtcSdk`, for FastAPI, aiohttp and other asyncio code.

It is a thin layer over the same :class:`~purecloud_webrtc.PureCloudWebrtcSdk` (the same core loop thread,
the same protocol code); nothing here speaks the protocol.  Every method awaits the very coroutine of the
SDK's core that the blocking method waits for (``asyncio.wrap_future(run_coroutine_threadsafe(...))``: one
hop, no thread pool), so awaiting never blocks the caller's event loop; every event is handed from the
SDK's events thread to the caller's loop with ``loop.call_soon_threadsafe``::

    from purecloud_webrtc.aio import AsyncPureCloudWebrtcSdk

    async def main() -> None:
        async with AsyncPureCloudWebrtcSdk(token, environment="mypurecloud.ie") as sdk:
            await sdk.initialize()
            async with sdk.events("pendingSession") as events:
                async for event in events:
                    await sdk.accept_pending_session(event.value.id, source="prompt.wav")

Threads: callbacks registered with :meth:`AsyncPureCloudWebrtcSdk.on` (plain functions or coroutine
functions) run on the caller's event loop, in the order the SDK emitted the events; the work itself runs
on the SDK's core (and its REST and I/O threads), never on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, overload

from ._commands import DEFAULT_TIMEOUT, deadline, grace
from ._core import AcceptOptions
from .errors import ClosedError, ConfigurationError, OperationTimeoutError, PureCloudWebrtcError, UsageError
from .events import SDK_EVENTS, SESSION_EVENTS, Event, F, PendingSession, canonical_event_name, connect_or_decorate
from .sdk import PureCloudWebrtcSdk, softphone_call_body
from .session import Session

if TYPE_CHECKING:  # pragma: no cover
    from .media.live import Recording
    from .quality import CallStats

__all__ = ["AsyncPureCloudWebrtcSdk", "AsyncSession", "AsyncEventStream", "AsyncExpectEvent"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _AsyncEmitter:
    """Event registration of the async faces: callbacks, async iterators and awaitable waits.

    Each registration connects one plain receiver to the wrapped blocking emitter (so it runs on the SDK's
    events thread) that converts the payload and hands it to the bound loop with ``call_soon_threadsafe``.
    """

    _event_table: Dict[str, Tuple[str, ...]] = {}

    def _init_async_emitter(self, sync: Any, owner: "AsyncPureCloudWebrtcSdk") -> None:
        self._sync = sync
        self._owner = owner
        # (canonical name, user fn) -> the bridge callbacks registered on the blocking emitter.
        self._bridges: Dict[Tuple[str, Any], List[Callable[..., None]]] = {}

    def _canonical(self, name: str) -> str:
        return canonical_event_name(name, list(self._event_table))

    def _bridge(self, name: str, deliver: Callable[[Event], None]) -> Callable[..., None]:
        """A receiver for the blocking emitter that delivers an :class:`Event` on the owner's loop."""
        owner = self._owner

        def bridge(*args: Any) -> None:  # runs on the SDK's events thread
            event = Event(name, self, tuple(owner._wrap(a) for a in args), time.monotonic())
            owner._call_on_loop(deliver, event)

        return bridge

    @overload
    def on(self, name: str) -> Callable[[F], F]: ...

    @overload
    def on(self, name: str, fn: F) -> F: ...

    def on(self, name: str, fn: Optional[F] = None) -> Any:
        """Call ``fn(*payload)`` on the event loop each time event ``name`` happens.

        ``fn`` may be a plain function or a coroutine function (then each call becomes a task on the loop).
        Usable as a decorator.  Sessions in payloads are :class:`AsyncSession` objects.

        :raises ValueError: for an unknown event name.
        """
        canonical = self._canonical(name)
        return connect_or_decorate(lambda func: self._connect(canonical, func, once=False), fn)

    @overload
    def once(self, name: str) -> Callable[[F], F]: ...

    @overload
    def once(self, name: str, fn: F) -> F: ...

    def once(self, name: str, fn: Optional[F] = None) -> Any:
        """Like :meth:`on`, but the callback is removed after its first call."""
        canonical = self._canonical(name)
        return connect_or_decorate(lambda func: self._connect(canonical, func, once=True), fn)

    def off(self, name: str, fn: Optional[Callable[..., Any]] = None) -> None:
        """Remove ``fn`` from event ``name`` (every callback of that event when ``fn`` is None)."""
        canonical = self._canonical(name)
        keys = [k for k in self._bridges if k[0] == canonical] if fn is None else [(canonical, fn)]
        for key in keys:
            for bridge in self._bridges.pop(key, []):
                self._sync.off(canonical, bridge)

    def _connect(self, name: str, fn: Callable[..., Any], once: bool) -> None:
        if not callable(fn):
            raise TypeError(f"callback for {name!r} must be callable, not {type(fn).__name__}")
        self._owner._bind_loop(required=False)
        fired = [False]

        def deliver(event: Event) -> None:  # runs on the loop
            if once:
                if fired[0]:
                    return
                fired[0] = True
                self.off(name, fn)
            self._owner._run_callback(name, fn, event.args)

        bridge = self._bridge(name, deliver)
        self._bridges.setdefault((name, fn), []).append(bridge)
        self._sync.on(name, bridge)

    def events(self, *names: str, maxsize: int = 0) -> "AsyncEventStream":
        """An async iterator of events (all of this object's events, or ``names``), as :class:`Event` objects.

        Use it as an async context manager so that it stops collecting when you are done::

            async with sdk.events("pendingSession", "sessionEnded") as events:
                async for event in events:
                    handle(event.name, event.args)

        Collection starts when :meth:`events` is called, so nothing emitted after that is missed.
        """
        wanted = [self._canonical(n) for n in names] if names else list(self._event_table)
        return AsyncEventStream(self, wanted, maxsize)

    def expect_event(self, name: str, timeout: Optional[float] = 10.0,
                     predicate: Optional[Callable[..., bool]] = None) -> "AsyncExpectEvent":
        """Race-free wait for an event caused by the code inside an ``async with`` block::

            async with sdk.expect_event("sessionStarted", timeout=10) as started:
                await sdk.accept_pending_session(pending.id)
            session = started.value   # an AsyncSession

        :param predicate: called with the payload arguments; only an event for which it is true counts.
        :raises OperationTimeoutError: when the event does not come in time (on leaving the block).
        """
        return AsyncExpectEvent(self, self._canonical(name), timeout, predicate)

    async def wait_for_event(self, name: str, timeout: Optional[float] = 10.0,
                             predicate: Optional[Callable[..., bool]] = None) -> Event:
        """Wait for the *next* event ``name`` (emitted after this call) and return it.

        :raises OperationTimeoutError: when it does not come within ``timeout`` seconds.
        """
        async with self.expect_event(name, timeout, predicate) as ev:
            pass
        return ev.event


class AsyncEventStream:
    """Events collected into an :class:`asyncio.Queue` on the loop; iterate with ``async for``.

    Returned by :meth:`AsyncPureCloudWebrtcSdk.events` and :meth:`AsyncSession.events`; it collects from its
    creation until :meth:`close` (or the end of its ``async with`` block).  Iteration ends when the SDK
    closes.
    """

    def __init__(self, emitter: _AsyncEmitter, names: Sequence[str], maxsize: int = 0) -> None:
        emitter._owner._bind_loop(required=True)
        self._emitter = emitter
        self._queue: "asyncio.Queue[Optional[Event]]" = asyncio.Queue(maxsize)
        self._registered: List[Tuple[str, Callable[..., None]]] = []
        self._closed = False
        for name in names:
            bridge = emitter._bridge(name, self._put)
            emitter._sync.on(name, bridge)
            self._registered.append((name, bridge))
        emitter._owner._streams.add(self)

    def _put(self, event: Optional[Event]) -> None:  # on the loop
        if self._closed and event is not None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # Say so loudly rather than lose a call event silently: an event is never dropped quietly.
            log.error("async event stream full (%d): event %s lost; consume faster or raise maxsize",
                      self._queue.maxsize, event.name if event else None)

    async def get(self, timeout: Optional[float] = None) -> Event:
        """The next event.

        :raises OperationTimeoutError: when nothing came within ``timeout`` seconds.
        :raises ClosedError: when the stream or the SDK was closed.
        """
        if self._closed and self._queue.empty():
            raise ClosedError("the event stream is closed")
        try:
            event = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise OperationTimeoutError("waiting for the next event", timeout) from None
        if event is None:
            self._closed = True
            raise ClosedError("the event stream is closed")
        return event

    def get_nowait(self) -> Optional[Event]:
        """The next queued event, or ``None``."""
        try:
            event = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if event is None:
            self._closed = True
        return event

    def __aiter__(self) -> "AsyncEventStream":
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except ClosedError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop collecting; a pending ``async for`` ends after the events already queued."""
        if self._closed:
            return
        self._closed = True
        for name, bridge in self._registered:
            self._emitter._sync.off(name, bridge)
        self._registered.clear()
        self._emitter._owner._streams.discard(self)
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass

    async def __aenter__(self) -> "AsyncEventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class AsyncExpectEvent:
    """The async context manager returned by ``expect_event`` of the async faces."""

    def __init__(self, emitter: _AsyncEmitter, name: str, timeout: Optional[float],
                 predicate: Optional[Callable[..., bool]]) -> None:
        self._emitter = emitter
        self._name = name
        self._timeout = timeout
        self._predicate = predicate
        self._future: Optional["asyncio.Future[Event]"] = None
        self._bridge: Optional[Callable[..., None]] = None

    def _deliver(self, event: Event) -> None:  # on the loop
        future = self._future
        if future is None or future.done():
            return
        if self._predicate is not None and not self._predicate(*event.args):
            return
        future.set_result(event)

    async def __aenter__(self) -> "AsyncExpectEvent":
        loop = self._emitter._owner._bind_loop(required=True)
        self._future = loop.create_future()
        self._bridge = self._emitter._bridge(self._name, self._deliver)
        self._emitter._sync.on(self._name, self._bridge)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._future is not None and self._bridge is not None
        try:
            if exc_type is None:
                try:
                    await asyncio.wait_for(asyncio.shield(self._future), self._timeout)
                except asyncio.TimeoutError:
                    raise OperationTimeoutError(f"waiting for event {self._name!r}", self._timeout) from None
        finally:
            self._emitter._sync.off(self._name, self._bridge)

    @property
    def event(self) -> Event:
        """The event that arrived.

        :raises UsageError: before it arrived.
        """
        if self._future is None or not self._future.done():
            raise UsageError(f"event {self._name!r} has not arrived yet (read .event after the async with block)")
        return self._future.result()

    @property
    def value(self) -> Any:
        """The event's first payload argument (an :class:`AsyncSession` for ``sessionStarted``...)."""
        return self.event.value

    @property
    def args(self) -> Tuple[Any, ...]:
        """The event's payload arguments."""
        return self.event.args


class AsyncSession(_AsyncEmitter):
    """The async face of one call: a :class:`~purecloud_webrtc.Session` with awaitable methods.

    Read-only attributes (``id``, ``conversation_id``, ``state``, ``connection_state``, ``sink``...) are
    those of the wrapped session (:attr:`sync`); session events are delivered on the event loop.
    """

    _event_table = SESSION_EVENTS

    def __init__(self, owner: "AsyncPureCloudWebrtcSdk", session: Session) -> None:
        self._init_async_emitter(session, owner)
        self.sync = session

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not defined here: the read-only state of the blocking session.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.sync, name)

    async def accept(self, source: Any = None, sink: Any = None, *, auto_start_media: bool = True,
                     timeout: Optional[float] = None) -> None:
        """Answer the session (only needed with ``auto_connect_sessions=False``); see :meth:`Session.accept`."""
        await self._owner._acall(lambda c: c.accept_session(self.sync._core_session, source, sink, auto_start_media),
                                 timeout or 20.0, "session.accept")

    async def end(self, reason: str = "success", timeout: Optional[float] = None) -> None:
        """Hang up this session and return once it has ended."""
        await self._owner.end_session(self.sync.id, reason=reason, timeout=timeout)

    async def get_stats(self, timeout: Optional[float] = 5.0) -> "CallStats":
        """A :class:`~purecloud_webrtc.quality.CallStats` snapshot taken now."""
        if self.sync._core_session.ended and self.sync._core_session.quality.last is not None:
            return self.sync._core_session.quality.last
        return await self._owner._acall(lambda c: c.get_stats(self.sync._core_session), timeout, "session.get_stats")

    async def set_audio_mute(self, muted: bool, *, rest: bool = True, timeout: Optional[float] = None) -> None:
        """Mute or unmute this call; see :meth:`Session.set_audio_mute`."""
        await self._owner._acall(lambda c: c.set_audio_mute(self.sync._core_session, muted, rest, deadline(timeout)),
                                 grace(timeout or DEFAULT_TIMEOUT), "set_audio_mute")

    async def set_source(self, source: Any, *, close_previous: bool = True, timeout: Optional[float] = None) -> None:
        """Send ``source`` from now on; see :meth:`Session.set_source`."""
        await self._owner._acall(lambda c: c.set_source(self.sync._core_session, source, close_previous, deadline(timeout)),
                                 grace(timeout or DEFAULT_TIMEOUT), "set_source")

    async def set_sink(self, sink: Any, *, close_previous: bool = True, timeout: Optional[float] = None) -> None:
        """Play the remote audio into ``sink`` from now on; see :meth:`Session.set_sink`."""
        await self._owner._acall(lambda c: c.set_sink(self.sync._core_session, sink, close_previous, deadline(timeout)),
                                 grace(timeout or DEFAULT_TIMEOUT), "set_sink")

    async def send_dtmf(self, digits: str, *, method: str = "auto", duration: float = 0.1, gap: float = 0.07,
                        timeout: Optional[float] = 15.0) -> str:
        """Send DTMF ``digits``; returns the method used; see :meth:`Session.send_dtmf`."""
        return await self._owner._acall(  # type: ignore[no-any-return]
            lambda c: c.send_dtmf(self.sync._core_session, digits, method, duration, gap, deadline(timeout)),
            grace(timeout or DEFAULT_TIMEOUT), "send_dtmf")

    async def start_recording(self, path: Any, *, timeout: Optional[float] = None, mode: int = 0o600) -> None:
        """Record this call to a stereo WAV (owner-only file by default); see :meth:`Session.start_recording`."""
        await self._owner._acall(lambda c: c.start_recording(self.sync._core_session, path, mode, deadline(timeout)),
                                 grace(timeout or DEFAULT_TIMEOUT), "start_recording")

    async def stop_recording(self, timeout: Optional[float] = None) -> "Recording":
        """Stop recording; returns a ``Recording(path, seconds)``."""
        if not self._owner.sync._core.thread.is_alive():
            return self._owner.sync._core.commands.finished_recording(self.sync._core_session)
        return await self._owner._acall(lambda c: c.stop_recording(self.sync._core_session), grace(timeout or DEFAULT_TIMEOUT),
                                        "stop_recording")

    def __repr__(self) -> str:
        return f"<AsyncSession {self.sync!r}>"


class AsyncPureCloudWebrtcSdk(_AsyncEmitter):
    """The asyncio face of :class:`~purecloud_webrtc.PureCloudWebrtcSdk`: same options, same core.

    Takes exactly the arguments of :class:`~purecloud_webrtc.PureCloudWebrtcSdk` (building it starts the
    SDK's threads, which is quick and does no I/O), or wraps an existing one with :meth:`wrap`.

    :param loop: the event loop that receives events (default: the running loop; without one, the loop of
        the first awaited method).
    :param max_workers: accepted for compatibility and unused: commands are awaited on the SDK's core.

    Threads: none of its own.  Commands run on the SDK's core; callbacks, async iterators and
    ``expect_event`` blocks get their events on the loop.  Use it from one event loop.
    """

    _event_table = SDK_EVENTS

    def __init__(self, *args: Any, loop: Optional[asyncio.AbstractEventLoop] = None, max_workers: int = 16,
                 **options: Any) -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ConfigurationError("max_workers must be a positive int", "max_workers")
        sync = options.pop("_sync", None) or PureCloudWebrtcSdk(*args, **options)
        self._closed = False
        self._init_async_emitter(sync, self)
        self.sync: PureCloudWebrtcSdk = sync
        self._loop: Optional[asyncio.AbstractEventLoop] = loop
        self._sessions: "weakref.WeakKeyDictionary[Session, AsyncSession]" = weakref.WeakKeyDictionary()
        self._sessions_lock = threading.Lock()
        self._streams: "weakref.WeakSet[AsyncEventStream]" = weakref.WeakSet()
        self._tasks: "set[asyncio.Task[Any]]" = set()
        if loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None

    @classmethod
    def wrap(cls, sdk: PureCloudWebrtcSdk, *, loop: Optional[asyncio.AbstractEventLoop] = None,
             max_workers: int = 16) -> "AsyncPureCloudWebrtcSdk":
        """An async face for an existing blocking SDK (both faces then share it).

        Close it with :meth:`close` (which closes the blocking SDK too) so that its thread pool stops.
        """
        return cls(loop=loop, max_workers=max_workers, _sync=sdk)

    # -- loop bridging ---------------------------------------------------------------------

    def _bind_loop(self, required: bool) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                if required:
                    raise UsageError("this needs a running asyncio event loop (call it from async code)") from None
        return self._loop  # type: ignore[return-value]

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Schedule ``fn(*args)`` on the bound loop; called from the SDK's events thread."""
        loop = self._loop
        if loop is None:
            log.warning("event dropped: no event loop bound yet (await a method of the SDK first)")
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop was closed under us: nobody is left to tell
            log.debug("event dropped: the event loop is closed")

    def _wrap(self, value: Any) -> Any:
        """Payload conversion: sessions become their :class:`AsyncSession` (one per session)."""
        return self._wrap_session(value) if isinstance(value, Session) else value

    def _wrap_session(self, session: Session) -> AsyncSession:
        # Called from the events thread (payloads) and the loop (sdk.sessions): the lock keeps it one
        # AsyncSession per session, so ``is`` comparisons and registrations hold.
        with self._sessions_lock:
            wrapped = self._sessions.get(session)
            if wrapped is None:
                wrapped = self._sessions[session] = AsyncSession(self, session)
            return wrapped

    def _run_callback(self, name: str, fn: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        """Run a user callback on the loop; exceptions are logged and emitted as ``error`` (never raised)."""
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._task_done, name, fn))
        except Exception as exc:
            self._callback_failed(name, fn, exc)

    def _task_done(self, name: str, fn: Callable[..., Any], task: "asyncio.Task[Any]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._callback_failed(name, fn, task.exception())  # type: ignore[arg-type]

    def _callback_failed(self, name: str, fn: Callable[..., Any], exc: BaseException) -> None:
        log.error("async callback for %r raised", name, exc_info=exc)
        if name != "error":
            details = {"event": name, "callback": repr(fn)}
            for (event, _), bridges in list(self._bridges.items()):
                if event == "error":
                    for bridge in bridges:
                        bridge(exc, details)

    async def _acall(self, make: Callable[[Any], Any], timeout: Optional[float], what: str) -> Any:
        """Await a core command (``make(commands)``) in one hop: no thread pool, no blocking facade."""
        self._bind_loop(required=True)
        if self._closed:
            raise ClosedError(f"{what}: the SDK is closed")
        core = self.sync._core
        return await core.acall(lambda: make(core.commands), timeout, what)

    # -- state -----------------------------------------------------------------------------

    @property
    def options(self) -> Any:
        """The validated :class:`~purecloud_webrtc.SdkOptions`."""
        return self.sync.options

    @property
    def connected(self) -> bool:
        """``True`` while the streaming connection is up."""
        return self.sync.connected

    @property
    def state(self) -> str:
        """``idle``, ``connecting``, ``connected``, ``disconnected`` or ``closed``."""
        return self.sync.state

    @property
    def jid(self) -> Optional[str]:
        """The bound full JID, once connected."""
        return self.sync.jid

    @property
    def user(self) -> Optional[Dict[str, Any]]:
        """The ``users/me`` record, after :meth:`initialize`."""
        return self.sync.user

    @property
    def ice_servers(self) -> List[Dict[str, Any]]:
        """The ICE servers in use."""
        return self.sync.ice_servers

    @property
    def sessions(self) -> List[AsyncSession]:
        """Live sessions (a snapshot), as :class:`AsyncSession` objects."""
        return [self._wrap_session(s) for s in self.sync.sessions]

    @property
    def pending_sessions(self) -> List[PendingSession]:
        """Proposals not yet answered (a snapshot)."""
        return self.sync.pending_sessions

    def get_session(self, id: Optional[str] = None, *, conversation_id: Optional[str] = None) -> AsyncSession:
        """The live session with this id or conversation id.

        :raises SessionNotFoundError: when there is none.
        """
        return self._wrap_session(self.sync.get_session(id, conversation_id=conversation_id))

    # -- methods ---------------------------------------------------------------------------

    async def initialize(self, timeout: Optional[float] = 30.0) -> None:
        """Connect to Genesys Cloud; see :meth:`PureCloudWebrtcSdk.initialize`."""
        await self._acall(lambda c: c.initialize(deadline(timeout), timeout), grace(timeout), "initialize")

    async def disconnect(self, timeout: Optional[float] = 10.0) -> None:
        """Close the streaming connection; see :meth:`PureCloudWebrtcSdk.disconnect`."""
        if self.sync._closed:
            return
        await self._acall(lambda c: c.disconnect(), timeout, "disconnect")

    async def close(self, timeout: float = 10.0) -> None:
        """End every session, disconnect and stop the SDK's threads; open event streams end.  Idempotent."""
        if self._closed:
            return
        core = self.sync._core
        if not self.sync._closed and core.thread.is_alive():
            # The slow part (ending calls, closing the stream) is awaited on the core; what is left of the
            # blocking close() is stopping and joining threads that have nothing left to do.
            try:
                await core.acall(core.shutdown, timeout, "close")
            except PureCloudWebrtcError as exc:
                log.warning("close: shutdown was not clean: %s", exc)
        self.sync.close(timeout)
        for stream in list(self._streams):
            stream.close()
        self._bridges.clear()
        self._closed = True

    aclose = close

    async def accept_pending_session(self, id: str, *, source: Any = None, sink: Any = None,
                                     auto_start_media: bool = True, auto_connect_session: Optional[bool] = None,
                                     timeout: Optional[float] = 10.0) -> None:
        """Accept a proposed call; see :meth:`PureCloudWebrtcSdk.accept_pending_session`."""
        options = AcceptOptions(source, sink, auto_start_media, auto_connect_session)
        await self._acall(lambda c: c.accept_pending(id, options), timeout, "accept_pending_session")

    acceptPendingSession = accept_pending_session  # noqa: N815 - the seed's spelling

    async def end_session(self, id: Optional[str] = None, *, conversation_id: Optional[str] = None,
                          reason: str = "success", timeout: Optional[float] = 15.0) -> None:
        """Hang up a session and return once it has ended; see :meth:`PureCloudWebrtcSdk.end_session`."""
        await self._acall(lambda c: c.end_session(id, conversation_id, reason, deadline(timeout), True), grace(timeout),
                          "end_session")

    endSession = end_session  # noqa: N815

    async def start_softphone_session(self, phone_number: Optional[str] = None, *, user_id: Optional[str] = None,
                                      queue_id: Optional[str] = None, source: Any = None, sink: Any = None,
                                      timeout: Optional[float] = 15.0, **fields: Any) -> str:
        """Place a call by REST and return its conversation id (answered with ``source``/``sink``); see
        :meth:`PureCloudWebrtcSdk.start_softphone_session`."""
        body = softphone_call_body(phone_number, user_id, queue_id, fields)
        return await self._acall(lambda c: c.start_softphone_session(body, deadline(timeout), source, sink),
                                 grace(timeout), "start_softphone_session")

    async def set_audio_mute(self, session: Any, muted: bool, *, rest: bool = True,
                             timeout: Optional[float] = None) -> None:
        """Mute or unmute a call (a session, an :class:`AsyncSession` or an id)."""
        target = session if isinstance(session, AsyncSession) else self._wrap_session(
            session if isinstance(session, Session) else self.sync.get_session(session))
        await target.set_audio_mute(muted, rest=rest, timeout=timeout)

    setAudioMute = set_audio_mute  # noqa: N815

    async def set_conversation_held(self, conversation_id: str, held: bool, *, timeout: Optional[float] = 15.0) -> None:
        """Put this user's side of a conversation on hold (or take it off); see
        :meth:`PureCloudWebrtcSdk.set_conversation_held`."""
        await self._acall(lambda c: c.set_conversation_held(conversation_id, held, deadline(timeout)), grace(timeout),
                          "set_conversation_held")

    def set_access_token(self, token: str) -> None:
        """Use ``token`` for REST calls and the next (re)connect (no I/O, so not awaitable)."""
        self.sync.set_access_token(token)

    async def __aenter__(self) -> "AsyncPureCloudWebrtcSdk":
        self._bind_loop(required=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncPureCloudWebrtcSdk {self.sync!r}>"

