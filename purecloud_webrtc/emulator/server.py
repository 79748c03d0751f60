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
import atexit
import concurrent.futures
import itertools
import logging
import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from aiohttp import web

if TYPE_CHECKING:  # pragma: no cover
    from .intruder import Intruder
    from .libwebrtc_party import LibwebrtcParty
    from .xmpp_client_gateway import XmppClientRouter, XmppServerLogin

from .._ice import release_host_addresses, restrict_host_addresses
from ._state import EmulatedUser, EmulatorError, EmulatorState, RestFault, UserRef, new_user
from .party import EmulatedCall, Gateway
from .rest import build_app
from .streaming import XmppRouter

__all__ = ["Emulator"]

_numbers = itertools.count(1)
#: Emulators not stopped yet: the interpreter's exit stops them (their calls end first).
_running: "weakref.WeakSet[Emulator]" = weakref.WeakSet()


def _stop_at_exit() -> None:
    for emulator in list(_running):
        try:
            emulator.stop()
        except Exception:  # exiting anyway
            pass


atexit.register(_stop_at_exit)
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
        "credential":…}``) that XEP-0215 discovery returns, besides the emulator's own STUN server
        (``stun``). The emulator itself never uses them.
    :param stun: run a STUN responder on 127.0.0.1 and advertise it over XEP-0215, as the service always
        advertises STUN (a client that follows the official rule gathers relay candidates only when
        discovery returns no STUN server, docs/protocol.rst §2.8). ``None`` (default): only when
        ``ice_servers`` is not given; ``True``: also beside ``ice_servers``; ``False``: never.
    :param stun_port: UDP port of that responder (``0``: a free one).
    :param cheap_far_ends: far ends that send a pre-encoded Opus tone and count what they receive without
        decoding it (``EmulatedCall.packet_counter``), for benchmarks whose far ends must cost less than
        the side they measure (:mod:`purecloud_webrtc.emulator.cheap`); no audio checks then.
    :param trickle_candidates: gateway candidates as ``transport-info`` after session-initiate
        (default) or inline in it.
    :param alert_timeout: retract calls not proceeded within this many seconds (``None``: never).
    :param remote_party: a :class:`~purecloud_webrtc.emulator.libwebrtc_party.LibwebrtcParty` to run each
        call's far end on libwebrtc (Node, ``@roamhq/wrtc``) instead of aiortc.
    :param xmpp_server: log the gateway in to this real XMPP server (an
        :class:`~purecloud_webrtc.emulator.xmpp_client_gateway.XmppServerLogin`) and send
        proposals and Jingle through it instead of the emulator's own streaming service;
        the SDK then connects to that server too (``streaming_url=``).
    :param sdp_over_xmpp: propose with ``inin-sdp-over-xmpp="true"`` and negotiate with
        JSON-RPC (docs/protocol.rst §5) instead of Jingle.
    :param logger: logger to use (default ``purecloud_webrtc.emulator``; frames go to its
        ``.wire`` child at DEBUG).
    :param user_name: display name of the default user.
    :param tls: serve ``https://``/``wss://`` with a certificate for 127.0.0.1 from a throwaway CA
        (:attr:`ca_file`); ``"wrong-host"`` uses a certificate for another name.
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
        stun: Optional[bool] = None,
        stun_port: int = 0,
        cheap_far_ends: bool = False,
        trickle_candidates: bool = True,
        alert_timeout: Optional[float] = None,
        sdp_over_xmpp: bool = False,
        xmpp_server: Optional["XmppServerLogin"] = None,
        remote_party: Optional["LibwebrtcParty"] = None,
        logger: Optional[logging.Logger] = None,
        user_name: str = "Emulated Agent",
        tls: "bool | str" = False,
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
        self.stun = ice_servers is None if stun is None else bool(stun)
        if not isinstance(stun_port, int) or not 0 <= stun_port <= 65535:
            raise ValueError(f"stun_port must be an int in 0..65535, not {stun_port!r}")
        self.stun_port = stun_port
        self.cheap_far_ends = bool(cheap_far_ends)
        self._stun: Optional[Any] = None
        self.trickle_candidates = trickle_candidates
        self.alert_timeout = alert_timeout
        self.sdp_over_xmpp = sdp_over_xmpp
        self.xmpp_server = xmpp_server
        self.remote_party = remote_party
        self._xmpp_client: Optional["XmppClientRouter"] = None
        if tls not in (False, True, "wrong-host"):
            raise ValueError("tls must be False, True or 'wrong-host'")
        self.tls = tls
        self._tls_material: Optional[Any] = None
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
            # A daemon, stopped at interpreter exit: a script that forgets stop() still ends.
            self._thread = threading.Thread(target=self._run, args=(ready,), name=f"pcw-emulator-{self._number}",
                                            daemon=True)
            _running.add(self)
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
        if self.stun:
            from .stun import StunResponder

            self._stun = await StunResponder(self.stun_port, self.logger).start()
            self.ice_servers = [{"urls": self._stun.url}] + self.ice_servers
        self._router = XmppRouter(self._state, self.ice_servers, self.logger)
        if self.xmpp_server is not None:
            from .xmpp_client_gateway import XmppClientRouter

            self._xmpp_client = XmppClientRouter(self.xmpp_server, self._state, loop, self.logger)
            self._gateway = Gateway(self._state, self._xmpp_client, loop, self.logger)  # type: ignore[arg-type]
            self._xmpp_client.gateway = self._gateway
            await self._xmpp_client.connect()
        else:
            self._gateway = Gateway(self._state, self._router, loop, self.logger)
        self._gateway.thread_id = threading.get_ident()
        self._gateway.remote_party = self.remote_party
        self._gateway.cheap_far_ends = self.cheap_far_ends
        self._router.gateway = self._gateway
        app = build_app(self)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        ssl_context = None
        if self.tls:
            from ._tls import make_tls_material

            self._tls_material = make_tls_material(host_ok=self.tls is True)
            ssl_context = self._tls_material.server_context()
        site = web.TCPSite(self._runner, "127.0.0.1", self.requested_port, ssl_context=ssl_context)
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
            for intruder in self._router.intruders:
                pcs, intruder._pcs = intruder._pcs, []
                for pc in pcs:
                    await pc.close()
        if self._xmpp_client is not None:
            await self._xmpp_client.close()
        if self._router is not None:
            await self._router.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._stun is not None:
            self._stun.close()
        if self._tls_material is not None:
            self._tls_material.cleanup()
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
        sdp_over_xmpp: Optional[bool] = None,
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
            sdp_over_xmpp=self.sdp_over_xmpp if sdp_over_xmpp is None else sdp_over_xmpp,
            alert_timeout=self.alert_timeout,
        )
        if self._xmpp_client is not None:
            call.gateway_jid = self._xmpp_client.full_jid  # its address on the real server
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
        """``http://127.0.0.1:PORT`` (``https://`` with ``tls``); REST lives under ``/api/v2/``."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Optional[str]:
        """PEM file of the throwaway CA in TLS mode (pass it to the SDK as ``ca_bundle``)."""
        return self._tls_material.ca_file if self._tls_material is not None else None

    @property
    def streaming_base_url(self) -> str:
        """``ws://127.0.0.1:PORT`` (``wss://`` with ``tls``); channels live under ``/stream/channels/{channelId}``."""
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}"

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

    def intruder(self, jid: Optional[str] = None, *, target: UserRef = None) -> "Intruder":
        """Somebody who is not the call's peer, attacking ``target``'s clients (default: the default user).

        With no ``jid`` it is a colleague: a new user of the same organisation, speaking from a full JID
        of its own.  With ``jid`` it speaks as exactly that JID (another gateway resource, an ``acd-``
        JID, a conference JID, a live call's own gateway JID...).  See
        :class:`~purecloud_webrtc.emulator.intruder.Intruder` for what it can send; what the SDK
        answers it is recorded.
        """
        from .intruder import Intruder

        victim = self._state.resolve_user(target)
        router = self._router_or_fail()
        if jid is None:
            colleague = self.add_user("Intruding Colleague")
            jid = f"{colleague.jid}/intruder-{uuid.uuid4().hex[:8]}"
        intruder = Intruder(self, jid, victim)
        self._on_loop(lambda: router.intruders.append(intruder))
        return intruder

    def inbound_call(
        self,
        user: UserRef = None,
        *,
        auto_answer: bool = False,
        tone_hz: Optional[float] = None,
        trickle: Optional[bool] = None,
        from_address: str = "+13175550100",
        timeout: float = 10.0,
        sdp_over_xmpp: Optional[bool] = None,
    ) -> EmulatedCall:
        """Someone calls ``user``: a conversation is created and the propose fans out to its resources.

        Returns once the propose is sent; the gateway then waits for ``proceed``.

        :param auto_answer: value of ``inin-autoanswer``.
        :param tone_hz: what the caller plays (default: the emulator's ``tone_hz``).
        :param trickle: trickle the gateway's candidates (default: ``trickle_candidates``).
        :param from_address: the caller's number.
        :param sdp_over_xmpp: negotiate this call with JSON-RPC instead of Jingle (default: the emulator's
            ``sdp_over_xmpp``); the service chooses per call (docs/protocol.rst §5).
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
                sdp_over_xmpp=sdp_over_xmpp,
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

        Calls go on: media is peer to peer (docs/protocol.rst §2.10).
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


    # -- faults (docs/protocol.rst §2.3, §2.6) ---------------------------------------------

    def send_raw(self, text: str, user: UserRef = None) -> int:
        """Send ``text`` as one frame, unchecked, to every bound connection of ``user``; returns how many.

        For hostile-input tests: malformed XML, entity bombs, oversized frames, odd stanzas.
        """
        target = self._state.resolve_user(user)
        router = self._router_or_fail()

        def send() -> int:
            conns = router.bound(target)
            for conn in conns:
                conn.send(text)
            return len(conns)

        return int(self._on_loop(send))

    def send_connection_transfer(self, user: UserRef = None) -> int:
        """Ask ``user``'s connections to move (``<iq type="set"><query xmlns="urn:xmpp:cxfr"/>``, §2.6)."""
        target = self._state.resolve_user(user)
        domain = self._state.domain
        text = (f'<iq xmlns="jabber:client" type="set" id="cxfr-{uuid.uuid4()}" from="{domain}" to="{target.jid}">'
                f'<query xmlns="urn:xmpp:cxfr"><domain>{domain}</domain></query></iq>')
        return self.send_raw(text, target)

    def send_service_event(self, topic: str, payload: Optional[dict[str, Any]] = None, user: UserRef = None) -> int:
        """Send a notification-service pubsub event (e.g. ``v2.system.no_longer_subscribed``, ``duplicate_id``)."""
        import json
        from xml.sax.saxutils import escape

        target = self._state.resolve_user(user)
        body = escape(json.dumps({"topicName": topic, "eventBody": payload or {}}))
        text = (f'<message xmlns="jabber:client" from="notifications.mypurecloud.com" to="{target.jid}">'
                f'<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="{escape(topic)}"><item>'
                f'<json xmlns="urn:xmpp:json:0">{body}</json></item></items></event></message>')
        return self.send_raw(text, target)

    def rotate_access_token(self, new_token: str, user: UserRef = None) -> EmulatedUser:
        """Give ``user`` a new access token; the old one is refused from now on (REST and SASL)."""
        import dataclasses

        if not new_token:
            raise ValueError("new_token must not be empty")
        target = self._state.resolve_user(user)
        with self._state.cond:
            updated = dataclasses.replace(target, access_token=new_token)
            self._state.users[self._state.users.index(target)] = updated
            for channel, owner in list(self._state.channels.items()):
                if owner.id == target.id:
                    self._state.channels[channel] = updated
        if self.user.id == target.id:
            self.user = updated
            self.access_token = new_token
        return updated

    @property
    def stun_url(self) -> Optional[str]:
        """``stun:127.0.0.1:{port}`` of the emulator's own STUN responder (``None`` without one)."""
        return self._stun.url if self._stun is not None else None

    @property
    def unsolicited_iq_results(self) -> "list[str]":
        """Ids of IQ results/errors from clients that matched no IQ the gateway was waiting for (the last 100)."""
        gateway = self._gateway_or_fail()
        return gateway.call_on_loop(lambda: list(gateway.unsolicited))

    @property
    def stun_requests_answered(self) -> int:
        """How many STUN Binding requests the emulator's responder answered."""
        return self._stun.answered if self._stun is not None else 0

    def set_ice_servers(self, ice_servers: "Sequence[dict[str, Any]]") -> None:
        """Change what XEP-0215 discovery returns from now on (e.g. TURN credentials that rotated)."""
        self.ice_servers = list(ice_servers)
        router = self._router_or_fail()
        self._on_loop(lambda: setattr(router, "ice_servers", list(ice_servers)))

    def rest_fault(self, method: str = "*", path: str = "/api/v2/", *, status: Optional[int] = None,
                   retry_after: Optional[float] = None, hang: Optional[float] = None,
                   times: Optional[int] = 1) -> None:
        """Script a REST fault: the next ``times`` requests (``None``: every one) whose method is ``method``
        (``"*"``: any) and whose path contains ``path`` first hang for ``hang`` seconds, then answer
        ``status`` (with ``Retry-After: retry_after``) or, without a status, go on normally.

        For example ``rest_fault("GET", "/conversations/", status=429, retry_after=8)``.
        """
        if status is None and hang is None:
            raise ValueError("rest_fault needs a status, a hang, or both")
        fault = RestFault(method.upper(), path, status, retry_after, hang, times)
        with self._state.cond:
            self._state.rest_faults.append(fault)

    def rest_faults_served(self) -> int:
        """How many requests the scripted REST faults have answered (or are holding) so far."""
        with self._state.cond:
            return sum(fault.served for fault in self._state.rest_faults)

    def clear_rest_faults(self) -> None:
        """Forget every scripted REST fault."""
        with self._state.cond:
            self._state.rest_faults.clear()

    def refuse_sasl(self, condition: Optional[str] = "not-authorized") -> None:
        """Fail every SASL attempt with ``condition`` from now on (``None``: accept valid credentials again)."""
        with self._state.cond:
            self._state.refuse_sasl = condition

    def refuse_connections(self, refuse: bool = True) -> None:
        """Answer WebSocket upgrades with HTTP 503 while ``refuse`` (a streaming service outage)."""
        with self._state.cond:
            self._state.refuse_connections = refuse

    def restart_streaming(self, downtime: float = 1.0) -> None:
        """Cut every connection and refuse new ones for ``downtime`` seconds (a streaming restart)."""
        self.refuse_connections(True)
        for user in list(self._state.users):
            self.drop_connections(user)

        def reopen() -> None:
            self.refuse_connections(False)

        timer = threading.Timer(downtime, reopen)
        timer.daemon = True
        timer.start()

    @property
    def calls(self) -> list[EmulatedCall]:
        """Every call so far, oldest first."""
        with self._state.cond:
            return list(self._state.calls)

    def forget_ended_calls(self) -> int:
        """Drop ended calls (and the wire and REST logs) from the emulator's memory, for long soaks whose
        measure is the SDK's memory, not the emulator's; returns how many calls were dropped."""
        final = ("ended", "retracted", "answered_elsewhere", "rejected")
        gateway = self._gateway

        def forget() -> int:
            with self._state.cond:
                ended = [c for c in self._state.calls if c.state in final]
                self._state.calls = [c for c in self._state.calls if c.state not in final]
                self._state.wire.clear()
                self._state.rest_log.clear()
            for call in ended:
                call.stop_worker()
                if gateway is not None:
                    gateway.calls_by_sid.pop(call.session_id, None)
            return len(ended)

        return int(self._on_loop(forget))

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
