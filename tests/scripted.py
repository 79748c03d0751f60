"""A scripted server for protocol tests, through the SDK's transport seams (no socket, no emulator).

In the spirit of slixmpp's scripted test socket: :class:`ScriptedXmpp` is handed to the SDK as
``xmpp_transport=`` and plays the server's side of RFC 7395 (open, SASL PLAIN, bind, XEP-0215, pubsub,
pings); everything else the SDK sends is recorded in :attr:`ScriptedXmpp.sent`, and :meth:`inject` hands
the SDK a frame exactly as the WebSocket thread would.  :class:`ScriptedApi` is a ``requests`` adapter
(``http_adapter=``) that answers the REST calls of a connect.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any, Callable, Dict, List, Optional

import requests
from requests.adapters import BaseAdapter

from purecloud_webrtc import _xml as X

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


class ScriptedApi(BaseAdapter):
    """Answers ``users/me``, ``organizations/me`` and ``notifications/channels`` with fixed JSON."""

    def __init__(self, user_id: str, jid: str) -> None:
        super().__init__()
        self.user_id, self.jid = user_id, jid
        self.requests: List[str] = []

    def send(self, request: Any, **kwargs: Any) -> requests.Response:
        self.requests.append(f"{request.method} {request.path_url}")
        path = request.path_url.split("?")[0]
        if path.endswith("/users/me"):
            body: Any = {"id": self.user_id, "chat": {"jabberId": self.jid}}
        elif path.endswith("/organizations/me"):
            body = {"id": "org-1", "name": "Acme"}
        elif path.endswith("/notifications/channels"):
            body = {"id": "streaming-scripted"}
        else:
            response = requests.Response()
            response.status_code, response._content = 404, b'{"message":"not scripted"}'
            response.request = request
            return response
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        pass


class _Thread:
    """What the SDK may join at close: there is no thread here."""

    def is_alive(self) -> bool:
        return False

    def join(self, timeout: Optional[float] = None) -> None:
        pass


class ScriptedTransport:
    """One scripted socket (made by :class:`ScriptedXmpp`)."""

    def __init__(self, server: "ScriptedXmpp", url: str, loop: asyncio.AbstractEventLoop,
                 on_frame: Callable[[str], None], on_closed: Callable[[str], None], **_: Any) -> None:
        self.server, self.url, self._loop = server, url, loop
        self._on_frame, self._on_closed = on_frame, on_closed
        self.thread = _Thread()
        self.authenticated = False
        self.closed = False
        #: a half-dead socket: sends fail, nothing is reported until the SDK closes it
        self.broken = False

    async def open(self) -> None:
        pass

    def _reply(self, text: str) -> None:
        self._loop.call_soon(self._on_frame, text)

    def send(self, text: str) -> None:  # on the core loop, as the real transport's send
        if self.closed or self.broken:
            from purecloud_webrtc.errors import ConnectionFailedError

            raise ConnectionFailedError("the scripted socket is closed")
        for cut in list(self.server.cuts):
            if cut(text):  # a fault at this exact moment: the socket breaks instead of answering
                self.server.cuts.remove(cut)
                self.closed = True
                self._loop.call_soon(self._on_closed, "connection lost (scripted)")
                return
        el = X.parse(text)
        ns, local = X.split(el.tag)
        server = self.server
        if (ns, local) == (FRAMING, "open"):
            self._reply(f'<open xmlns="{FRAMING}" from="{server.domain}" id="s1" version="1.0"/>')
            if not self.authenticated:
                self._reply('<stream:features xmlns:stream="http://etherx.jabber.org/streams"><mechanisms '
                            'xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>PLAIN</mechanism></mechanisms>'
                            '</stream:features>')
            else:
                self._reply('<stream:features xmlns:stream="http://etherx.jabber.org/streams">'
                            '<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>')
            return
        if local == "auth":
            self.authenticated = True
            self._reply('<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>')
            return
        if (ns, local) == (FRAMING, "close"):
            self._reply(f'<close xmlns="{FRAMING}"/>')  # RFC 7395 §3.6: the server answers, then closes
            self._loop.call_soon(self.close)
            return
        if local == "iq" and el.get("type") in ("get", "set"):
            child = el[0] if len(el) else None
            child_ns = X.split(child.tag)[0] if child is not None else ""
            iq_id = el.get("id")
            if child_ns == "urn:ietf:params:xml:ns:xmpp-bind":
                resource = X.child_text(child, "bind", "resource") or "r"
                server.full_jid = f"{server.jid}/{resource}"
                self._reply(f'<iq xmlns="jabber:client" type="result" id="{iq_id}"><bind '
                            f'xmlns="urn:ietf:params:xml:ns:xmpp-bind"><jid>{server.full_jid}</jid></bind></iq>')
                server.bound.set()
                return
            if child_ns == "urn:xmpp:extdisco:1":
                kind = child.get("type")
                self._reply(f'<iq xmlns="jabber:client" type="result" id="{iq_id}" from="{server.domain}">'
                            f'<services xmlns="urn:xmpp:extdisco:1" type="{kind}"/></iq>')
                return
            if child_ns in ("http://jabber.org/protocol/pubsub", "urn:xmpp:ping"):
                self._reply(f'<iq xmlns="jabber:client" type="result" id="{iq_id}"/>')
                return
        server._record(text)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.call_soon_threadsafe(self._on_closed, "closed by the client")

    def join(self, timeout: float = 2.0) -> None:
        pass


class ScriptedXmpp:
    """The streaming service, scripted: pass :meth:`factory` as ``xmpp_transport=``.

    :ivar sent: what the SDK sent after the connect handshake, as XML text without the top-level
        ``xmlns="jabber:client"``.
    """

    def __init__(self, jid: str) -> None:
        self.jid = jid
        self.domain = jid.split("@", 1)[1]
        self.full_jid: Optional[str] = None
        self.sent: List[str] = []
        self.transports: List[ScriptedTransport] = []
        self.bound = threading.Event()
        self._lock = threading.Lock()
        #: one-shot faults: ``cut(text)`` true for a frame the SDK sends breaks the socket right there
        self.cuts: List[Callable[[str], bool]] = []

    def factory(self, url: str, loop: asyncio.AbstractEventLoop, on_frame: Callable[[str], None],
                on_closed: Callable[[str], None], **kwargs: Any) -> ScriptedTransport:
        transport = ScriptedTransport(self, url, loop, on_frame, on_closed, **kwargs)
        self.transports.append(transport)
        return transport

    def _record(self, text: str) -> None:
        text = re.sub(r'^(<\w+) xmlns="jabber:client"', r"\1", text)
        with self._lock:
            self.sent.append(text)

    def inject(self, xml: str) -> None:
        """Hand ``xml`` to the SDK as the WebSocket thread would (``call_soon_threadsafe``)."""
        transport = self.transports[-1]
        transport._loop.call_soon_threadsafe(transport._on_frame, xml)

    def drop(self) -> None:
        """The socket breaks."""
        transport = self.transports[-1]
        transport.closed = True
        transport._loop.call_soon_threadsafe(transport._on_closed, "connection lost")

    def cut_when(self, predicate: Callable[[str], bool]) -> None:
        """Break the socket when the SDK next sends a frame for which ``predicate`` is true."""
        self.cuts.append(predicate)

    @property
    def state(self) -> str:
        return "connected" if self.bound.is_set() else "new"

    def stanzas(self) -> Dict[str, int]:
        return {"sent": len(self.sent)}
