"""The :class:`Emulator` facade: one aiohttp server (REST + streaming) on its own loop thread.

The emulator binds ``127.0.0.1`` only.  ``start()`` runs a dedicated asyncio
loop on a named, non-daemon thread (``pcw-emulator-N``) that owns all state:
the HTTP server, every XMPP connection, every call and its aiortc peer
connection.  That loop restricts ICE host candidates to ``127.0.0.1`` and
builds every peer connection with no ICE servers, so the emulator never sends
a packet anywhere else.  The public methods are for other threads; they hand
work to the loop and wait with a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from typing import Any, Callable, Optional, Sequence

from aiohttp import web

from .._ice import release_host_addresses, restrict_host_addresses
from ._state import EmulatedUser, EmulatorError, EmulatorState, UserRef, new_user
from .party import EmulatedCall, Gateway
from .rest import build_app
from .streaming import XmppRouter

__all__ = ["Emulator"]

_numbers = itertools.count(1)
_STOP_TIMEOUT = 15.0


class Emulator:
    """An emulator of the Genesys Cloud side (Public API, streaming service, WebRTC gateway) on 127.0.0.1.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        with Emulator() as emu:
            sdk = ...(api_base_url=emu.api_base_url, access_token=emu.access_token)
            call = emu.inbound_call()
            call.wait_state("connected")

    :param host: must be ``"127.0.0.1"``.
    :param port: TCP port; ``0`` picks a free one.
    :param access_token: bearer token (and SASL ``authKey:``) of the default user.
    :param org_name: organisation name; JIDs live in ``{org_name}.orgspan.com``.
    :param tone_hz: frequency the far end plays by default.
    :param ice_servers: RTCIceServer-like dicts (``{"urls": "turn:h:3478", "username":…,
        "credential":…}``) that XEP-0215 discovery returns; default none (empty lists).
        The emulator itself never uses them.
    :param trickle_candidates: gateway candidates as ``transport-info`` after session-initiate
        (default) or inline in it.
    :param alert_timeout: retract calls not proceeded within this many seconds (``None``: never).
    :param sdp_over_xmpp: propose with ``inin-sdp-over-xmpp="true"`` and negotiate with
        JSON-RPC (PROTOCOL.md §5) instead of Jingle.
    :param logger: logger to use (default ``purecloud_webrtc.emulator``; frames go to its
        ``.wire`` child at DEBUG).
    :param user_name: display name of the default user.
    :raises ValueError: for another host or a bad port.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token: str = "emulator-token",
        org_name: str = "acmecorp",
        tone_hz: float = 440.0,
        ice_servers: "Optional[Sequence[dict[str, Any]]]" = None,
        trickle_candidates: bool = True,
        alert_timeout: Optional[float] = None,
        sdp_over_xmpp: bool = False,
        logger: Optional[logging.Logger] = None,
        user_name: str = "Emulated Agent",
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError(f"the emulator binds 127.0.0.1 only, not {host!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, not {port!r}")
        if not access_token:
            raise ValueError("access_token must not be empty")
        if alert_timeout is not None and alert_timeout <= 0:
            raise ValueError("alert_timeout must be positive (or None)")
        self.host = host
        self.requested_port = port
        self.access_token = access_token
        self.tone_hz = float(tone_hz)
        self.ice_servers: list[dict[str, Any]] = list(ice_servers or [])
        self.trickle_candidates = trickle_candidates
        self.alert_timeout = alert_timeout
        self.sdp_over_xmpp = sdp_over_xmpp
        self.logger = logger or logging.getLogger("purecloud_webrtc.emulator")
        self._state = EmulatorState(org_name)
        self.user: EmulatedUser = self._state.add_user(new_user(user_name, self._state.domain, access_token))
        self._number = next(_numbers)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._router: Optional[XmppRouter] = None
        self._gateway: Optional[Gateway] = None
        self._runner: Optional[web.AppRunner] = None
        self._port: Optional[int] = None
        self._started = False
        self._stopped = False
        self._lifecycle = threading.Lock()

    def __repr__(self) -> str:
        where = f"http://127.0.0.1:{self._port}" if self._port else "not started"
        return f"<Emulator #{self._number} {where}>"

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> "Emulator":
        """Start the loop thread and the server; returns ``self`` once it listens.

        :raises EmulatorError: if already started (or stopped), or the server could not start.
        """
        with self._lifecycle:
            if self._started:
                raise EmulatorError("the emulator was already started (an emulator runs once)")
            self._started = True
            self._loop = asyncio.new_event_loop()
            ready: "concurrent.futures.Future[None]" = concurrent.futures.Future()
            self._thread = threading.Thread(target=self._run, args=(ready,), name=f"pcw-emulator-{self._number}")
            self._thread.start()
        try:
            ready.result(15)
        except Exception as exc:
            self._thread.join(_STOP_TIMEOUT)
            self._stopped = True
            raise EmulatorError(f"the emulator could not start: {exc}") from exc
        self.logger.info("emulator listening on %s (REST and streaming)", self.api_base_url)
        return self

    def stop(self) -> None:
        """Stop calls, connections, the server and the loop; join the thread.  Idempotent.

        Calls still ringing are retracted and live ones get a Jingle
        ``session-terminate`` with reason ``gone``; every stream then gets a
        ``system-shutdown`` stream error.

        :raises EmulatorError: when called on the emulator's own thread.
        """
        with self._lifecycle:
            if not self._started or self._stopped:
                return
            if threading.current_thread() is self._thread:
                raise EmulatorError("stop() cannot be called on the emulator's own thread")
            self._stopped = True
        loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_STOP_TIMEOUT)
        except Exception:
            self.logger.exception("emulator shutdown was not clean")
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # loop already closed
            pass
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise EmulatorError(f"emulator thread {thread.name} did not stop within {_STOP_TIMEOUT}s")
        self.logger.info("emulator stopped")

    def __enter__(self) -> "Emulator":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: "concurrent.futures.Future[None]") -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        restrict_host_addresses(loop, ["127.0.0.1"])
        try:
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()
        finally:
            self._finish_loop(loop)

    def _finish_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        except Exception:
            self.logger.exception("error while closing the emulator loop")
        finally:
            release_host_addresses(loop)
            asyncio.set_event_loop(None)
            loop.close()

    async def _startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._router = XmppRouter(self._state, self.ice_servers, self.logger)
        self._gateway = Gateway(self._state, self._router, loop, self.logger)
        self._gateway.thread_id = threading.get_ident()
        self._router.gateway = self._gateway
        app = build_app(self)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        with self._state.cond:
            calls = list(self._state.calls)
        # Live calls end as the far end going away, so clients still connected
        # get a session-terminate (or a retract) before their stream closes.
        await asyncio.gather(*(call.end_for_shutdown() for call in calls), return_exceptions=True)
        for call in calls:
            try:
                await call.shutdown()
            except Exception:
                self.logger.exception("error stopping call %s", call.conversation_id)
        if self._router is not None:
            await self._router.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        self._state.changed()

    # -- internals used by rest/streaming --------------------------------------

    def _loop_or_fail(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._started or self._stopped:
            raise EmulatorError("the emulator is not running (call start())")
        return self._loop

    def _router_or_fail(self) -> XmppRouter:
        if self._router is None:
            raise EmulatorError("the emulator is not running (call start())")
        return self._router

    def _gateway_or_fail(self) -> Gateway:
        self._loop_or_fail()
        assert self._gateway is not None
        return self._gateway

    def _create_call(
        self,
        user: EmulatedUser,
        *,
        direction: str,
        address: str,
        auto_answer: bool,
        tone_hz: Optional[float] = None,
        trickle: Optional[bool] = None,
    ) -> EmulatedCall:
        """Create and register a call (loop thread); the caller queues its propose."""
        gateway = self._gateway_or_fail()
        call = EmulatedCall(
            gateway,
            user,
            direction=direction,
            address=address,
            tone_hz=self.tone_hz if tone_hz is None else tone_hz,
            trickle=self.trickle_candidates if trickle is None else trickle,
            auto_answer=auto_answer,
            sdp_over_xmpp=self.sdp_over_xmpp,
            alert_timeout=self.alert_timeout,
        )
        gateway.add(call)
        with self._state.cond:
            self._state.calls.append(call)
            self._state.cond.notify_all()
        call.start()
        return call

    def _on_loop(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        return self._gateway_or_fail().call_on_loop(fn, timeout)

    # -- public API --------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the emulator listens on."""
        if self._port is None:
            raise EmulatorError("the emulator is not started")
        return self._port

    @property
    def api_base_url(self) -> str:
        """``http://127.0.0.1:PORT``; REST lives under ``/api/v2/``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def streaming_base_url(self) -> str:
        """``ws://127.0.0.1:PORT``; channels live under ``/stream/channels/{channelId}``."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def domain(self) -> str:
        """The users' JID domain (``{org_name}.orgspan.com``)."""
        return self._state.domain

    @property
    def org_name(self) -> str:
        """The organisation name."""
        return self._state.org_name

    @property
    def users(self) -> list[EmulatedUser]:
        """Every user, the default one first."""
        with self._state.cond:
            return list(self._state.users)

    def add_user(self, name: str = "", access_token: Optional[str] = None) -> EmulatedUser:
        """Add a user with its own token (before or after :meth:`start`; any thread).

        :param name: display name (default ``Emulated Agent N``).
        :param access_token: its token (default: a random one).
        :raises ValueError: if the token is already taken.
        """
        with self._state.cond:
            count = len(self._state.users) + 1
        user = new_user(name or f"Emulated Agent {count}", self._state.domain, access_token)
        return self._state.add_user(user)

    def inbound_call(
        self,
        user: UserRef = None,
        *,
        auto_answer: bool = False,
        tone_hz: Optional[float] = None,
        trickle: Optional[bool] = None,
        from_address: str = "+13175550100",
        timeout: float = 10.0,
    ) -> EmulatedCall:
        """Someone calls ``user``: a conversation is created and the propose fans out to its resources.

        Returns once the propose is sent; the gateway then waits for ``proceed``.

        :param auto_answer: value of ``inin-autoanswer``.
        :param tone_hz: what the caller plays (default: the emulator's ``tone_hz``).
        :param trickle: trickle the gateway's candidates (default: ``trickle_candidates``).
        :param from_address: the caller's number.
        """
        target = self._state.resolve_user(user)
        call: EmulatedCall = self._on_loop(
            lambda: self._create_call(
                target,
                direction="inbound",
                address=from_address,
                auto_answer=auto_answer,
                tone_hz=tone_hz,
                trickle=trickle,
            ),
            timeout,
        )
        call._run(call.propose, timeout=timeout, what="propose")
        return call

    def wait_for_connection(self, user: UserRef = None, timeout: float = 10) -> None:
        """Block until some resource of ``user`` is bound.

        :raises TimeoutError: if none is within ``timeout`` seconds.
        """
        target = self._state.resolve_user(user)
        router = self._router_or_fail()
        self._gateway_or_fail().check_not_loop("wait_for_connection")
        self._state.wait_until(
            lambda: bool(router.bound(target)),
            timeout,
            lambda: f"no connection of {target.jid} was bound within {timeout}s",
        )

    def connected_resources(self, user: UserRef = None) -> list[str]:
        """Full JIDs of ``user`` bound now."""
        target = self._state.resolve_user(user)
        return [c.full_jid for c in self._router_or_fail().bound(target) if c.full_jid]

    def drop_connections(self, user: UserRef = None) -> None:
        """Cut every WebSocket of ``user`` abruptly (no ``<close/>``, no WebSocket close frame).

        Calls go on: media is peer to peer (PROTOCOL.md §2.10).
        """
        target = self._state.resolve_user(user)
        router = self._router_or_fail()

        def drop() -> int:
            conns = [c for c in router.all_connections() if c.channel_user.id == target.id]
            for conn in conns:
                conn.close(abrupt=True)
            return len(conns)

        count = self._on_loop(drop)
        self.logger.info("dropped %d connection(s) of %s", count, target.jid)

    @property
    def calls(self) -> list[EmulatedCall]:
        """Every call so far, oldest first."""
        with self._state.cond:
            return list(self._state.calls)

    def call_by_conversation(self, conversation_id: str) -> EmulatedCall:
        """The call with ``conversation_id``.

        :raises LookupError: if there is none.
        """
        with self._state.cond:
            for call in self._state.calls:
                if call.conversation_id == conversation_id:
                    return call
        raise LookupError(f"no call with conversation id {conversation_id}")

    def wait_for_call(
        self, predicate: Optional[Callable[[EmulatedCall], bool]] = None, timeout: float = 10
    ) -> EmulatedCall:
        """Block until a call matches ``predicate`` (any call if ``None``); returns the newest match.

        :raises TimeoutError: if none does within ``timeout`` seconds.
        """
        found: list[EmulatedCall] = []

        def match() -> bool:
            hits = [c for c in self._state.calls if predicate is None or predicate(c)]
            if hits:
                found[:] = hits[-1:]
            return bool(hits)

        self._state.wait_until(match, timeout, lambda: f"no matching call within {timeout}s")
        return found[0]

    def stanzas(self, user: UserRef = None, *, connection: Optional[int] = None) -> list[tuple[str, str]]:
        """The wire log of ``user``'s connections: ``("in"|"out", xml)`` in order.

        :param connection: only this connection number (see :meth:`connections`).
        """
        target = self._state.resolve_user(user)
        with self._state.cond:
            return [
                (e.direction, e.text)
                for e in self._state.wire
                if e.user_id == target.id and (connection is None or e.connection == connection)
            ]

    def connections(self, user: UserRef = None) -> list[int]:
        """Numbers of every connection ``user`` opened so far (for :meth:`stanzas`)."""
        target = self._state.resolve_user(user)
        with self._state.cond:
            return sorted({e.connection for e in self._state.wire if e.user_id == target.id})

    @property
    def rest_log(self) -> list[tuple[str, str, int]]:
        """Every HTTP exchange so far: ``(method, path, status)``."""
        with self._state.cond:
            return list(self._state.rest_log)
