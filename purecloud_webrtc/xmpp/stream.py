"""One XMPP stream over WebSocket (RFC 7395), run entirely on the core loop.

Connect: ``<open/>`` → features → SASL PLAIN with ``authKey:{token}`` (docs/protocol.rst
§2.3) → stream restart → bind (a stable resource, §2.4).  After that the stream
correlates IQs by id, answers pings and disco#info itself, hands every other
stanza to the owner's callbacks, and keeps the connection alive with client
pings (XEP-0199, §2.5).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from .. import _xml as X
from .._xml import NS, Element, element, q
from ..errors import (
    AuthenticationError,
    ClosedError,
    ConnectionFailedError,
    IqError,
    OperationTimeoutError,
    SignalingError,
)
from .transport import WebSocketTransport

__all__ = ["Jid", "XmppStream", "DISCO_FEATURES"]

log = logging.getLogger(__name__)
wire_log = logging.getLogger("purecloud_webrtc.wire")

#: Features we advertise in disco#info (docs/protocol.rst §2.4, with the namespace typo corrected).
DISCO_FEATURES = (
    "http://jabber.org/protocol/disco#info",
    "urn:xmpp:ping",
    "urn:xmpp:extdisco:1",
    "urn:xmpp:jingle:1",
    "urn:xmpp:jingle-message:0",
    "urn:xmpp:jingle:apps:rtp:1",
    "urn:xmpp:jingle:apps:rtp:audio",
    "urn:xmpp:jingle:apps:rtp:rtcp-fb:0",
    "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0",
    "urn:xmpp:jingle:apps:rtp:ssma:0",
    "urn:xmpp:jingle:apps:dtls:0",
    "urn:xmpp:jingle:apps:grouping:0",
    "urn:xmpp:jingle:transports:ice-udp:1",
    "urn:ietf:rfc:3264",
    "urn:ietf:rfc:5576",
    "urn:ietf:rfc:5888",
)


@dataclass(frozen=True)
class Jid:
    """An XMPP address ``local@domain/resource``."""

    local: str
    domain: str
    resource: str = ""

    @classmethod
    def parse(cls, text: str) -> "Jid":
        """Parse ``text``.

        :raises ValueError: when there is no domain.
        """
        if not isinstance(text, str) or not text:
            raise ValueError(f"invalid JID: {text!r}")
        rest, _, resource = text.partition("/")
        local, at, domain = rest.rpartition("@")
        if not at:
            local, domain = "", rest
        if not domain:
            raise ValueError(f"invalid JID (no domain): {text!r}")
        return cls(local, domain.lower(), resource)

    @property
    def bare(self) -> "Jid":
        return Jid(self.local, self.domain)

    def __str__(self) -> str:
        text = f"{self.local}@{self.domain}" if self.local else self.domain
        return f"{text}/{self.resource}" if self.resource else text


def _redact(text: str) -> str:
    # SASL payloads carry the access token; never let them reach a log.
    if "urn:ietf:params:xml:ns:xmpp-sasl" in text and ("<auth" in text or "<response" in text):
        return "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>[redacted]</auth>"
    return text


def _stanza_error(el: Element) -> IqError:
    error = el.find(q("client", "error"))
    condition = app = None
    error_type = error.get("type") if error is not None else None
    text = None
    if error is not None:
        for child in error:
            ns, local = X.split(child.tag)
            if ns == NS["stanzas"]:
                if local == "text":
                    text = (child.text or "").strip()
                else:
                    condition = condition or local
            else:
                app = app or local
    message = f"IQ error {condition or 'undefined-condition'}"
    if app:
        message += f" ({app})"
    if text:
        message += f": {text}"
    return IqError(message, condition=condition, error_type=error_type, app_condition=app)


def error_reply(iq: Element, condition: str, error_type: str = "cancel",
                app: Optional[Element] = None, text: Optional[str] = None) -> Element:
    """Build the ``type="error"`` reply to ``iq`` with an RFC 6120 condition (and an app-specific child)."""
    reply = element(q("client", "iq"), {"type": "error", "id": iq.get("id"), "to": iq.get("from")})
    err = X.sub(reply, q("client", "error"), {"type": error_type})
    X.sub(err, q("stanzas", condition))
    if text:
        X.sub(err, q("stanzas", "text"), text=text)
    if app is not None:
        err.append(app)
    return reply


def result_reply(iq: Element, *children: Element) -> Element:
    """Build the ``type="result"`` reply to ``iq``."""
    return element(q("client", "iq"), {"type": "result", "id": iq.get("id"), "to": iq.get("from")}, *children)


class XmppStream:
    """An XMPP client stream over one WebSocket, owned by the core loop.

    :param url: WebSocket URL of the streaming channel.
    :param jid: the user's bare JID (SASL authcid).
    :param password: returns the SASL password (``authKey:{token}``) when called.
    :param resource: the resource to bind (kept stable across reconnects by the caller).
    :param on_message: called on the loop with every ``<message/>``.
    :param on_iq: called with every IQ get/set the stream does not answer itself;
        returns ``True`` if it will reply, ``False`` to have ``service-unavailable`` sent.
    :param on_closed: called once on the loop when the stream ends after a successful connect,
        with a reason string.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        url: str,
        jid: Jid,
        password: Callable[[], str],
        resource: str,
        on_message: Callable[[Element], None],
        on_iq: Callable[[Element], bool],
        on_closed: Callable[[str], None],
        connect_timeout: float = 15.0,
        iq_timeout: float = 15.0,
        ping_interval: float = 14.0,
        ping_timeout: float = 7.0,
        max_missed_pings: int = 2,
        sslopt: Optional[Dict[str, object]] = None,
        transport_factory: Optional[Callable[..., Any]] = None,
    ) -> None:
        self._loop = loop
        #: makes the socket: ``factory(url, loop, on_frame, on_closed, connect_timeout=, sslopt=, on_oversized=)``
        #: with ``open()``, ``send(text)``, ``close()``, ``join()`` (default: :class:`WebSocketTransport`); the
        #: seam through which protocol tests script a server without a socket
        self._transport_factory = transport_factory or WebSocketTransport
        self.url = url
        self.jid = jid.bare
        self._password = password
        self.resource = resource
        self._on_message = on_message
        self._on_iq = on_iq
        self._on_closed = on_closed
        self.connect_timeout = connect_timeout
        self.iq_timeout = iq_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_missed_pings = max_missed_pings
        self._sslopt = sslopt
        self.full_jid: Optional[Jid] = None
        self.state = "new"
        self.stream_error: Optional[str] = None
        self._transport: Optional[WebSocketTransport] = None
        self._negotiation: "asyncio.Queue[Optional[Element]]" = asyncio.Queue()
        self._pending: Dict[str, asyncio.Future[Element]] = {}
        self._ping_task: Optional[asyncio.Task[None]] = None
        self._close_reason: Optional[str] = None
        self._server_closed = asyncio.Event()
        self.missed_pings = 0
        #: set by the core when this stream's connect attempt failed (its close is then not a disconnect)
        self.attempt_failed = False

    # -- connect ----------------------------------------------------------------------

    async def connect(self) -> Jid:
        """Open the socket, authenticate and bind; return the bound full JID.

        :raises AuthenticationError: SASL refused the token.
        :raises ConnectionFailedError: the socket could not be opened or broke.
        :raises OperationTimeoutError: negotiation took longer than ``connect_timeout``.
        :raises SignalingError: the server broke the protocol.
        """
        self.state = "connecting"
        try:
            return await asyncio.wait_for(self._connect(), self.connect_timeout)
        except asyncio.TimeoutError:
            self.abort("connect timeout")
            raise OperationTimeoutError("connecting the XMPP stream", self.connect_timeout) from None
        except BaseException:
            self.abort("connect failed")
            raise

    async def _connect(self) -> Jid:
        self._transport = self._transport_factory(self.url, self._loop, self._on_frame, self._on_socket_closed,
                                                  connect_timeout=self.connect_timeout, sslopt=self._sslopt,
                                                  on_oversized=self._on_oversized)
        await self._transport.open()
        features = await self._open_stream()
        mechanisms = [(m.text or "").strip() for m in features.iter(q("sasl", "mechanism"))]
        if "PLAIN" not in mechanisms:
            raise SignalingError(f"the server offers no SASL PLAIN (offered: {', '.join(mechanisms) or 'none'})")
        # RFC 4616 PLAIN: no authzid, authcid = bare JID, password = authKey:{token} (docs/protocol.rst §2.3).
        payload = base64.b64encode(f"\0{self.jid}\0{self._password()}".encode()).decode()
        self._send_raw(element(q("sasl", "auth"), {"mechanism": "PLAIN"}, text=payload))
        answer = await self._next_negotiation()
        ns, local = X.split(answer.tag)
        if (ns, local) == (NS["sasl"], "failure"):
            condition = next((X.split(c.tag)[1] for c in answer if X.split(c.tag)[1] != "text"), "not-authorized")
            text = X.child_text(answer, "sasl", "text")
            raise AuthenticationError(
                f"the streaming service refused the access token (SASL {condition}"
                + (f": {text}" if text else "") + ")",
                condition=condition,
            )
        if (ns, local) != (NS["sasl"], "success"):
            raise SignalingError(f"unexpected answer to SASL auth: <{local}>")
        features = await self._open_stream()
        if features.find(q("bind", "bind")) is None:
            raise SignalingError("the server offers no resource binding")
        bind = element(q("bind", "bind"))
        if self.resource:
            X.sub(bind, q("bind", "resource"), text=self.resource)
        result = await self.iq(element(q("client", "iq"), {"type": "set"}, bind))
        jid_text = X.child_text(result.find(q("bind", "bind")), "bind", "jid")
        if not jid_text:
            raise SignalingError("bind result carries no JID")
        self.full_jid = Jid.parse(jid_text)
        if self.full_jid.bare != self.jid:
            log.warning("bound JID %s differs from the user's JID %s", self.full_jid, self.jid)
        # Legacy session establishment only when advertised as required (stanza's behaviour, §2.4).
        session = features.find(q("session", "session"))
        if session is not None and session.find(q("session", "optional")) is None:
            await self.iq(element(q("client", "iq"), {"type": "set"}, element(q("session", "session"))))
        self.state = "connected"
        return self.full_jid

    async def _open_stream(self) -> Element:
        self._send_raw(element(q("framing", "open"), {"to": self.jid.domain, "version": "1.0",
                                                       "{http://www.w3.org/XML/1998/namespace}lang": "en"}))
        opened = await self._next_negotiation()
        if opened.tag != q("framing", "open"):
            raise SignalingError(f"expected <open/>, got <{X.split(opened.tag)[1]}>")
        features = await self._next_negotiation()
        if features.tag != q("stream", "features"):
            raise SignalingError(f"expected <stream:features/>, got <{X.split(features.tag)[1]}>")
        return features

    async def _next_negotiation(self) -> Element:
        el = await self._negotiation.get()
        if el is None:
            if self.stream_error:
                raise SignalingError(f"stream error from the server: {self.stream_error}")
            raise ConnectionFailedError(f"the streaming connection closed during negotiation ({self._close_reason})",
                                        url=self.url)
        return el

    # -- frames in -----------------------------------------------------------------------

    def _on_frame(self, text: str) -> None:
        wire_log.debug("RECV %s", _redact(text))
        try:
            el = X.parse(text)
        except X.XmlError as exc:
            # Not fatal: report and keep the stream (and every call) alive.
            log.warning("ignoring an unparsable frame from the server: %s", exc)
            self._on_bad_input(exc, text)
            return
        ns, local = X.split(el.tag)
        if ns == NS["framing"] and local == "close":
            self._server_closed.set()
            self.abort("closed by server")
            return
        if ns == NS["stream"] and local == "error":
            condition = next((X.split(c.tag)[1] for c in el if X.split(c.tag)[1] != "text"), "undefined-condition")
            self.stream_error = condition
            log.warning("stream error from the server: %s", condition)
            self.abort(f"stream error: {condition}")
            return
        if self.state != "connected" and (ns in (NS["framing"], NS["stream"], NS["sasl"])):
            self._negotiation.put_nowait(el)
            return
        if ns != NS["client"]:
            log.warning("ignoring a top-level <%s xmlns=%r>", local, ns)
            return
        try:
            if local == "iq":
                self._handle_iq(el)
            elif local == "message":
                self._on_message(el)
            # presence: the streaming service never needs it (docs/protocol.rst §2.4)
        except Exception as exc:  # a bug or hostile stanza must not kill the stream
            log.exception("error while handling a <%s/> stanza", local)
            self._on_bad_input(exc, text)

    #: Called with (exception, raw text) for input that could not be handled; the SDK emits ``error``.
    on_bad_input: Optional[Callable[[Exception, str], None]] = None

    def _on_oversized(self, size: int) -> None:
        self._on_bad_input(SignalingError(f"dropped an oversized frame of {size} bytes"), "")

    def _on_bad_input(self, exc: Exception, text: str) -> None:
        if self.on_bad_input is not None:
            self.on_bad_input(exc, text)

    def _handle_iq(self, el: Element) -> None:
        kind = el.get("type")
        iq_id = el.get("id")
        if kind in ("result", "error"):
            future = self._pending.pop(iq_id or "", None)
            if future is None:
                log.debug("ignoring an IQ %s with unknown id %r", kind, iq_id)
                return
            if not future.done():
                if kind == "result":
                    future.set_result(el)
                else:
                    future.set_exception(_stanza_error(el))
            return
        if kind not in ("get", "set") or not iq_id:
            log.warning("ignoring an IQ with type %r and id %r", kind, iq_id)
            return
        payload = next(iter(el), None)
        if payload is None:
            self.send(error_reply(el, "bad-request", "modify"))
            return
        if kind == "get" and payload.tag == q("ping", "ping"):
            self.send(result_reply(el))
            return
        if kind == "get" and payload.tag == q("disco_info", "query"):
            query = element(q("disco_info", "query"))
            X.sub(query, q("disco_info", "identity"), {"category": "client", "type": "pc", "name": "purecloud_webrtc"})
            for feature in DISCO_FEATURES:
                X.sub(query, q("disco_info", "feature"), {"var": feature})
            self.send(result_reply(el, query))
            return
        if not self._on_iq(el):
            self.send(error_reply(el, "service-unavailable"))

    def _on_socket_closed(self, reason: str) -> None:
        if self._close_reason is None:
            self._close_reason = reason
        self._negotiation.put_nowait(None)
        was_connected = self.state == "connected"
        self.state = "closed"
        self._fail_pending(ConnectionFailedError(f"the streaming connection closed ({self._close_reason})", url=self.url))
        if self._ping_task is not None:
            self._ping_task.cancel()
        if was_connected:
            self._on_closed(self._close_reason)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    # -- frames out ----------------------------------------------------------------------

    def _send_raw(self, el: Element) -> None:
        if self._transport is None:
            raise ConnectionFailedError("the streaming connection is not open", url=self.url)
        text = X.to_string(el)
        wire_log.debug("SEND %s", _redact(text))
        self._transport.send(text)

    def send(self, el: Element) -> None:
        """Send one stanza (``jabber:client`` namespace implied).

        :raises ConnectionFailedError: when the stream is not connected.
        """
        if self.state not in ("connected", "connecting"):
            raise ConnectionFailedError("the streaming connection is not connected", url=self.url)
        self._send_raw(el)

    async def iq(self, el: Element, timeout: Optional[float] = None) -> Element:
        """Send an IQ get/set and wait for its result.

        :raises IqError: the peer answered with an error.
        :raises OperationTimeoutError: no answer within ``timeout`` (default ``iq_timeout``).
        :raises ConnectionFailedError: the stream closed first.
        """
        iq_id = el.get("id") or str(uuid.uuid4())
        el.set("id", iq_id)
        future: asyncio.Future[Element] = self._loop.create_future()
        self._pending[iq_id] = future
        try:
            self._send_raw(el)
            return await asyncio.wait_for(future, timeout or self.iq_timeout)
        except asyncio.TimeoutError:
            payload = next(iter(el), None)
            what = X.split(payload.tag)[1] if payload is not None else "empty"
            raise OperationTimeoutError(f"IQ {el.get('type')} <{what}/> to {el.get('to') or 'the server'}",
                                        timeout or self.iq_timeout) from None
        finally:
            self._pending.pop(iq_id, None)

    def send_iq_nowait(self, el: Element, on_error: Optional[Callable[[Exception], None]] = None) -> "asyncio.Task[Optional[Element]]":
        """Send an IQ without waiting; an error answer goes to ``on_error`` (or the log)."""

        async def run() -> Optional[Element]:
            try:
                return await self.iq(el)
            except Exception as exc:  # reported, never raised into the void
                if on_error is not None:
                    on_error(exc)
                else:
                    log.warning("IQ %s failed: %s", el.get("id"), exc)
                return None

        return self._loop.create_task(run())

    # -- keep-alive -------------------------------------------------------------------

    def start_pings(self) -> None:
        """Start client pings: one every ``ping_interval`` s after the previous answer (docs/protocol.rst §2.5)."""
        if self._ping_task is None and self.ping_interval > 0:
            self._ping_task = self._loop.create_task(self._ping_loop())

    async def _ping_loop(self) -> None:
        # One ping every ping_interval s after the previous answer; after a missed pong the next ping goes
        # out at once, so a half-open socket is declared dead within ping_interval + 2 * ping_timeout
        # (14 + 2 * 7 = 28 s by default; docs/protocol.rst §2.5 counts the second consecutive miss).
        wait = self.ping_interval
        while self.state == "connected":
            await asyncio.sleep(wait)
            try:
                await self.iq(element(q("client", "iq"), {"type": "get"}, element(q("ping", "ping"))),
                              timeout=self.ping_timeout)
                self.missed_pings = 0
                wait = self.ping_interval
            except (OperationTimeoutError, IqError) as exc:
                self.missed_pings += 1
                wait = 0.0
                log.warning("ping failed (%d in a row): %s", self.missed_pings, exc)
                if self.missed_pings >= self.max_missed_pings:
                    try:
                        err = element(q("stream", "error"), None,
                                      element(q("streams", "connection-timeout")),
                                      element(q("streams", "text"), text="too many missed pongs"))
                        self._send_raw(err)
                    except ConnectionFailedError:
                        pass
                    self.abort("too many missed pongs")
                    return
            except (ConnectionFailedError, ClosedError) as exc:
                # The ping could not even be sent: the socket is gone, whatever it looked like.
                if self.state == "connected":
                    self.abort(f"ping failed: {exc}")
                return

    # -- close --------------------------------------------------------------------------

    async def close(self, timeout: float = 1.0) -> None:
        """Close politely: ``<close/>``, wait up to ``timeout`` for the server's, then drop the socket."""
        if self._transport is None or self.state == "closed":
            self.abort("closed")
            return
        if self._close_reason is None:
            self._close_reason = "closed"
        try:
            self._send_raw(element(q("framing", "close")))
            await asyncio.wait_for(self._server_closed.wait(), timeout)
        except (ConnectionFailedError, asyncio.TimeoutError):
            pass
        self.abort("closed")

    def abort(self, reason: str) -> None:
        """Drop the socket at once (no closing handshake); ``on_closed`` follows when it was connected."""
        if self._close_reason is None:
            self._close_reason = reason
        if self._ping_task is not None:
            self._ping_task.cancel()
        if self._transport is not None:
            self._transport.close()

    @property
    def transport(self) -> Optional[WebSocketTransport]:
        return self._transport
