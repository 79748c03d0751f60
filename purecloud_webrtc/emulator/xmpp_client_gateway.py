"""The emulator's gateway as an ordinary client of a real XMPP server.

Normally the emulator is itself the XMPP server: the gateway hands its stanzas
to the in-process :class:`~purecloud_webrtc.emulator.streaming.XmppRouter`.  With
``Emulator(xmpp_server=XmppServerLogin(...))`` the gateway instead logs in to
another server (Prosody in the interop tests) as a plain user over RFC 7395, and
its XEP-0353 proposals and Jingle IQs reach the SDK through that server.  This
is how the suite checks that what the SDK and the emulator say to each other is
also what an independent XMPP implementation routes.

:class:`XmppClientRouter` stands in for the router on the gateway side only:
``deliver`` sends through the client stream, and every stanza the server hands
the client goes to :meth:`Gateway.handle_stanza <purecloud_webrtc.emulator.party.Gateway.handle_stanza>`,
with the router itself as the "connection" that replies.  When the server goes
away the client logs in again by itself (same resource, so the gateway's full
JID, which live calls know, does not change).

Threads: everything runs on the emulator's loop; the client stream has its own
WebSocket reader thread (``pcw-ws-N``) like the SDK's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from .._xml import Element, split, to_string
from ..errors import PureCloudWebrtcError
from ..xmpp.stream import Jid, XmppStream

if TYPE_CHECKING:  # pragma: no cover
    from ._state import EmulatedUser, EmulatorState
    from .party import Gateway

__all__ = ["XmppServerLogin", "XmppClientRouter"]


@dataclass(frozen=True)
class XmppServerLogin:
    """Where and as whom the gateway logs in.

    :param url: the server's RFC 7395 endpoint, e.g. ``ws://127.0.0.1:5280/xmpp-websocket``
        (must be on 127.0.0.1: the emulator talks to loopback only).
    :param jid: the gateway account's bare JID.
    :param password: its password (sent with SASL PLAIN).
    :param resource: the resource to bind; it becomes part of the gateway's full JID.
    """

    url: str
    jid: str
    password: str
    resource: str = "gateway"


class _GatewayStream(XmppStream):
    """A client stream that hands IQ answers it did not ask for to the gateway.

    The gateway correlates its own Jingle IQs (``Gateway.send_iq``), so a result or
    error whose id this stream does not know is the gateway's, not noise.
    """

    on_foreign_reply: Optional[Callable[[Element], None]] = None

    def _handle_iq(self, el: Element) -> None:
        if el.get("type") in ("result", "error") and (el.get("id") or "") not in self._pending:
            if self.on_foreign_reply is not None:
                self.on_foreign_reply(el)
            return
        super()._handle_iq(el)


class XmppClientRouter:
    """The gateway's side of the emulator, logged in to a real XMPP server.

    :param login: server URL and account.
    :param state: the emulator state (its condition variable wakes waiters).
    :param loop: the emulator loop.
    :param logger: the emulator's logger.
    :param reconnect_delays: seconds to wait before each new login attempt after the server
        went away (the last one repeats).
    """

    def __init__(
        self,
        login: XmppServerLogin,
        state: "EmulatorState",
        loop: asyncio.AbstractEventLoop,
        logger: logging.Logger,
        *,
        reconnect_delays: "tuple[float, ...]" = (0.1, 0.2, 0.5, 1.0),
    ) -> None:
        if not login.url.startswith(("ws://127.0.0.1:", "wss://127.0.0.1:")):
            raise ValueError(f"the emulator talks to 127.0.0.1 only; not {login.url!r}")
        self.login = login
        self.state = state
        self.loop = loop
        self.logger = logger
        self.gateway: Optional["Gateway"] = None
        self.reconnect_delays = reconnect_delays
        self._stream: Optional[_GatewayStream] = None
        self._closing = False
        self._reconnect_task: Optional["asyncio.Task[None]"] = None
        #: how many times the client has bound (1 after the first login).
        self.logins = 0

    # -- connection ----------------------------------------------------------

    @property
    def full_jid(self) -> str:
        """The gateway's bound full JID (``jid/resource``)."""
        return f"{Jid.parse(self.login.jid).bare}/{self.login.resource}"

    @property
    def connected(self) -> bool:
        """Whether the client stream is bound now."""
        return self._stream is not None and self._stream.state == "connected"

    async def connect(self) -> None:
        """Log in (open, SASL PLAIN, bind) and start handing stanzas to the gateway.

        :raises PureCloudWebrtcError: the server refused or could not be reached.
        """
        stream = _GatewayStream(
            self.loop,
            url=self.login.url,
            jid=Jid.parse(self.login.jid),
            password=lambda: self.login.password,
            resource=self.login.resource,
            on_message=self._on_stanza,
            on_iq=self._on_iq,
            on_closed=lambda reason: self._on_closed(stream, reason),
            connect_timeout=10.0,
            ping_interval=0,  # the server is on loopback; a dead one shows as a closed socket
        )
        stream.on_foreign_reply = self._on_stanza
        self._stream = stream
        bound = await stream.connect()
        if str(bound) != self.full_jid:
            self.logger.warning("gateway bound as %s, not %s", bound, self.full_jid)
        self.logins += 1
        self.state.changed()
        self.logger.info("gateway logged in to %s as %s", self.login.url, bound)

    def _on_closed(self, stream: XmppStream, reason: str) -> None:
        if stream is not self._stream or self._closing:
            return
        self.logger.warning("gateway's XMPP connection lost (%s); logging in again", reason)
        self.state.changed()
        if self._reconnect_task is None:
            self._reconnect_task = self.loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        try:
            while not self._closing:
                await asyncio.sleep(self.reconnect_delays[min(attempt, len(self.reconnect_delays) - 1)])
                attempt += 1
                try:
                    await self.connect()
                    return
                except PureCloudWebrtcError as exc:
                    self.logger.info("gateway login attempt %d failed: %s", attempt, exc)
        finally:
            self._reconnect_task = None

    async def close(self) -> None:
        """Log out (``<close/>``) and stop reconnecting (emulator stop)."""
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close(timeout=0.5)
            transport = stream.transport
            if transport is not None:
                await self.loop.run_in_executor(None, transport.join, 2.0)

    # -- the router interface the gateway uses --------------------------------

    def deliver(self, el: Element) -> int:
        """Send a gateway stanza through the server; returns 1 if it left, 0 when not connected.

        The server stamps ``from`` itself (and would refuse another one).
        """
        el.attrib.pop("from", None)
        stream = self._stream
        if stream is None or stream.state != "connected":
            self.logger.info("gateway not connected; %s to %s dropped", split(el.tag)[1], el.get("to"))
            return 0
        try:
            stream.send(el)
        except PureCloudWebrtcError as exc:
            self.logger.info("gateway could not send to %s: %s", el.get("to"), exc)
            return 0
        return 1

    def send(self, el: Element) -> None:
        """Reply on behalf of the gateway (the "connection" that :meth:`Gateway.handle_stanza` answers on)."""
        self.deliver(el)

    def bound(self, user: "EmulatedUser") -> List[Any]:
        """Which of ``user``'s resources are bound is the server's business; the gateway does not know."""
        return []

    def publish(self, user: "EmulatedUser", topic: str, body: Any) -> int:
        """Notification-service events are not the XMPP server's to send: none go out (returns 0)."""
        return 0

    # -- stanzas from the server -----------------------------------------------

    def _on_stanza(self, el: Element) -> None:
        gateway = self.gateway
        if gateway is None:
            return
        try:
            gateway.handle_stanza(self, el)  # type: ignore[arg-type]
        except Exception:  # one bad stanza must not take the gateway down
            self.logger.exception("gateway could not handle %s", to_string(el)[:300])

    def _on_iq(self, el: Element) -> bool:
        self._on_stanza(el)
        return True
