"""Connect, reconnect with back-off, ICE servers (XEP-0215) and their refresh, the stream's end.

A part of :class:`~purecloud_webrtc._core.Core` (a mixin): the state it uses lives on the core,
which owns all protocol state on its one loop thread; every method runs on that thread.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from . import _ice
from . import _xml as X
from ._xml import element, q
from .errors import (
    AuthenticationError,
    ClosedError,
    ConnectionFailedError,
    PureCloudWebrtcError,
    SignalingError,
)
from .xmpp.stream import Jid, XmppStream

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core  # noqa: F401
    from .sdk import PureCloudWebrtcSdk  # noqa: F401


__all__ = ["Connection"]


class Connection:
    """Connect, reconnect with back-off, ICE servers (XEP-0215) and their refresh, the stream's end (mixed into ``Core``)."""

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
            transport_factory=self.sdk._xmpp_transport,
        )
        stream.on_bad_input = lambda exc, text: self.report_error(
            SignalingError(f"bad input from the server: {exc}"), {"frame": text[:500]})
        self.stream = stream
        # Until every phase is done this stream is an attempt: its loss fails this connect() (whose caller
        # decides: initialize() raises, the reconnect loop tries again), it is never a "disconnected" of its own.
        self._connecting_stream = stream
        try:
            await stream.connect()
            self._check_alive(stream, "binding")
            if self.options.ice_servers is None:
                await self.refresh_ice_servers()
            self._check_alive(stream, "ICE server discovery")
            stream.start_pings()
            if self.options.subscribe_conversations:
                await self._subscribe_conversations()
            self._check_alive(stream, "the notification subscription")
        except BaseException as exc:
            stream.attempt_failed = True  # its on_closed (now or later) is not a disconnect to announce
            self._connecting_stream = None
            stream.abort(f"connect failed: {exc}")
            if self.state == "connecting":
                self.state = "disconnected"
            raise
        # From here to the event, nothing awaits: a loss now is an ordinary disconnect of a connected stream.
        self._connecting_stream = None
        self.state = "connected"
        self._cleanup_orphaned_sessions()
        if reconnect:
            self._reconcile_pending()
            for session in list(self.sessions.values()):
                session.resend_lost_iqs()
        if self.options.ice_servers is None and self._ice_refresh_task is None:
            self._ice_refresh_task = self.loop.create_task(self._refresh_ice_periodically())
        self.trace("info", f"connected as {stream.full_jid}", {"jid": str(stream.full_jid), "reconnect": reconnect})
        self.sdk._emit("connected", {"reconnect": reconnect, "jid": str(stream.full_jid)})

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
        # server at all the official client would gather nothing and carry no audio; we keep host candidates,
        # unless relay_without_stun asks for the official rule.
        if not stun and (turn or self.options.relay_without_stun):
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

    def _check_alive(self, stream: XmppStream, phase: str) -> None:
        if stream.state != "connected" or stream is not self.stream:
            raise ConnectionFailedError(f"the streaming connection was lost during {phase}")

    def _on_stream_closed(self, stream: XmppStream, reason: str) -> None:
        if stream is not self.stream:
            return
        if stream is self._connecting_stream or getattr(stream, "attempt_failed", False):
            # An attempt that never became "connected": connect() raises; nothing to announce or restart.
            self.trace("info", f"streaming connection attempt lost: {reason}", {"reason": reason})
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
                    # Done, with no await since "connected": a loss from now on must start a new loop.
                    self._reconnect_task = None
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
            if self._reconnect_task is asyncio.current_task():
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
        self.release_all_pending()
