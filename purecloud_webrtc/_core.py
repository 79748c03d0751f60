"""The SDK core: one asyncio loop on a named thread that owns all protocol state.

The XMPP stream, XEP-0353 pending sessions, Jingle sessions and aiortc peer
connections live here and are touched only from the core thread
(``pcw-core-N``).  Caller threads reach it through :meth:`Core.call`
(``run_coroutine_threadsafe(...).result(timeout)``); the WebSocket thread
reaches it with ``call_soon_threadsafe``; blocking work (REST, opening audio
devices, joining worker threads) goes to a small executor (``pcw-io-N``).
Events leave through the SDK's dispatcher; no user code runs here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Optional, TypeVar

from . import _ice
from . import _xml as X
from ._trust import CandidateFilter, TrustedPeers, classify_peer
from ._xml import NS, Element, element, q
from .errors import (
    AuthenticationError,
    ClosedError,
    ConnectionFailedError,
    OperationTimeoutError,
    PureCloudWebrtcError,
    SessionNotFoundError,
    SessionStateError,
    SignalingError,
    UsageError,
)
from .events import PendingSession
from .jingle.messages import build_jmi, parse_jmi, unknown_session_error
from .jingle.rpc import ice_credentials, parse_rpc
from .jingle.session import JingleSession, SessionState
from .xmpp.stream import Jid, XmppStream, error_reply, result_reply

if TYPE_CHECKING:  # pragma: no cover
    from .sdk import PureCloudWebrtcSdk

__all__ = ["Core", "AcceptOptions"]

T = TypeVar("T")
_ids = itertools.count(1)


def _is_media_object(obj: Any) -> bool:
    from .media import AudioSink, AudioSource

    return isinstance(obj, (AudioSource, AudioSink))


@dataclass
class AcceptOptions:
    """What ``accept_pending_session`` asked for, applied when the session-initiate arrives."""

    source: Any = None
    sink: Any = None
    auto_start_media: bool = True
    auto_connect_session: Optional[bool] = None


@dataclass
class _Pending:
    info: PendingSession
    proceeded: bool = False
    options: AcceptOptions = field(default_factory=AcceptOptions)
    aliases: List[str] = field(default_factory=list)


#: Seconds a session id is remembered as negotiating with JSON-RPC once it has no pending entry or session.
SDP_MODE_TTL = 600.0


class Core:
    """Owns the loop thread and every piece of protocol state of one SDK."""

    def __init__(self, sdk: "PureCloudWebrtcSdk") -> None:
        self.sdk = sdk
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

    def call(self, make: Callable[[], Awaitable[T]], timeout: Optional[float], what: str) -> T:
        """Run the coroutine made by ``make`` on the core loop and wait for its result (caller threads only)."""
        if self.on_core_thread():
            raise UsageError(f"{what} cannot block the SDK's core thread")
        if not self.thread.is_alive() or self.loop.is_closed():
            raise ClosedError(f"{what}: the SDK is closed")

        async def runner() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(runner(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise OperationTimeoutError(what, timeout) from None
        except concurrent.futures.CancelledError:
            raise ClosedError(f"{what}: the SDK closed while waiting") from None

    async def acall(self, make: Callable[[], Awaitable[T]], timeout: Optional[float], what: str) -> T:
        """Await the coroutine made by ``make`` on the core loop from another loop (the asyncio twin): one hop."""
        if not self.thread.is_alive() or self.loop.is_closed():
            raise ClosedError(f"{what}: the SDK is closed")

        async def runner() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(runner(), self.loop)
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

    async def connect(self, reconnect: bool = False, deadline: Optional[float] = None) -> None:
        """REST user + channel, WebSocket, SASL, bind, ICE servers, pings; then ``connected``."""
        if self.closing:
            raise ClosedError("the SDK is closed")
        self.state = "connecting"
        def remaining() -> Optional[float]:
            return None if deadline is None else max(0.05, deadline - time.monotonic())

        if self.me is None:
            self.me = await self.run_rest(self.api.get_me, timeout=remaining())
            self.jid = Jid.parse(self.me["chat"]["jabberId"]).bare
        assert self.jid is not None
        channel = await self.run_rest(self.api.create_streaming_channel, timeout=remaining())
        if self.options.streaming_url:  # a plain XMPP server (Prosody) has no channel paths
            url = self.options.streaming_url.replace("{channel_id}", str(channel["id"]))
        else:
            url = f"{self.options.streaming_base_url.rstrip('/')}/stream/channels/{channel['id']}"
        stream = XmppStream(
            self.loop,
            url=url,
            jid=self.jid,
            password=lambda: "authKey:" + self.api.access_token,
            resource=self.resource,
            on_message=self._on_message,
            on_iq=self._on_iq,
            on_closed=lambda reason: self._on_stream_closed(stream, reason),
            connect_timeout=self.options.connect_timeout,
            iq_timeout=self.options.iq_timeout,
            ping_interval=self.options.ping_interval,
            ping_timeout=self.options.ping_timeout,
            sslopt={"ca_certs": self.options.ca_bundle} if self.options.ca_bundle else None,
        )
        stream.on_bad_input = lambda exc, text: self.report_error(
            SignalingError(f"bad input from the server: {exc}"), {"frame": text[:500]})
        self.stream = stream
        await stream.connect()
        try:
            if self.options.ice_servers is None:
                await self.refresh_ice_servers()
        except BaseException:
            stream.abort("ICE server discovery failed")
            raise
        stream.start_pings()
        if self.options.subscribe_conversations:
            await self._subscribe_conversations()
        self.state = "connected"
        self._cleanup_orphaned_sessions()
        if self.options.ice_servers is None and self._ice_refresh_task is None:
            self._ice_refresh_task = self.loop.create_task(self._refresh_ice_periodically())
        self.trace("info", f"connected as {stream.full_jid}", {"jid": str(stream.full_jid), "reconnect": reconnect})
        self.sdk._emit("connected", {"reconnect": reconnect, "jid": str(stream.full_jid)})

    @property
    def conversation_topic(self) -> str:
        return f"v2.users.{(self.me or {}).get('id')}.conversations"

    async def _subscribe_conversations(self) -> None:
        """XEP-0060 subscribe to this user's conversation topic on ``notifications.{env}`` (docs/protocol.rst §2.7)."""
        assert self.stream is not None and self.jid is not None
        pubsub = element(q("pubsub", "pubsub"), None,
                         element(q("pubsub", "subscribe"), {"node": self.conversation_topic, "jid": str(self.jid)}))
        iq = element(q("client", "iq"), {"type": "set", "to": f"notifications.{self.options.environment}"}, pubsub)
        try:
            await self.stream.iq(iq)
        except PureCloudWebrtcError as exc:
            # Optional for calls: report it, keep the connection.
            self.trace("warning", f"could not subscribe to conversation events: {exc}")

    async def refresh_ice_servers(self) -> None:
        """XEP-0215 ``turn`` and ``stun`` queries to the user's domain (docs/protocol.rst §2.8)."""
        assert self.stream is not None and self.jid is not None

        async def query(kind: str) -> List[Dict[str, Any]]:
            iq = element(q("client", "iq"), {"type": "get", "to": self.jid.domain},  # type: ignore[union-attr]
                         element(q("extdisco", "services"), {"type": kind}))
            result = await self.stream.iq(iq)  # type: ignore[union-attr]
            services = result.find(q("extdisco", "services"))
            return [dict(s.attrib) for s in X.findall(services, "extdisco", "service")]

        turn, stun = await asyncio.gather(query("turn"), query("stun"))
        self.ice_servers = _ice.ice_servers_from_services(turn, stun)
        # No STUN but TURN: the service asks for relay only (webRtcForceTurn, docs/protocol.rst §2.8).  With no
        # server at all the official client would gather nothing and carry no audio; we keep host candidates.
        if turn and not stun:
            self.ice_transport_policy = "relay"
        else:
            self.ice_transport_policy = self.options.ice_transport_policy
        self.trace("debug", f"ICE servers: {len(turn)} TURN, {len(stun)} STUN; policy {self.ice_transport_policy}",
                   {"turn": len(turn), "stun": len(stun)})

    async def _refresh_ice_periodically(self) -> None:
        while not self.closing:
            await asyncio.sleep(self.options.ice_refresh_interval)
            if self.state == "connected":
                try:
                    await self.refresh_ice_servers()
                except Exception as exc:  # credentials stay as they were; try again next time
                    self.trace("warning", f"ICE server refresh failed: {exc}")

    def _on_stream_closed(self, stream: XmppStream, reason: str) -> None:
        if stream is not self.stream:
            return
        self.state = "disconnected"
        on_purpose = self.closing or self.user_disconnected
        will_reconnect = self.options.reconnect and not on_purpose
        if on_purpose:
            self.trace("info", f"streaming connection closed: {reason}", {"reason": reason})
        else:
            self.trace("warning", f"streaming connection lost: {reason}", {"reason": reason})
        self.sdk._emit("disconnected", {"reason": reason, "reconnecting": will_reconnect})
        if not self.options.session_survivability:
            self.end_all_sessions_locally("connectivity-error")
        if will_reconnect and self._reconnect_task is None:
            self._reconnect_task = self.loop.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = self.options.reconnect_initial_delay
        attempt = 0
        try:
            while not self.closing and not self.user_disconnected:
                attempt += 1
                if self._reconnect_now:
                    # A transfer or a dead channel: the server wants us elsewhere right away (§2.6).
                    self._reconnect_now = False
                else:
                    await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                if self.closing or self.user_disconnected:
                    return
                try:
                    await self.connect(reconnect=True)
                    self.reconnects += 1
                    return
                except AuthenticationError as exc:
                    if exc.condition == "temporary-auth-failure":
                        self.trace("warning", f"reconnect attempt {attempt}: {exc}; retrying")
                    else:
                        # A refused token will not get better by hammering the service.
                        self.state = "disconnected"
                        self.report_error(exc, {"attempt": attempt})
                        self.sdk._emit("disconnected", {"reason": str(exc), "reconnecting": False})
                        return
                except PureCloudWebrtcError as exc:
                    self.state = "disconnected"
                    self.trace("warning", f"reconnect attempt {attempt} failed: {exc}")
                if self.options.reconnect_max_attempts is not None and attempt >= self.options.reconnect_max_attempts:
                    error = ConnectionFailedError(f"gave up reconnecting after {attempt} attempts")
                    self.report_error(error, {"attempt": attempt})
                    self.sdk._emit("disconnected", {"reason": str(error), "reconnecting": False})
                    return
                delay = min(max(delay, 0.05) * 2, self.options.reconnect_max_delay)
        finally:
            self._reconnect_task = None

    def _cleanup_orphaned_sessions(self) -> None:
        # Sessions whose media died while we were away are ended locally, not leaked (SDK HEAD
        # cleanupOrphanedSessions, docs/protocol.rst §2.10).
        for session in list(self.sessions.values()):
            pc = session.pc
            if pc is not None and pc.connectionState in ("failed", "closed"):
                self.trace("info", f"session {session.sid} lost its media while disconnected; ending it")
                self.loop.create_task(session.finish("gone", send=True))

    def force_reconnect(self, reason: str) -> None:
        """Drop the stream and reconnect at once on a new channel (transfer, dead channel)."""
        stream = self.stream
        if stream is None or stream.state != "connected":
            return
        self.trace("info", f"reconnecting at once: {reason}", {"reason": reason})
        self._reconnect_now = True
        stream.abort(reason)

    async def disconnect(self) -> None:
        """Close the stream on purpose (no reconnect)."""
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            self._reconnect_task = None
        stream = self.stream
        if stream is not None and stream.state in ("connected", "connecting"):
            await stream.close()
        if self.state != "idle":
            self.state = "disconnected"

    def end_all_sessions_locally(self, reason: str) -> None:
        for session in list(self.sessions.values()):
            self.loop.create_task(session.finish(reason, send=False))
        for sid, entry in list(self.pending.items()):
            if sid == entry.info.id:
                self.sdk._emit("cancelPendingSession", sid)
        self.pending.clear()

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
        self.pending.clear()
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

    def _find_pending(self, sid: str) -> Optional[_Pending]:
        return self.pending.get(sid)

    def _drop_pending(self, entry: _Pending) -> None:
        for key in [entry.info.id, *entry.aliases]:
            self.pending.pop(key, None)

    def _on_message(self, el: Element) -> None:
        try:
            jmi = parse_jmi(el)
        except ValueError as exc:
            self.report_error(SignalingError(str(exc)), {"stanza": X.to_string(el)[:500]})
            return
        if jmi is None:
            self._on_pubsub(el)
            return
        own = self.full_jid
        frm = jmi.from_jid
        if frm and frm == own:
            return  # our own bare-JID fan-out echo (docs/protocol.rst §3.3)
        if jmi.action == "propose":
            self._on_propose(jmi)
            return
        entry = self._find_pending(jmi.id)
        if entry is None:
            return
        if jmi.action == "retract":
            # Only the proposer can withdraw its proposal: anybody else could stop a call ringing.
            if frm != entry.info.from_jid:
                self._refused(f"ignored a retract of {jmi.id} from {frm!r}, not its proposer", frm, jmi.id)
                return
            self._drop_pending(entry)
            self.trace("info", f"pending session {entry.info.id} retracted", {"id": entry.info.id})
            self.sdk._emit("cancelPendingSession", entry.info.id)
        elif jmi.action in ("accept", "reject") and jmi.id not in self.sessions:
            # Another device of this user took or declined the call (its bare-JID fan-out); a reject may
            # also come from the proposer itself (docs/protocol.rst §3.3, §3.4).  Nobody else may stop it ringing.
            if not (self._from_own_account(frm) or (jmi.action == "reject" and frm == entry.info.from_jid)):
                self._refused(f"ignored an {jmi.action} of {jmi.id} from {frm!r}, not one of this user's clients",
                              frm, jmi.id)
                return
            self._drop_pending(entry)
            self.trace("info", f"pending session {entry.info.id} {jmi.action}ed by another client",
                       {"id": entry.info.id, "from": frm})
            self.sdk._emit("handledPendingSession", entry.info.id)

    def _from_own_account(self, jid: str) -> bool:
        if not jid or self.jid is None:
            return False
        try:
            return Jid.parse(jid).bare == self.jid
        except ValueError:
            return False

    def _refused(self, message: str, frm: str, sid: str) -> None:
        """A stanza from someone not allowed to send it: changes nothing, leaves a ``trace`` event."""
        self.trace("warning", message, {"from": frm, "id": sid, "refused": True})

    def _on_pubsub(self, el: Element) -> None:
        event = el.find(q("pubsub_event", "event"))
        if event is None:
            return
        for items in X.findall(event, "pubsub_event", "items"):
            node = items.get("node") or ""
            if node == self.conversation_topic:
                for item in X.findall(items, "pubsub_event", "item"):
                    self._on_conversation_event(item)
                continue
            if "no_longer_subscribed" in node or "duplicate_id" in node or "socket_closing" in node:
                # The channel is dead or shared by two sockets: hard reconnect on a new channel (§2.6).
                self.force_reconnect(f"service topic {node}")
                return

    def _on_conversation_event(self, item: Element) -> None:
        import json

        from .events import ConversationUpdate

        body = X.child_text(item, "json", "json")
        try:
            data = json.loads(body or "")
            conversation = data.get("eventBody", data) if isinstance(data, dict) else None
            if not isinstance(conversation, dict) or not conversation.get("id"):
                raise ValueError("no conversation id")
        except ValueError as exc:
            self.report_error(SignalingError(f"bad conversation event: {exc}"), {"body": (body or "")[:500]})
            return
        self.sdk._emit("conversationUpdate", ConversationUpdate.from_body(conversation, (self.me or {}).get("id")))

    def _on_propose(self, jmi: Any) -> None:
        from_jid = jmi.from_jid
        own_domain = self.jid.domain if self.jid is not None else None
        if not self.trusted.allows(from_jid, own_domain):
            # Only the service's gateway rings this softphone: a colleague (or a screen-share, monitor or
            # conference JID) is never offered as a call, never proceeded, never auto-answered.
            kind = classify_peer(from_jid)
            self._refused(f"ignored a proposal {jmi.id} from {from_jid!r} ({kind}): not a trusted softphone peer",
                          from_jid, jmi.id)
            return
        existing = self._find_pending(jmi.id)
        if existing is not None:
            # Same id again (docs/protocol.rst §3.1): answer it again if we already did, stay silent.
            if existing.proceeded and from_jid == existing.info.from_jid:
                self.send(build_jmi("proceed", jmi.id, existing.info.from_jid))
            return
        if jmi.id in self.sessions:
            return
        pending_count = len({id(e) for e in self.pending.values()})
        if pending_count >= self.limits.max_pending_sessions:
            self.report_error(SignalingError(
                f"proposal {jmi.id} ignored: {pending_count} sessions are already pending "
                f"(Limits.max_pending_sessions)"), {"id": jmi.id, "from": from_jid})
            return
        if self._live_sessions() >= self.limits.max_sessions:
            self.report_error(SignalingError(
                f"proposal {jmi.id} ignored: {self._live_sessions()} calls are live (Limits.max_sessions)"),
                {"id": jmi.id, "from": from_jid})
            return
        try:
            address = Jid.parse(from_jid).local if from_jid else ""
        except ValueError:
            address = from_jid
        if jmi.sdp_over_xmpp:
            # Remembered per sid, so a later propose cannot overwrite it (docs/protocol.rst §8 #22).
            self._remember_sdp_mode(jmi.id)
        info = PendingSession(
            id=jmi.id,
            address=address,
            conversation_id=jmi.conversation_id,
            auto_answer=jmi.auto_answer,
            from_jid=from_jid,
            persistent_connection_id=jmi.attrs.get("inin-persistent-cid"),
        )
        if info.conversation_id:
            for other in list(self.pending.values()):
                if other.info.conversation_id == info.conversation_id and other.info.id != info.id:
                    # A re-proposal of the same conversation with a new id: adopt the new id, keep the
                    # conversation id, and keep the user's view (one pending session) unchanged.
                    self._drop_pending(other)
                    entry = _Pending(info, other.proceeded, other.options, [other.info.id, *other.aliases])
                    for key in [info.id, *entry.aliases]:
                        self.pending[key] = entry
                    if other.proceeded:
                        self.send(build_jmi("proceed", info.id, from_jid))
                    self.trace("info", f"re-proposal {info.id} of conversation {info.conversation_id}",
                               {"id": info.id, "previous": other.info.id})
                    return
        entry = _Pending(info)
        self.pending[info.id] = entry
        self.trace("info", f"pending session {info.id} from {from_jid} (conversation {info.conversation_id}, "
                           f"autoAnswer {info.auto_answer})", {"id": info.id})
        self.sdk._emit("pendingSession", info)
        if info.auto_answer and self.options.auto_answer_outbound_calls:
            self.loop.create_task(self._auto_accept(info.id))

    async def _auto_accept(self, sid: str) -> None:
        try:
            await self.accept_pending(sid, AcceptOptions())
        except (SessionNotFoundError, SessionStateError):
            pass  # the user (or a retract) got there first
        except Exception as exc:
            self.report_error(exc, {"id": sid, "action": "auto-answer"})

    async def reject_pending(self, sid: str) -> PendingSession:
        """Forget pending ``sid`` (being declined by the user)."""
        entry = self._find_pending(sid)
        if entry is None:
            raise SessionNotFoundError(
                f"Cannot reject session {sid} because it is not pending or does not exist", session_id=sid)
        self._drop_pending(entry)
        self.trace("info", f"pending session {entry.info.id} rejected", {"id": entry.info.id})
        return entry.info

    async def send_reject(self, info: PendingSession) -> None:
        """XEP-0353 ``reject`` to the proposer and to our own bare JID (docs/protocol.rst §3.4)."""
        for to in (info.from_jid, str(self.jid)):
            try:
                self.send(build_jmi("reject", info.id, to))
            except ConnectionFailedError:
                pass

    async def accept_pending(self, sid: str, options: AcceptOptions) -> None:
        """Send ``proceed`` for pending session ``sid`` and remember how to answer its session-initiate."""
        entry = self._find_pending(sid)
        if entry is None:
            raise SessionNotFoundError(
                f"Cannot accept session {sid} because it is not pending or does not exist", session_id=sid)
        if entry.proceeded:
            raise SessionStateError(f"pending session {sid} was already accepted", session_id=sid)
        if self.stream is None or self.stream.state != "connected":
            raise ConnectionFailedError("cannot accept a pending session while disconnected")
        entry.proceeded = True
        entry.options = options
        self.send(build_jmi("proceed", entry.info.id, entry.info.from_jid))
        self.trace("info", f"proceed sent for {entry.info.id}", {"id": entry.info.id})

    # -- Jingle ---------------------------------------------------------------------------------

    def _on_iq(self, el: Element) -> bool:
        rpc = el.find(q("genesys", "genesys-webrtc"))
        if rpc is not None:
            # §5: the client never answers these IQs; bad ones are reported, not answered.
            if el.get("type") == "set":
                try:
                    message = parse_rpc(rpc)
                except ValueError as exc:
                    self.report_error(SignalingError(str(exc)), {"stanza": X.to_string(el)[:500]})
                    return True
                self._on_rpc(el, message)
            return True
        jingle = el.find(q("jingle", "jingle"))
        if jingle is None:
            if el.get("type") == "set" and el.find(q("cxfr", "query")) is not None:
                # Connection transfer (XEP-0051 as Hawk uses it for socket_closing): SC answers nothing
                # and reconnects at once (docs/protocol.rst §2.6).
                self.force_reconnect("connection transfer requested by the server")
                return True
            return False
        if el.get("type") != "set":
            self.send(error_reply(el, "bad-request", "modify", text="Jingle is carried by IQ set"))
            return True
        action = jingle.get("action") or ""
        sid = jingle.get("sid") or ""
        if not action or not sid:
            self.send(error_reply(el, "bad-request", "modify", text="jingle without action or sid"))
            return True
        session = self.sessions.get(sid)
        frm = el.get("from") or ""
        if action == "session-initiate":
            entry = self._find_pending(sid)
            if session is not None and not session.ended:
                expected = session.peer
            elif entry is not None and entry.proceeded:
                expected = entry.info.from_jid
            else:
                expected = None
            if expected is None or frm != expected:
                # Only the full JID we proceeded to may start the session we proceeded: a session-initiate
                # from anybody else, or without our proceed, would otherwise be answered with the microphone.
                self.send(unknown_session_error(el))
                self._refused(f"refused a session-initiate for {sid} from {frm!r}: "
                              + ("no proceed was sent for it" if expected is None else "not the proceeded peer"),
                              frm, sid)
                return True
            if sid in self.sdp_mode_sids:
                # This call negotiates with JSON-RPC: the Jingle twin is ignored (SC 19.2.2, §4.1).
                self.send(result_reply(el))
                self.trace("debug", f"ignored Jingle session-initiate for SDP-over-XMPP session {sid}")
                return True
            if session is not None:
                self.send(error_reply(el, "unexpected-request", "wait",
                                      app=element(q("jingle_errors", "out-of-order"))))
                return True
            if self._live_sessions() >= self.limits.max_sessions:
                self.send(error_reply(el, "resource-constraint", "wait", text="too many live calls"))
                self.report_error(SignalingError(
                    f"session {sid} refused: {self._live_sessions()} calls are live (Limits.max_sessions)"),
                    {"session_id": sid})
                return True
            assert entry is not None
            self._drop_pending(entry)
            session = JingleSession(self, sid, frm, entry.info.conversation_id)
            self.sessions[sid] = session
            self.loop.create_task(self._initiate(session, el, jingle, entry))
            return True
        if session is None or frm != session.peer or session.ended:
            if action == "session-terminate" and (session is None or session.ended):
                self.send(result_reply(el))  # stanza 12: terminate for an unknown sid is acknowledged
            else:
                # A live session's stanzas come from its peer only: anybody else could end or steer it.
                self.send(unknown_session_error(el))
                if session is not None:
                    self._refused(f"refused Jingle {action} for {sid} from {frm!r}, not the session's peer",
                                  frm, sid)
            return True
        if action == "transport-info":
            self.send(result_reply(el))
            self.loop.create_task(session.on_transport_info(jingle))
        elif action == "session-terminate":
            self.send(result_reply(el))
            self.loop.create_task(session.on_terminate(jingle))
        elif action == "session-info":
            payload = list(jingle)
            known = {"active", "hold", "unhold", "mute", "unmute", "ringing"}
            if not payload or all(X.split(p.tag) in [(NS["rtp_info"], k) for k in known] for p in payload):
                self.send(result_reply(el))
            else:
                self.send(error_reply(el, "feature-not-implemented", "modify",
                                      app=element(q("jingle_errors", "unsupported-info"))))
        elif action == "session-accept":
            self.send(error_reply(el, "unexpected-request", "wait", app=element(q("jingle_errors", "out-of-order"))))
        else:
            self.send(error_reply(el, "feature-not-implemented", "cancel",
                                  text=f"Jingle action {action} is not supported"))
        return True

    async def _initiate(self, session: JingleSession, iq: Element, jingle: Element, entry: Optional[_Pending]) -> None:
        try:
            ok = await session.on_initiate(iq, jingle)
        except Exception as exc:
            ok = False
            self.report_error(exc, {"session_id": session.sid, "action": "session-initiate"})
        if not ok:
            self.sessions.pop(session.sid, None)
            session.state = SessionState.ENDED
            return
        await self._session_started(session, entry)

    # -- SDP over XMPP (docs/protocol.rst §5) ----------------------------------------------------------

    def _rpc_peer(self, sid: str) -> Optional[str]:
        """The only JID that may send JSON-RPC about ``sid``: its session's peer, or the peer we proceeded to."""
        session = self.sessions.get(sid)
        if session is not None and not session.ended:
            return session.peer
        entry = self._find_pending(sid)
        if entry is not None and entry.proceeded:
            return entry.info.from_jid
        return None

    def _remember_sdp_mode(self, sid: str) -> None:
        now = time.monotonic()
        self.sdp_mode_sids[sid] = now
        if len(self.sdp_mode_sids) <= self.limits.max_sdp_mode_sessions:
            return
        live = set(self.sessions) | set(self.pending)
        for old in sorted(self.sdp_mode_sids, key=self.sdp_mode_sids.__getitem__):
            if len(self.sdp_mode_sids) <= self.limits.max_sdp_mode_sessions:
                break
            if old not in live or now - self.sdp_mode_sids[old] > SDP_MODE_TTL:
                del self.sdp_mode_sids[old]

    def _remember_offer(self, rpc_id: str, now: float) -> bool:
        """``False`` when this JSON-RPC offer id was seen within ``duplicate_offer_ttl`` (a repeated reinvite)."""
        ttl = self.limits.duplicate_offer_ttl
        for key in [k for k, t in self._seen_offers.items() if now - t >= ttl]:
            del self._seen_offers[key]
        if rpc_id in self._seen_offers:
            return False
        self._seen_offers[rpc_id] = now
        while len(self._seen_offers) > self.limits.max_remembered_offers:
            del self._seen_offers[next(iter(self._seen_offers))]  # the oldest (dicts keep insertion order)
        return True

    def _on_rpc(self, iq: Element, message: Any) -> None:
        sid = message.session_id
        params = message.params
        session = self.sessions.get(sid)
        now = time.monotonic()
        frm = iq.get("from") or ""
        expected = self._rpc_peer(sid)
        if expected is None or frm != expected:
            # Offers, candidates and terminates only from the peer of a session we proceeded; a stranger
            # could otherwise end a live call, replace it, or make us hold sockets for sessions nobody asked for.
            self.send(unknown_session_error(iq))
            self._refused(f"refused JSON-RPC {message.method} for {sid} from {frm!r}: "
                          + ("no proceed was sent for it" if expected is None else "not the session's peer"), frm, sid)
            return
        if message.method == "offer":
            sdp = params.get("sdp")
            if not isinstance(sdp, str) or not sdp:
                self.report_error(SignalingError(f"JSON-RPC offer for {sid} without sdp"), {"session_id": sid})
                return
            if message.id is not None and not self._remember_offer(message.id, now):
                return  # the gateway repeats a reinvite until answered: once is enough (§5, §8 #23)
            self._remember_sdp_mode(sid)
            conversation_id = params.get("conversationId") or None
            if session is not None and not session.ended:
                same_ice = ice_credentials(sdp) == ice_credentials(session.remote_sdp or "")
                if same_ice and not params.get("reinvite"):
                    if conversation_id:
                        session.conversation_id = conversation_id
                    self.loop.create_task(session.on_rpc_renegotiate(sdp))
                    return
                # New ICE credentials or reinvite: a brand-new session replaces this one.
                self.sessions.pop(sid, None)
                self.loop.create_task(session.finish("alternative-session", send=False))
            entry = self._find_pending(sid)
            if session is None and self._live_sessions() >= self.limits.max_sessions:
                self.report_error(SignalingError(
                    f"offer for {sid} refused: {self._live_sessions()} calls are live (Limits.max_sessions)"),
                    {"session_id": sid})
                return
            if entry is not None:
                self._drop_pending(entry)
            if conversation_id is None and entry is not None:
                conversation_id = entry.info.conversation_id
            if conversation_id is None and session is not None:
                conversation_id = session.conversation_id
            new = JingleSession(self, sid, frm, conversation_id)
            new.mode = "rpc"
            self.sessions[sid] = new
            self.loop.create_task(self._initiate_rpc(new, sdp, entry))
        elif message.method == "iceCandidate":
            fragment = str(params.get("sdp") or "")
            if session is None or session.state == SessionState.STARTING:
                # Before the offer, or while it is being applied: kept in order and handed to the session
                # when the offer is in (STREAM-207, §5).
                early = self._early_candidates.setdefault(sid, [])
                if len(early) >= self.limits.max_early_candidates:
                    if len(early) == self.limits.max_early_candidates:
                        early.append((now, ""))  # a marker: reported once
                        self.report_error(SignalingError(
                            f"session {sid}: more than {self.limits.max_early_candidates} candidates before its "
                            "offer; the rest are ignored (Limits.max_early_candidates)"), {"session_id": sid})
                    return
                early.append((now, fragment))
                live = sorted(self._early_candidates, key=lambda k: self._early_candidates[k][-1][0])
                for old in live[:-self.limits.max_early_candidate_sessions]:
                    del self._early_candidates[old]
                return
            self.loop.create_task(session.on_rpc_candidate(fragment))
        elif message.method == "terminate":
            if session is not None:
                self.loop.create_task(session.finish(str(params.get("reason") or "success"), send=False))
            else:
                entry = self._find_pending(sid)
                if entry is not None:  # the caller hung up before the offer: stop ringing
                    self._drop_pending(entry)
                    self.sdk._emit("cancelPendingSession", entry.info.id)
        else:
            self.trace("debug", f"JSON-RPC {message.method} for {sid} ignored", {"session_id": sid})

    async def _initiate_rpc(self, session: JingleSession, sdp: str, entry: Optional[_Pending]) -> None:
        def take_early() -> List[str]:
            now = time.monotonic()
            return [fragment for at, fragment in self._early_candidates.pop(session.sid, [])
                    if fragment and now - at <= self.limits.early_candidate_ttl]

        try:
            ok = await session.on_rpc_offer(sdp, take_early)
        except Exception as exc:
            ok = False
            self.report_error(exc, {"session_id": session.sid, "action": "offer"})
        if not ok:
            self.sessions.pop(session.sid, None)
            self._early_candidates.pop(session.sid, None)
            session.state = SessionState.ENDED
            return
        await self._session_started(session, entry)

    async def _session_started(self, session: JingleSession, entry: Optional[_Pending]) -> None:
        # XEP-0353 accept to our own bare JID only now, so other devices stop ringing (§3.3, SC 11).
        if self.jid is not None:
            try:
                self.send(build_jmi("accept", session.sid, str(self.jid)))
            except ConnectionFailedError:
                pass
        self.trace("info", f"session {session.sid} started", {"id": session.sid})
        self.sdk._emit("sessionStarted", session.public)
        options = entry.options if entry is not None else AcceptOptions()
        session.deferred_options = options  # type: ignore[attr-defined]
        auto = options.auto_connect_session
        if auto is None:
            auto = self.options.auto_connect_sessions
        if auto:
            try:
                await self.accept_session(session, options.source, options.sink, options.auto_start_media)
            except Exception as exc:
                self.report_error(exc, {"session_id": session.sid, "action": "accept"})

    async def accept_session(self, session: JingleSession, source: Any, sink: Any, auto_start_media: bool) -> None:
        """Resolve media (off-loop: devices may be slow) and answer ``session``."""
        from .media import resolve_sink, resolve_source

        deferred: AcceptOptions = getattr(session, "deferred_options", AcceptOptions())
        if source is None:
            source = deferred.source
        if sink is None:
            sink = deferred.sink
        # A default source/sink given as an object is shared by every session: the SDK owns it (closed by
        # close()), a session must not close it when it ends.  Anything resolved per session is the session's.
        owns_source = owns_sink = True
        if source is None and auto_start_media and deferred.auto_start_media:
            source = self.options.default_source
            owns_source = not _is_media_object(source)
            source_obj = await self.run_blocking(resolve_source, source, logger=self.log)
        elif source is None:
            source_obj = None
        else:
            source_obj = await self.run_blocking(resolve_source, source, logger=self.log)
        if sink is None:
            sink = self.options.default_sink
            owns_sink = not _is_media_object(sink)
        sink_obj = await self.run_blocking(resolve_sink, sink, logger=self.log)
        try:
            await session.accept(source_obj, sink_obj, owns_source=owns_source, owns_sink=owns_sink)
        except BaseException:
            for obj in (source_obj, sink_obj):
                if obj is not None and obj not in (session.source, session.sink):
                    await self.run_blocking(obj.close)
            raise

    def _live_sessions(self) -> int:
        return sum(1 for s in self.sessions.values() if not s.ended)

    def candidate_filter(self) -> CandidateFilter:
        """The remote-candidate filter for the policy in force now (it can change with each ICE refresh)."""
        return CandidateFilter(self.ice_transport_policy, self.options.ice_host_addresses)

    def forget_session(self, session: JingleSession) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
