"""The SDK core: one asyncio loop on a named thread that owns all protocol state.

The XMPP stream, XEP-0353 pending sessions, Jingle sessions and aiortc peer connections live on
:class:`Core` and are touched only from the core thread (``pcw-core-N``).  Caller threads reach it
through :meth:`Core.call` (``run_coroutine_threadsafe(...).result(timeout)``), the asyncio twin through
:meth:`Core.acall`; the WebSocket thread hands frames over with ``call_soon_threadsafe``; blocking work
goes to the core's executors (REST to ``pcw-rest-N``, devices and files to ``pcw-io-N``).  Events leave
through the SDK's dispatcher; no user code runs here.

One owner, one concept per module; ``Core`` is assembled from them:

==========================  ======================================================================
module                      what it does on the core's state
==========================  ======================================================================
``_connection``             connect, reconnect with back-off, ICE servers and their refresh
``_notifications``          pubsub on the same socket: conversation events, dead-channel topics
``_pending``                XEP-0353 pending sessions, proceed/accept/reject/retract, session start
``_jingle_router``          Jingle IQs to their session or the protocol's answer; transfers
``_rpc_router``             SDP over XMPP (JSON-RPC) and what it must remember
``_media_resolution``       a session's sources and sinks, resolved off the loop, and their owner
``jingle.session``          one call's signalling (Jingle or JSON-RPC) and its state snapshot
``_session_media``          one call's media: peer connection, live audio, pump, RFC 4733, quality
``_commands``               every command of both facades, as coroutines
``_trust``                  who may propose or talk in a call; bounds; the remote-candidate filter
``_internals``              the one adapter for aiortc/aioice/PyAV internals
==========================  ======================================================================
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar

from . import _ice
from ._connection import Connection
from ._jingle_router import JingleRouter
from ._media_resolution import MediaResolution, _is_media_object
from ._notifications import Notifications
from ._pending import AcceptOptions, PendingSessions, _Pending  # noqa: F401  (re-exported)
from ._rpc_router import RpcRouter
from ._trust import CandidateFilter, TrustedPeers
from ._xml import Element
from .errors import (
    ClosedError,
    ConnectionFailedError,
    OperationTimeoutError,
    UsageError,
)
from .jingle.session import JingleSession
from .xmpp.stream import Jid, XmppStream

if TYPE_CHECKING:  # pragma: no cover
    from .sdk import PureCloudWebrtcSdk

__all__ = ["Core", "AcceptOptions"]

T = TypeVar("T")
_ids = itertools.count(1)


class Core(Connection, Notifications, PendingSessions, JingleRouter, RpcRouter, MediaResolution):
    """Owns the loop thread and every piece of protocol state of one SDK."""

    def __init__(self, sdk: "PureCloudWebrtcSdk") -> None:
        self.sdk = sdk
        self.owned_media = set()
        self._closed_media = weakref.WeakSet()
        self._owned_lock = threading.Lock()
        self.options = sdk.options
        self.log: logging.Logger = sdk.log
        self.api = sdk.api
        n = next(_ids)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=f"pcw-core-{n}", daemon=True)
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"pcw-io-{n}")
        # REST has a thread of its own: the one requests.Session is only ever used from it, and a slow
        # request cannot hold up opening a device (and the other way round).
        self.rest_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pcw-rest-{n}")
        from ._commands import Commands

        #: every command of both facades, as core coroutines
        self.commands = Commands(self)
        #: set by disconnect()/close(): no reconnect (written on the core loop only)
        self.user_disconnected = False
        self.stream: Optional[XmppStream] = None
        self.old_streams: List[XmppStream] = []
        self.me: Optional[Dict[str, Any]] = None
        self.jid: Optional[Jid] = None
        self.resource = self.options.jid_resource or f"purecloud-webrtc-sdk-{uuid.uuid4()}"
        self.pending: Dict[str, _Pending] = {}
        self.sessions: Dict[str, JingleSession] = {}
        self.ice_servers: List[Dict[str, Any]] = list(self.options.ice_servers or [])
        self.ice_transport_policy = self.options.ice_transport_policy
        self.state = "idle"
        self.closing = False
        self._reconnect_task: Optional[asyncio.Task[None]] = None
        #: ids of pending sessions that expired locally (accepting one says so), bounded
        self._expired_pending: Dict[str, float] = {}
        self._pending_sweeper: Optional[asyncio.Task[None]] = None
        #: the stream whose connect() is in progress (its loss fails that connect, see _connection)
        self._connecting_stream: Optional[XmppStream] = None
        self._reconnect_now = False
        self.reconnects = 0
        self.trusted = TrustedPeers(self.options.trusted_peers)
        self.limits = self.options.limits
        #: Session ids negotiating with JSON-RPC (docs/protocol.rst §5), with when they were last seen; bounded.
        self.sdp_mode_sids: Dict[str, float] = {}
        self._early_candidates: "Dict[str, List[tuple[float, str]]]" = {}
        self._seen_offers: Dict[str, float] = {}
        self._ice_refresh_task: Optional[asyncio.Task[None]] = None
        self._started = threading.Event()
        #: calls this SDK placed (start_softphone_session): conversation id → (accept options, expiry); bounded
        self.placed: Dict[str, Tuple[AcceptOptions, float]] = {}
        #: start_softphone_session POSTs in flight (a proposal may overtake its answer), and their end
        self.placing = 0
        self.placing_changed = asyncio.Event()

    # -- the loop thread -------------------------------------------------------------------

    def start(self) -> None:
        from ._internals import probe

        self.thread.start()
        self._started.wait(5)
        hooks = probe()
        self.log.debug("hooks into aiortc/aioice/PyAV internals: %s",
                       ", ".join(f"{name} {status.state}" for name, status in hooks.items()))
        for name, status in hooks.items():
            if status.state == "failed":
                self.log.warning("hook %s is not available (%s); the SDK uses the fallback", name, status.reason)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        if self.options.ice_host_addresses is not None:
            _ice.restrict_host_addresses(self.loop, self.options.ice_host_addresses)
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.wait(pending, timeout=2))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                # aioice resolves addresses on the loop's default executor: join its threads too.
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                _ice.release_host_addresses(self.loop)
                self.loop.close()

    def on_core_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def _submit(self, make: Callable[[], Awaitable[T]], what: str) -> "concurrent.futures.Future[T]":
        """Schedule the coroutine made by ``make`` on the core loop (from any other thread)."""
        if not self.thread.is_alive() or self.loop.is_closed():
            raise ClosedError(f"{what}: the SDK is closed")

        async def runner() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(runner(), self.loop)

    def call(self, make: Callable[[], Awaitable[T]], timeout: Optional[float], what: str) -> T:
        """Run the coroutine made by ``make`` on the core loop and wait for its result (caller threads only)."""
        if self.on_core_thread():
            raise UsageError(f"{what} cannot block the SDK's core thread")
        future = self._submit(make, what)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise OperationTimeoutError(what, timeout) from None
        except concurrent.futures.CancelledError:
            raise ClosedError(f"{what}: the SDK closed while waiting") from None

    async def acall(self, make: Callable[[], Awaitable[T]], timeout: Optional[float], what: str) -> T:
        """Await the coroutine made by ``make`` on the core loop from another loop (the asyncio twin): one hop."""
        future = self._submit(make, what)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()
            raise OperationTimeoutError(what, timeout) from None
        except concurrent.futures.CancelledError:
            if future.cancelled():
                raise ClosedError(f"{what}: the SDK closed while waiting") from None
            raise

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn`` on the I/O executor without blocking the loop."""
        return await self.loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def run_rest(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the blocking REST call ``fn`` on the REST thread without blocking the loop."""
        return await self.loop.run_in_executor(self.rest_executor, functools.partial(fn, *args, **kwargs))

    def trace(self, level: str, message: str, details: Optional[Dict[str, Any]] = None) -> None:
        """Log ``message`` and emit it as a ``trace`` event."""
        self.log.log(getattr(logging, level.upper(), logging.INFO), "%s", message)
        self.sdk._emit("trace", level, message, details or {})

    def report_error(self, error: BaseException, details: Optional[Dict[str, Any]] = None) -> None:
        """An error nobody waits for: log it and emit the ``error`` event."""
        self.log.warning("%s: %s", type(error).__name__, error)
        self.sdk._emit("error", error, details or {})

    # -- connection -------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """End every session (telling the peer when possible) and close the stream."""
        self.closing = True
        self.user_disconnected = True
        for task in (self._reconnect_task, self._ice_refresh_task):
            if task is not None:
                task.cancel()
        connected = self.stream is not None and self.stream.state == "connected"
        await asyncio.gather(*(s.finish("success", send=connected) for s in list(self.sessions.values())),
                             return_exceptions=True)
        # What accepted proposals and placed calls opened (a microphone, a recording file) is closed now, not
        # queued on an executor that close() is about to shut down.
        unused = [e.options for e in {id(e): e for e in self.pending.values()}.values()
                  if e.options.resolved and not e.options.handed and not e.options.consumed]
        unused += [options for options, _ in self.placed.values() if options.resolved and not options.consumed]
        self.pending.clear()
        self.placed.clear()
        for options in unused:
            await self.close_accept_media(options)
        if connected:
            # Let the terminate IQs leave before the <close/>.
            await asyncio.sleep(0.05)
        if self.stream is not None:
            await self.stream.close(timeout=0.5)
        for default in (self.options.default_source, self.options.default_sink):
            if _is_media_object(default):
                try:
                    await self.run_blocking(default.close)
                except Exception:  # closing must go on
                    self.log.debug("closing a default source/sink failed", exc_info=True)

    # -- sending ------------------------------------------------------------------------------

    def send(self, el: Element) -> None:
        if self.stream is None:
            raise ConnectionFailedError("not connected")
        self.stream.send(el)

    def send_iq_nowait(self, el: Element, on_error: Optional[Callable[[Exception], None]] = None) -> None:
        if self.stream is None:
            raise ConnectionFailedError("not connected")
        self.stream.send_iq_nowait(el, on_error)

    @property
    def full_jid(self) -> Optional[str]:
        if self.stream is None or self.stream.full_jid is None:
            return None
        return str(self.stream.full_jid)

    # -- XEP-0353 ------------------------------------------------------------------------------

    def _live_sessions(self) -> int:
        return sum(1 for s in self.sessions.values() if not s.ended)

    def candidate_filter(self) -> CandidateFilter:
        """The remote-candidate filter for the policy in force now (it can change with each ICE refresh)."""
        return CandidateFilter(self.ice_transport_policy, self.options.ice_host_addresses)

    def forget_session(self, session: JingleSession) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
