"""The emulated streaming service: XMPP over WebSocket (RFC 7395) and stanza routing.

One :class:`XmppConnection` per WebSocket at ``/stream/channels/{channelId}``
walks the stream through open → SASL PLAIN → restart → bind (docs/protocol.rst
§2.2–2.4); the :class:`XmppRouter` then delivers what bound clients send:
IQs to the server (ping, XEP-0215 ``services``, disco#info), messages to a bare
JID to every bound resource of that user (the sender included, §2.4), stanzas to
a full JID to that resource, and stanzas to the gateway domain to the calls
(:mod:`.party`).  Everything here runs on the emulator's loop thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import uuid
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

from .._xml import NS, Element, XmlError, element, parse, q, split, sub, to_string
from ._state import EmulatedUser, EmulatorState

if TYPE_CHECKING:  # pragma: no cover
    from .party import Gateway

__all__ = ["XmppConnection", "XmppRouter", "iq_error", "ice_services"]

_CLOSE = object()
_ABORT = object()

#: Features of the emulated server in disco#info answers.
SERVER_FEATURES = (NS["disco_info"], NS["ping"], NS["extdisco"])


def bare(jid: str) -> str:
    """Bare part of ``jid``."""
    return jid.split("/", 1)[0]


def domain_of(jid: str) -> str:
    """Domain part of ``jid`` (lower-case)."""
    return bare(jid).rsplit("@", 1)[-1].lower()


def iq_error(
    iq: Element,
    condition: str,
    *,
    error_type: str = "cancel",
    extra: Optional[Element] = None,
    text: Optional[str] = None,
) -> Element:
    """An ``<iq type="error">`` answering ``iq`` (whose ``from`` must be stamped).

    :param condition: an RFC 6120 stanza error condition (``service-unavailable``…).
    :param extra: an application-specific condition (e.g. Jingle ``unknown-session``).
    """
    reply = element(
        q("client", "iq"), {"type": "error", "id": iq.get("id"), "from": iq.get("to"), "to": iq.get("from")}
    )
    err = sub(reply, q("client", "error"), type=error_type)
    sub(err, q("stanzas", condition))
    if text:
        sub(err, q("stanzas", "text"), text=text)
    if extra is not None:
        err.append(extra)
    return reply


def iq_result(iq: Element, *children: Element) -> Element:
    """An ``<iq type="result">`` answering ``iq`` (whose ``from`` must be stamped)."""
    return element(
        q("client", "iq"), {"type": "result", "id": iq.get("id"), "from": iq.get("to"), "to": iq.get("from")}, *children
    )


def _service_from_url(url: str, server: Any) -> Optional[dict[str, str]]:
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme not in ("turn", "turns", "stun", "stuns") or not rest:
        return None
    rest, _, query = rest.partition("?")
    host, port = rest, ""
    if rest.startswith("["):  # [v6]:port
        host, _, tail = rest[1:].partition("]")
        port = tail.lstrip(":")
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    attrs = {"type": scheme, "host": host}
    if port:
        attrs["port"] = port
    if scheme.startswith("turn"):
        transport = parse_qs(query).get("transport", ["udp"])[0]
        attrs["transport"] = transport
        for key, attr in (("username", "username"), ("credential", "password")):
            value = server.get(key) if isinstance(server, dict) else getattr(server, key, None)
            if value is not None:
                attrs[attr] = str(value)
    return attrs


def ice_services(ice_servers: Sequence[Any], kind: Optional[str]) -> list[dict[str, str]]:
    """Turn RTCIceServer-like dicts (or objects) into XEP-0215 ``<service/>`` attributes.

    :param kind: ``"turn"``, ``"stun"`` or ``None`` for both; ``turns``/``stuns``
        count with their plain kind.
    """
    services = []
    for server in ice_servers:
        urls = server.get("urls") if isinstance(server, dict) else getattr(server, "urls", None)
        if urls is None and isinstance(server, dict):
            urls = server.get("url")
        if isinstance(urls, str):
            urls = [urls]
        for url in urls or []:
            attrs = _service_from_url(url, server)
            if attrs is None:
                continue
            if kind is None or attrs["type"].rstrip("s") == kind:
                services.append(attrs)
    return services


class XmppConnection:
    """One client WebSocket: the RFC 7395 stream, SASL and bind; then hands stanzas to the router.

    Frames go out through a queue drained by one writer task, so the order of
    :meth:`send` calls is the order on the wire (and in the wire log).

    :param router: the router that owns every connection of this emulator.
    :param ws: the prepared aiohttp WebSocket.
    :param request: the HTTP request (for an abrupt transport abort).
    :param channel_id: the notification channel in the URL.
    :param channel_user: the user that created the channel.
    :param number: connection number (wire log key).
    """

    def __init__(
        self,
        router: "XmppRouter",
        ws: web.WebSocketResponse,
        request: web.Request,
        channel_id: str,
        channel_user: EmulatedUser,
        number: int,
    ) -> None:
        self.router = router
        self.ws = ws
        self.request = request
        self.channel_id = channel_id
        self.channel_user = channel_user
        self.number = number
        self.stage = "start"  # start -> sasl -> restart -> bind -> bound -> closed
        self.user: Optional[EmulatedUser] = None
        self.resource: Optional[str] = None
        self.full_jid: Optional[str] = None
        self.closed = False
        #: notification topics this connection subscribed to (XEP-0060 over the stream, §2.7).
        self.topics: set[str] = set()
        self._queue: "asyncio.Queue[object]" = asyncio.Queue()
        self._log = router.logger
        self._wire_log = logging.getLogger(router.logger.name + ".wire")

    def __repr__(self) -> str:
        return f"<XmppConnection #{self.number} {self.full_jid or self.channel_user.jid} {self.stage}>"

    # -- output ------------------------------------------------------------

    def send(self, payload: Union[Element, str]) -> None:
        """Queue one frame (an element is serialised with ``jabber:client`` stanzas explicit)."""
        if self.closed:
            self._log.debug("dropping frame for closed connection #%d", self.number)
            return
        text = payload if isinstance(payload, str) else to_string(payload)
        self.router.state.log_wire(self.number, self.channel_user.id, "out", text)
        self._wire_log.debug("#%d OUT %s", self.number, text)
        self._queue.put_nowait(text)

    def close(self, *, abrupt: bool = False) -> None:
        """Close the socket after the queued frames (or at once, without a WebSocket close, if ``abrupt``)."""
        if self.closed:
            return
        self.closed = True
        self.stage = "closed"
        self.router.unregister(self)
        self._queue.put_nowait(_ABORT if abrupt else _CLOSE)

    def stream_error(self, condition: str, text: Optional[str] = None) -> None:
        """Send ``<stream:error>`` + ``<close/>`` and close (RFC 7395 §3.6)."""
        err = element(q("stream", "error"))
        sub(err, q("streams", condition))
        if text:
            sub(err, q("streams", "text"), text=text)
        self.send(err)
        self.send(element(q("framing", "close")))
        self.close()

    async def _writer(self) -> None:
        while True:
            item = await self._queue.get()
            if item is _ABORT:
                transport = self.request.transport
                if transport is not None:
                    transport.abort()
                return
            if item is _CLOSE:
                await self.ws.close()
                return
            try:
                await self.ws.send_str(item)  # type: ignore[arg-type]
            except (ConnectionError, RuntimeError) as exc:
                self._log.debug("connection #%d: send failed: %s", self.number, exc)
                return

    # -- input -------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the socket closes (the aiohttp handler awaits this)."""
        writer = asyncio.ensure_future(self._writer())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.router.state.log_wire(self.number, self.channel_user.id, "in", "<binary frame>")
                    self.stream_error("not-well-formed", "RFC 7395 allows text frames only")
                else:
                    break
        finally:
            if not self.closed:
                self._log.info("connection #%d (%s) closed by the client", self.number, self.full_jid)
                self.closed = True
                self.stage = "closed"
                self.router.unregister(self)
                self._queue.put_nowait(_CLOSE)
            try:
                await asyncio.wait_for(writer, 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                writer.cancel()
            self.router.state.changed()

    def _on_text(self, text: str) -> None:
        self.router.state.log_wire(self.number, self.channel_user.id, "in", text)
        if self.closed:
            return
        if not text.strip():
            return
        try:
            el = parse(text)
        except XmlError as exc:
            self._wire_log.debug("#%d IN (malformed) %r", self.number, text[:200])
            self._log.warning("connection #%d: %s", self.number, exc)
            self.stream_error("not-well-formed", "frame is not one well-formed XML element")
            return
        if self._wire_log.isEnabledFor(logging.DEBUG):
            shown = "<auth …redacted…/>" if el.tag == q("sasl", "auth") else text
            self._wire_log.debug("#%d IN %s", self.number, shown)
        try:
            self._on_element(el)
        except Exception:  # a bug in the emulator must not kill the socket silently
            self._log.exception("connection #%d: error handling %s", self.number, split(el.tag)[1])
            self.stream_error("internal-server-error")

    def _on_element(self, el: Element) -> None:
        tag = el.tag
        if tag == q("framing", "open"):
            self._on_open(el)
        elif tag == q("framing", "close"):
            self.send(element(q("framing", "close")))
            self.close()
        elif self.stage == "start":
            self.stream_error("not-authorized", "send <open/> first")
        elif self.stage == "sasl":
            if tag == q("sasl", "auth"):
                self._on_auth(el)
            else:
                self.stream_error("not-authorized", "authenticate first")
        elif self.stage == "restart":
            self.stream_error("not-authorized", "restart the stream after SASL success")
        elif self.stage == "bind":
            if tag == q("client", "iq") and el.get("type") == "set" and el.find(q("bind", "bind")) is not None:
                self._on_bind(el)
            else:
                self.stream_error("not-authorized", "bind a resource first")
        elif self.stage == "bound":
            if split(tag)[0] != NS["client"] or split(tag)[1] not in ("iq", "message", "presence"):
                self.stream_error("unsupported-stanza-type")
                return
            assert self.full_jid is not None
            el.set("from", self.full_jid)
            self.router.route_from_client(self, el)

    def _on_open(self, el: Element) -> None:
        if self.stage not in ("start", "restart"):
            self.stream_error("not-authorized", "unexpected <open/>")
            return
        to = (el.get("to") or "").lower()
        reply = element(
            q("framing", "open"),
            {"from": self.router.state.domain, "id": secrets.token_hex(8), "version": "1.0"},
            **{"{http://www.w3.org/XML/1998/namespace}lang": "en"},
        )
        self.send(reply)
        if to != self.router.state.domain:
            self.stream_error("host-unknown", f"this server serves {self.router.state.domain}")
            return
        features = element(q("stream", "features"))
        if self.stage == "start":
            mechs = sub(features, q("sasl", "mechanisms"))
            for name in ("PLAIN", "ANONYMOUS"):
                sub(mechs, q("sasl", "mechanism"), text=name)
            self.stage = "sasl"
        else:
            sub(features, q("bind", "bind"))
            self.stage = "bind"
        self.send(features)

    def _sasl_failure(self, condition: str, text: str) -> None:
        failure = element(q("sasl", "failure"))
        sub(failure, q("sasl", condition))
        sub(failure, q("sasl", "text"), text=text)
        self._log.info("connection #%d: SASL failure %s (%s)", self.number, condition, text)
        self.send(failure)
        self.send(element(q("framing", "close")))
        self.close()

    def _on_auth(self, el: Element) -> None:
        mechanism = el.get("mechanism")
        if mechanism == "ANONYMOUS":
            self._sasl_failure("not-authorized", "ANONYMOUS is for guest (JWT) connections only")
            return
        if mechanism != "PLAIN":
            self._sasl_failure("invalid-mechanism", f"mechanism {mechanism!r} is not offered")
            return
        payload = (el.text or "").strip()
        try:
            raw = b"" if payload in ("", "=") else base64.b64decode(payload, validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            self._sasl_failure("incorrect-encoding", "the PLAIN response is not base64 of UTF-8")
            return
        parts = decoded.split("\0")
        if len(parts) != 3:
            self._sasl_failure("malformed-request", "PLAIN needs authzid NUL authcid NUL password")
            return
        authzid, authcid, password = parts
        if self.router.state.refuse_sasl:
            self._sasl_failure(self.router.state.refuse_sasl, "refused by the emulator's fault injection")
            return
        user = self.router.state.user_by_jid(authcid)
        if user is None:
            self._sasl_failure("not-authorized", "unknown user: authcid must be the user's bare JID")
            return
        if authzid and authzid.lower() != user.jid.lower():
            self._sasl_failure("invalid-authzid", "authzid must be empty or the user's bare JID")
            return
        accepted = {f"authKey:{user.access_token}", f"authKey:{user.access_token}:{self.channel_id}"}
        if not any(secrets.compare_digest(password.encode(), ok.encode()) for ok in accepted):
            self._sasl_failure("not-authorized", "invalid credentials: password must be authKey:{access token}")
            return
        if user.id != self.channel_user.id:
            self._sasl_failure("not-authorized", "this channel belongs to another user")
            return
        self.user = user
        self.stage = "restart"
        self.send(element(q("sasl", "success")))

    def _on_bind(self, el: Element) -> None:
        assert self.user is not None
        requested = (el.findtext(f"{q('bind', 'bind')}/{q('bind', 'resource')}") or "").strip()
        if "/" in requested or len(requested) > 1023:
            reply = iq_error(el, "bad-request", error_type="modify", text="invalid resource")
            self.send(reply)
            return
        resource = requested or str(uuid.uuid4())
        self.resource = resource
        self.full_jid = f"{self.user.jid}/{resource}"
        self.router.register(self)
        self.stage = "bound"
        result = element(q("client", "iq"), {"type": "result", "id": el.get("id")})
        bind = sub(result, q("bind", "bind"))
        sub(bind, q("bind", "jid"), text=self.full_jid)
        self.send(result)
        self._log.info("connection #%d bound %s", self.number, self.full_jid)
        self.router.state.changed()


class XmppRouter:
    """Delivers stanzas between bound connections, the server itself and the gateway.

    :param state: the emulator state.
    :param ice_servers: what XEP-0215 discovery returns (RTCIceServer-like dicts).
    :param logger: the emulator's logger.
    """

    def __init__(self, state: EmulatorState, ice_servers: Sequence[Any], logger: logging.Logger) -> None:
        self.state = state
        self.ice_servers = list(ice_servers)
        self.logger = logger
        self.gateway: Optional["Gateway"] = None
        #: attackers (:class:`~purecloud_webrtc.emulator.intruder.Intruder`) that get a copy of what is sent to them
        self.intruders: list[Any] = []
        self.connections: list[XmppConnection] = []
        self._bound: dict[str, dict[str, XmppConnection]] = {}
        self._numbers = 0

    def next_number(self) -> int:
        """A fresh connection number."""
        self._numbers += 1
        return self._numbers

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        """``GET /stream/channels/{channelId}``: upgrade (subprotocol ``xmpp``) and serve one connection."""
        correlation_id = str(uuid.uuid4())
        channel_id = request.match_info["channel_id"]
        with self.state.cond:
            user = self.state.channels.get(channel_id)

        def refuse(status: int, code: str, message: str) -> web.Response:
            body = {"message": message, "code": code, "status": status, "contextId": correlation_id}
            return web.json_response(body, status=status, headers={"inin-correlation-id": correlation_id})

        if user is None:
            return refuse(404, "not.found", f"Unknown channel {channel_id}.")
        if self.state.refuse_connections:
            return refuse(503, "service.unavailable", "The streaming service is restarting.")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if "xmpp" not in offered:
            return refuse(400, "bad.request", "WebSocket subprotocol 'xmpp' is required (RFC 7395).")
        ws = web.WebSocketResponse(protocols=("xmpp",), max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return refuse(400, "bad.request", "Expected a WebSocket upgrade.")
        ws.headers["inin-correlation-id"] = correlation_id
        await ws.prepare(request)
        conn = XmppConnection(self, ws, request, channel_id, user, self.next_number())
        self.add(conn)
        self.logger.info("connection #%d opened on %s for %s", conn.number, channel_id, user.jid)
        await conn.serve()
        return ws

    async def close_all(self) -> None:
        """Close every connection (emulator stop): ``system-shutdown`` stream error, then the socket."""
        conns = list(self.connections)
        for conn in conns:
            conn.stream_error("system-shutdown", "emulator stopping")
        for conn in conns:
            try:
                await asyncio.wait_for(conn.ws.close(), 2.0)
            except (asyncio.TimeoutError, ConnectionError, RuntimeError):
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()

    # -- registry ----------------------------------------------------------

    def add(self, conn: XmppConnection) -> None:
        """Track a new (not yet bound) connection."""
        with self.state.cond:
            self.connections.append(conn)

    def register(self, conn: XmppConnection) -> None:
        """Bind ``conn``'s full JID; an older connection with that resource is closed (``conflict``)."""
        assert conn.user is not None and conn.resource is not None
        with self.state.cond:
            resources = self._bound.setdefault(conn.user.id, {})
            old = resources.get(conn.resource)
            resources[conn.resource] = conn
        if old is not None and old is not conn:
            self.logger.info("resource %s rebound: closing older connection #%d", conn.full_jid, old.number)
            old.stream_error("conflict", "Replaced by new connection")

    def unregister(self, conn: XmppConnection) -> None:
        """Forget ``conn`` (only if it still owns its resource)."""
        with self.state.cond:
            if conn in self.connections:
                self.connections.remove(conn)
            if conn.user is not None and conn.resource is not None:
                resources = self._bound.get(conn.user.id, {})
                if resources.get(conn.resource) is conn:
                    del resources[conn.resource]
            self.state.cond.notify_all()

    def bound(self, user: EmulatedUser) -> list[XmppConnection]:
        """Bound connections of ``user``, oldest first (any thread)."""
        with self.state.cond:
            return list(self._bound.get(user.id, {}).values())

    def connection_for(self, full_jid: str) -> Optional[XmppConnection]:
        """The connection bound to ``full_jid`` now, if any."""
        user = self.state.user_by_jid(bare(full_jid))
        if user is None or "/" not in full_jid:
            return None
        with self.state.cond:
            return self._bound.get(user.id, {}).get(full_jid.split("/", 1)[1])

    def all_connections(self) -> list[XmppConnection]:
        """Every open connection (bound or not; any thread)."""
        with self.state.cond:
            return list(self.connections)

    # -- delivery ----------------------------------------------------------

    def deliver(self, el: Element) -> int:
        """Deliver a server-side stanza to its ``to``: a bare JID fans out, a full JID goes to one resource.

        :returns: how many connections got it.
        """
        to = el.get("to") or ""
        user = self.state.user_by_jid(bare(to))
        if user is None:
            self.logger.warning("no such user for %s; dropped", to)
            return 0
        if "/" in to:
            conn = self.connection_for(to)
            if conn is None:
                self.logger.info("%s is not bound; stanza dropped", to)
                return 0
            conn.send(el)
            return 1
        targets = self.bound(user)
        for conn in targets:
            conn.send(el)
        if not targets:
            self.logger.info("%s has no bound resource; stanza dropped", to)
        return len(targets)

    def route_from_client(self, conn: XmppConnection, el: Element) -> None:
        """Route a stanza from a bound client (its ``from`` already stamped)."""
        assert conn.user is not None
        kind = split(el.tag)[1]
        to = el.get("to")
        for intruder in self.intruders:
            if to and intruder.matches(to):
                intruder._record(el)
        if kind == "presence":
            self.logger.debug("ignoring presence from %s", conn.full_jid)
            return
        to_domain = domain_of(to) if to else None
        if to is None or to.lower() in (self.state.domain, conn.user.jid.lower()):
            if kind == "iq":
                self._server_iq(conn, el)
            elif to is None or to.lower() == conn.user.jid.lower():
                self._fan_out(conn.user, el)
            return
        if to_domain == self.state.gateway_domain:
            if self.gateway is not None:
                self.gateway.handle_stanza(conn, el)
            elif kind == "iq" and el.get("type") in ("get", "set"):
                conn.send(iq_error(el, "service-unavailable"))
            return
        if to_domain == self.state.domain:
            user = self.state.user_by_jid(bare(to))
            if user is None:
                if kind == "iq" and el.get("type") in ("get", "set"):
                    conn.send(iq_error(el, "service-unavailable"))
                return
            if "/" in to:
                target = self.connection_for(to)
                if target is not None:
                    target.send(el)
                elif kind == "iq" and el.get("type") in ("get", "set"):
                    conn.send(iq_error(el, "service-unavailable"))
                return
            if kind == "message":
                self._fan_out(user, el)
            elif el.get("type") in ("get", "set"):
                conn.send(iq_error(el, "service-unavailable"))
            return
        if kind == "iq" and to_domain is not None and to_domain.startswith("notifications."):
            self._pubsub_iq(conn, el)
            return
        # Any other host (other servers) does not exist here.
        if kind == "iq" and el.get("type") in ("get", "set"):
            conn.send(iq_error(el, "service-unavailable"))
        else:
            self.logger.debug("dropping %s to unknown host %s", kind, to)

    def publish(self, user: EmulatedUser, topic: str, body: Any) -> int:
        """Send a notification-service event on ``topic`` to ``user``'s connections subscribed to it (§2.7)."""
        import json
        from xml.sax.saxutils import escape

        sent = 0
        for conn in self.bound(user):
            if topic not in conn.topics:
                continue
            text = escape(json.dumps({"topicName": topic, "eventBody": body}))
            conn.send(f'<message xmlns="jabber:client" from="notifications.mypurecloud.com" to="{conn.full_jid}">'
                      f'<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="{escape(topic)}"><item>'
                      f'<json xmlns="urn:xmpp:json:0">{text}</json></item></items></event></message>')
            sent += 1
        return sent

    def _pubsub_iq(self, conn: XmppConnection, el: Element) -> None:
        """XEP-0060 subscribe/unsubscribe to a topic of the notification service (``notifications.{env}``)."""
        pubsub = el.find(q("pubsub", "pubsub"))
        if pubsub is None:
            conn.send(iq_error(el, "service-unavailable"))  # the notification service speaks pubsub only
            return
        request = None if pubsub is None else (pubsub.find(q("pubsub", "subscribe"))
                                               if pubsub.find(q("pubsub", "subscribe")) is not None
                                               else pubsub.find(q("pubsub", "unsubscribe")))
        node = request.get("node") if request is not None else None
        if el.get("type") != "set" or not node or conn.user is None:
            conn.send(iq_error(el, "bad-request", error_type="modify", text="expected a pubsub subscribe"))
            return
        if not (node.startswith(f"v2.users.{conn.user.id}.") or node.startswith("v2.system.")):
            conn.send(iq_error(el, "forbidden", text=f"{node} is not a topic of this user"))
            return
        if request is not None and request.tag == q("pubsub", "subscribe"):
            conn.topics.add(node)
        else:
            conn.topics.discard(node)
        conn.send(iq_result(el))

    def _fan_out(self, user: EmulatedUser, el: Element) -> None:
        if el.get("to") is None:
            el.set("to", user.jid)
        for target in self.bound(user):
            target.send(el)

    def _server_iq(self, conn: XmppConnection, el: Element) -> None:
        kind = el.get("type")
        if kind not in ("get", "set"):
            return  # results/errors addressed to the server complete nothing here
        payload = el[0] if len(el) else None
        tag = payload.tag if payload is not None else None
        if kind == "get" and tag == q("ping", "ping"):
            conn.send(iq_result(el))
        elif kind == "get" and tag == q("extdisco", "services"):
            assert payload is not None
            wanted = payload.get("type")
            services = element(q("extdisco", "services"), {"type": wanted})
            for attrs in ice_services(self.ice_servers, wanted):
                sub(services, q("extdisco", "service"), attrs)
            conn.send(iq_result(el, services))
        elif kind == "get" and tag == q("disco_info", "query"):
            assert payload is not None
            query = element(q("disco_info", "query"), {"node": payload.get("node")})
            sub(query, q("disco_info", "identity"), category="server", type="im", name="Genesys Cloud emulator")
            for feature in SERVER_FEATURES:
                sub(query, q("disco_info", "feature"), var=feature)
            conn.send(iq_result(el, query))
        else:
            conn.send(iq_error(el, "service-unavailable"))
