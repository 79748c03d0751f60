"""Wire-level tests of :mod:`purecloud_webrtc.emulator`, driven by a small raw client.

The raw client here is deliberately not the SDK: ``requests`` for REST,
``websocket-client`` for the RFC 7395 stream (XML written by hand), and a
bare aiortc peer on its own loop thread for media.  Everything runs for real
on 127.0.0.1: WebSocket, XMPP, Jingle, ICE, DTLS-SRTP, Opus, and the tones
are checked by FFT in both directions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
import requests
import websocket
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from purecloud_webrtc._ice import release_host_addresses, restrict_host_addresses
from purecloud_webrtc._xml import NS, Element, parse, q, split, to_string
from purecloud_webrtc.emulator import (
    CALL_STATES,
    EmulatedCall,
    EmulatedUser,
    Emulator,
    EmulatorError,
)
from purecloud_webrtc.jingle.sdp import (
    jingle_to_sdp,
    parse_transport_info,
    sdp_to_jingle,
    split_candidates,
    transport_info_content,
)
from purecloud_webrtc.media import BufferSink, SinkPump, ToneSource

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_JID = re.compile(r"^webrtc-\d+@gjoll\.[a-z0-9.-]+/[0-9a-f-]{36}$")
pytestmark = pytest.mark.timeout(20)

# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    """Every thread a test starts (emulator, peers, socket readers, decoders) is gone after it."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"threads left behind: {[t.name for t in extra]}"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


# --------------------------------------------------------------------------------------------
# the raw client
# --------------------------------------------------------------------------------------------


def api(emu: Emulator, method: str, path: str, *, token: Optional[str] = None, **kw: Any) -> requests.Response:
    """One REST call with the default user's token (or ``token``; ``""`` sends none)."""
    token = emu.access_token if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{emu.api_base_url}/api/v2/{path}", headers=headers, timeout=5, **kw)


def new_channel(emu: Emulator, token: Optional[str] = None) -> str:
    resp = api(emu, "POST", "notifications/channels?connectionType=streaming", token=token)
    assert resp.status_code == 200, resp.text
    return resp.json()["connectUri"]


_CLOSED = object()


class RawClient:
    """An RFC 7395 client written by hand: frames in, parsed elements out, nothing automatic."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, subprotocols=["xmpp"], timeout=5)
        self.ws.settimeout(0.2)
        self.frames: "queue.Queue[object]" = queue.Queue()
        self.received: list[str] = []
        self.backlog: list[Element] = []
        self.closed = False
        self.full_jid: Optional[str] = None
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="test-ws-reader")
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                text = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, OSError):
                break
            if not text:
                break
            self.received.append(text)
            self.frames.put(parse(text))
        self.frames.put(_CLOSED)

    def send(self, xml: str) -> None:
        self.ws.send(xml)

    def expect(self, predicate: Callable[[Element], bool], what: str, timeout: float = 5.0) -> Element:
        """The next element matching ``predicate`` (others wait in the backlog)."""
        for i, el in enumerate(self.backlog):
            if predicate(el):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self.frames.get(timeout=max(0.01, remaining))
            except queue.Empty:
                raise AssertionError(f"no {what} within {timeout}s; unmatched: {[to_string(e) for e in self.backlog]}") from None
            if item is _CLOSED:
                self.closed = True
                raise AssertionError(f"socket closed while waiting for {what}")
            assert isinstance(item, Element)
            if predicate(item):
                return item
            self.backlog.append(item)

    def expect_nothing(self, predicate: Callable[[Element], bool], within: float) -> None:
        with pytest.raises(AssertionError, match="no "):
            self.expect(predicate, "nothing", timeout=within)

    def wait_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            try:
                item = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("socket still open") from None
            if item is _CLOSED:
                self.closed = True
            else:
                self.backlog.append(item)  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop.set()
        self._reader.join(5)
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass
        finally:
            self.ws.shutdown()

    # -- stream helpers --------------------------------------------------------------------

    def open(self, domain: str) -> Element:
        self.send(f'<open xmlns="{NS["framing"]}" to="{domain}" version="1.0" xml:lang="en"/>')
        opened = self.expect(lambda e: e.tag == q("framing", "open"), "<open/>")
        assert opened.get("from") == domain and opened.get("version") == "1.0" and opened.get("id")
        return self.expect(lambda e: e.tag == q("stream", "features"), "<stream:features>")

    def auth_plain(self, authcid: str, password: str) -> Element:
        payload = base64.b64encode(f"\0{authcid}\0{password}".encode()).decode()
        self.send(f'<auth xmlns="{NS["sasl"]}" mechanism="PLAIN">{payload}</auth>')
        return self.expect(lambda e: split(e.tag)[0] == NS["sasl"], "SASL outcome")

    def login(self, user: EmulatedUser, resource: Optional[str] = None) -> str:
        """open → PLAIN → restart → bind; returns the bound full JID."""
        self.open(user.domain)
        assert self.auth_plain(user.jid, f"authKey:{user.access_token}").tag == q("sasl", "success")
        features = self.open(user.domain)
        assert features.find(q("bind", "bind")) is not None
        res = f"<resource>{resource}</resource>" if resource else ""
        self.send(f'<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="{NS["bind"]}">{res}</bind></iq>')
        result = self.expect(lambda e: e.get("id") == "bind1", "bind result")
        assert result.get("type") == "result"
        self.full_jid = result.findtext(f"{q('bind', 'bind')}/{q('bind', 'jid')}")
        assert self.full_jid
        return self.full_jid

    def iq(self, body: str, *, to: Optional[str] = None, kind: str = "get") -> Element:
        """Send an IQ and return its reply."""
        iq_id = uuid.uuid4().hex
        to_attr = f' to="{to}"' if to else ""
        self.send(f'<iq xmlns="jabber:client" type="{kind}" id="{iq_id}"{to_attr}>{body}</iq>')
        return self.expect(lambda e: e.tag == q("client", "iq") and e.get("id") == iq_id, f"reply to IQ {iq_id}")

    def send_jingle(self, to: str, jingle: Element) -> Element:
        """Send a Jingle IQ set (built as an element) and return the reply."""
        iq_id = str(uuid.uuid4())
        self.send(f'<iq xmlns="jabber:client" type="set" id="{iq_id}" to="{to}">{to_string(jingle)}</iq>')
        return self.expect(lambda e: e.tag == q("client", "iq") and e.get("id") == iq_id, f"reply to Jingle {iq_id}")

    def result_for(self, iq: Element) -> None:
        self.send(f'<iq xmlns="jabber:client" type="result" id="{iq.get("id")}" to="{iq.get("from")}"/>')


def is_jmi(name: str, sid: Optional[str] = None) -> Callable[[Element], bool]:
    def check(el: Element) -> bool:
        child = el.find(q("jmi", name))
        return el.tag == q("client", "message") and child is not None and (sid is None or child.get("id") == sid)

    return check


def is_jingle(action: str) -> Callable[[Element], bool]:
    def check(el: Element) -> bool:
        jingle = el.find(q("jingle", "jingle"))
        return el.tag == q("client", "iq") and el.get("type") == "set" and jingle is not None and jingle.get("action") == action

    return check


def stanza_error(el: Element) -> list[str]:
    err = el.find(q("client", "error"))
    assert err is not None, to_string(el)
    return [split(c.tag)[1] for c in err]


@pytest.fixture
def client_factory(emu: Emulator) -> Iterator[Callable[..., RawClient]]:
    clients: list[RawClient] = []

    def make(user: Optional[EmulatedUser] = None, resource: Optional[str] = None, login: bool = True) -> RawClient:
        user = user or emu.user
        client = RawClient(new_channel(emu, user.access_token))
        clients.append(client)
        if login:
            client.login(user, resource)
        return client

    yield make
    for client in clients:
        client.close()


# --------------------------------------------------------------------------------------------
# the raw client's media: a bare aiortc peer on its own loop thread
# --------------------------------------------------------------------------------------------


class AnsweringPeer:
    """aiortc answerer on a private loop (127.0.0.1 only), playing ``tone_hz`` and recording."""

    def __init__(self, tone_hz: float) -> None:
        self.loop = asyncio.new_event_loop()
        restrict_host_addresses(self.loop, ["127.0.0.1"])
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-peer")
        self.thread.start()
        self.tone_hz = tone_hz
        self.sink = BufferSink()
        self.states: list[str] = []
        self.pump: Optional[SinkPump] = None
        self.tone: Optional[ToneSource] = None
        self.pc: Optional[RTCPeerConnection] = None

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def answer(self, offer_sdp: str, candidates: list[tuple[str, Optional[str]]]) -> str:
        return self.run(self._answer(offer_sdp, candidates))

    async def _answer(self, offer_sdp: str, candidates: list[tuple[str, Optional[str]]]) -> str:
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.pump = SinkPump(track, self.sink)
            self.pump.start()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            self.states.append(pc.connectionState)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for mid, cand in candidates:
            await pc.addIceCandidate(None if cand is None else self._candidate(mid, cand))
        self.tone = ToneSource(self.tone_hz)
        pc.addTrack(self.tone.create_track())  # after the offer: sendrecv (PROTOCOL §10.8)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    @staticmethod
    def _candidate(mid: str, cand: str) -> Any:
        candidate = candidate_from_sdp(cand.split(":", 1)[1])
        candidate.sdpMid = mid
        return candidate

    def add_candidate(self, mid: str, cand: Optional[str]) -> None:
        assert self.pc is not None
        self.run(self.pc.addIceCandidate(None if cand is None else self._candidate(mid, cand)))

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while "connected" not in self.states:
            assert time.monotonic() < deadline, f"peer states {self.states}"
            time.sleep(0.02)

    def close(self) -> None:
        async def shut() -> None:
            if self.pump is not None:
                await self.pump.stop()
            if self.pc is not None:
                await self.pc.close()
            if self.tone is not None:
                self.tone.close()

        try:
            self.run(shut())
        finally:
            self.sink.close()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            release_host_addresses(self.loop)
            self.loop.close()


def ufrag_of(sdp: str) -> str:
    match = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
    assert match, sdp
    return match.group(1)


def jingle_el(action: str, sid: str, *children: Element) -> Element:
    el = Element(q("jingle", "jingle"), {"action": action, "sid": sid})
    el.extend(children)
    return el


def propose_and_proceed(emu: Emulator, client: RawClient, **kw: Any) -> tuple[EmulatedCall, Element, Element]:
    """inbound_call → propose → proceed → session-initiate (acked); returns (call, propose message, initiate IQ)."""
    call = emu.inbound_call(**kw)
    message = client.expect(is_jmi("propose", call.session_id), "propose")
    client.send(
        f'<message xmlns="jabber:client" to="{message.get("from")}">'
        f'<proceed xmlns="{NS["jmi"]}" id="{call.session_id}"/></message>'
    )
    initiate = client.expect(is_jingle("session-initiate"), "session-initiate")
    client.result_for(initiate)
    return call, message, initiate


# --------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------


def test_host_other_than_loopback_is_refused() -> None:
    for host in ("0.0.0.0", "localhost", "::1", "192.0.2.1"):
        with pytest.raises(ValueError, match="127.0.0.1"):
            Emulator(host=host)


def test_rest_auth_and_correlation_id(emu: Emulator) -> None:
    for token in ("", "wrong-token"):
        resp = api(emu, "GET", "users/me", token=token)
        assert resp.status_code == 401
        body = resp.json()
        assert body["code"] == "bad.credentials" and body["status"] == 401 and body["message"]
        assert resp.headers["inin-correlation-id"]
    ok = api(emu, "GET", "users/me")
    assert ok.status_code == 200 and ok.headers["inin-correlation-id"]
    missing = api(emu, "GET", "no/such/thing")
    assert missing.status_code == 404 and missing.json()["code"] == "not.found"
    assert missing.headers["inin-correlation-id"] != ok.headers["inin-correlation-id"]
    assert emu.rest_log == [
        ("GET", "/api/v2/users/me", 401),
        ("GET", "/api/v2/users/me", 401),
        ("GET", "/api/v2/users/me", 200),
        ("GET", "/api/v2/no/such/thing", 404),
    ]


def test_users_me_organization_and_station(emu: Emulator) -> None:
    me = api(emu, "GET", "users/me?expand=station").json()
    assert me["id"] == emu.user.id and me["name"] == emu.user.name
    assert me["chat"]["jabberId"] == emu.user.jid
    assert re.fullmatch(r"[0-9a-f]{24}@acmecorp\.orgspan\.com", emu.user.jid)
    station_id = me["station"]["effectiveStation"]["id"]
    station = api(emu, "GET", f"stations/{station_id}").json()
    assert station["type"] == "inin_webrtc_softphone" and station["userId"] == emu.user.id
    org = api(emu, "GET", "organizations/me").json()
    assert org["name"] == "acmecorp" and org["id"]
    other = emu.add_user("Second Agent", access_token="second-token")
    me2 = api(emu, "GET", "users/me", token="second-token").json()
    assert me2["id"] == other.id != emu.user.id and me2["chat"]["jabberId"] == other.jid


def test_channel_creation_and_unknown_channel(emu: Emulator) -> None:
    resp = api(emu, "POST", "notifications/channels?connectionType=streaming")
    body = resp.json()
    assert re.fullmatch(r"streaming-[0-9a-z]+", body["id"])
    assert body["connectUri"] == f"{emu.streaming_base_url}/stream/channels/{body['id']}"
    assert emu.streaming_base_url.startswith("ws://127.0.0.1:")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{emu.streaming_base_url}/stream/channels/streaming-nope", subprotocols=["xmpp"])
    assert info.value.status_code == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(body["connectUri"])  # no "xmpp" subprotocol
    assert info.value.status_code == 400


# --------------------------------------------------------------------------------------------
# streaming
# --------------------------------------------------------------------------------------------


def test_stream_login_with_requested_resource(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory(login=False)
    features = client.open(emu.user.domain)
    mechanisms = [m.text for m in features.iter(q("sasl", "mechanism"))]
    assert mechanisms == ["PLAIN", "ANONYMOUS"]
    assert client.auth_plain(emu.user.jid, f"authKey:{emu.access_token}").tag == q("sasl", "success")
    features = client.open(emu.user.domain)
    assert features.find(q("bind", "bind")) is not None and features.find(q("sasl", "mechanisms")) is None
    client.send(
        f'<iq xmlns="jabber:client" type="set" id="b1"><bind xmlns="{NS["bind"]}">'
        "<resource>purecloud-webrtc-sdk-test</resource></bind></iq>"
    )
    result = client.expect(lambda e: e.get("id") == "b1", "bind result")
    assert result.findtext(f"{q('bind', 'bind')}/{q('bind', 'jid')}") == f"{emu.user.jid}/purecloud-webrtc-sdk-test"
    emu.wait_for_connection(timeout=5)
    assert emu.connected_resources() == [f"{emu.user.jid}/purecloud-webrtc-sdk-test"]
    # a generated resource when none is asked for
    other = client_factory()
    assert other.full_jid and other.full_jid.startswith(emu.user.jid + "/") and len(other.full_jid) > len(emu.user.jid) + 10
    # <close/> is answered with <close/> and the socket closes
    client.send(f'<close xmlns="{NS["framing"]}"/>')
    client.expect(lambda e: e.tag == q("framing", "close"), "<close/>")
    client.wait_closed()
    deadline = time.monotonic() + 5
    while len(emu.connected_resources()) != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    directions = [d for d, _ in emu.stanzas()]
    assert directions[0] == "in" and "out" in directions


@pytest.mark.parametrize(
    "authcid, password, condition",
    [
        (None, "authKey:wrong", "not-authorized"),
        ("0123456789abcdef01234567@acmecorp.orgspan.com", None, "not-authorized"),
        (None, "{token}", "not-authorized"),  # the token alone, without "authKey:"
    ],
)
def test_sasl_plain_failure(
    emu: Emulator, client_factory: Callable[..., RawClient], authcid: Optional[str], password: Optional[str], condition: str
) -> None:
    client = client_factory(login=False)
    client.open(emu.user.domain)
    password = (password or "authKey:{token}").format(token=emu.access_token)
    failure = client.auth_plain(authcid or emu.user.jid, password)
    assert failure.tag == q("sasl", "failure")
    assert failure.find(q("sasl", condition)) is not None and failure.findtext(q("sasl", "text"))
    client.wait_closed()
    assert emu.connected_resources() == []


def test_sasl_anonymous_refused_and_stanza_before_auth(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory(login=False)
    client.open(emu.user.domain)
    client.send(f'<auth xmlns="{NS["sasl"]}" mechanism="ANONYMOUS"/>')
    failure = client.expect(lambda e: e.tag == q("sasl", "failure"), "failure")
    assert failure.find(q("sasl", "not-authorized")) is not None
    client.wait_closed()
    early = client_factory(login=False)
    early.open(emu.user.domain)
    early.send('<iq xmlns="jabber:client" type="get" id="x"><ping xmlns="urn:xmpp:ping"/></iq>')
    err = early.expect(lambda e: e.tag == q("stream", "error"), "stream error")
    assert err.find(q("streams", "not-authorized")) is not None
    early.wait_closed()


def test_ping_disco_and_unknown_iq(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory(resource="r1")
    for to in (None, emu.user.domain, emu.user.jid):
        reply = client.iq(f'<ping xmlns="{NS["ping"]}"/>', to=to)
        assert reply.get("type") == "result" and len(reply) == 0
    disco = client.iq(f'<query xmlns="{NS["disco_info"]}"/>', to=emu.user.domain)
    assert disco.get("type") == "result"
    features = {f.get("var") for f in disco.iter(q("disco_info", "feature"))}
    assert {NS["ping"], NS["extdisco"], NS["disco_info"]} <= features
    assert disco.find(f"{q('disco_info', 'query')}/{q('disco_info', 'identity')}") is not None
    for body, kind in (('<query xmlns="jabber:iq:roster"/>', "get"), ('<session xmlns="urn:ietf:params:xml:ns:xmpp-session"/>', "set")):
        reply = client.iq(body, kind=kind)
        assert reply.get("type") == "error" and "service-unavailable" in stanza_error(reply)
    reply = client.iq(f'<ping xmlns="{NS["ping"]}"/>', to="notifications.example.invalid")
    assert "service-unavailable" in stanza_error(reply)


def test_extdisco_advertises_the_emulators_stun_server_by_default(emu: Emulator,
                                                                    client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    port = emu.stun_url.rsplit(":", 1)[1]  # type: ignore[union-attr]
    for kind, expected in (("turn", []), ("stun", [{"type": "stun", "host": "127.0.0.1", "port": port}])):
        reply = client.iq(f'<services xmlns="{NS["extdisco"]}" type="{kind}"/>', to=emu.user.domain)
        services = reply.find(q("extdisco", "services"))
        assert reply.get("type") == "result" and services is not None and services.get("type") == kind
        assert [dict(s.attrib) for s in services] == expected


def test_extdisco_empty_without_stun() -> None:
    with Emulator(stun=False) as emu:
        client = RawClient(new_channel(emu))
        try:
            client.login(emu.user)
            for kind in ("turn", "stun"):
                reply = client.iq(f'<services xmlns="{NS["extdisco"]}" type="{kind}"/>', to=emu.user.domain)
                assert len(reply.find(q("extdisco", "services"))) == 0  # type: ignore[arg-type]
        finally:
            client.close()


def test_extdisco_configured() -> None:
    servers = [
        {
            "urls": ["turn:turn1.example.test:3478", "turn:turn1.example.test:443?transport=tcp"],
            "username": "1762000000:u1",
            "credential": "s3cret",
        },
        {"urls": "stun:stun1.example.test:3478"},
    ]
    with Emulator(ice_servers=servers) as emu:
        client = RawClient(new_channel(emu))
        try:
            client.login(emu.user)
            turn = client.iq(f'<services xmlns="{NS["extdisco"]}" type="turn"/>', to=emu.user.domain)
            got = [dict(s.attrib) for s in turn.iter(q("extdisco", "service"))]
            assert got == [
                {"type": "turn", "host": "turn1.example.test", "port": "3478", "transport": "udp",
                 "username": "1762000000:u1", "password": "s3cret"},
                {"type": "turn", "host": "turn1.example.test", "port": "443", "transport": "tcp",
                 "username": "1762000000:u1", "password": "s3cret"},
            ]  # fmt: skip
            stun = client.iq(f'<services xmlns="{NS["extdisco"]}" type="stun"/>', to=emu.user.domain)
            assert [dict(s.attrib) for s in stun.iter(q("extdisco", "service"))] == [
                {"type": "stun", "host": "stun1.example.test", "port": "3478"}
            ]
        finally:
            client.close()


def test_malformed_xml_is_a_stream_error(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    client.send('<iq type="get" id="1"><ping xmlns="urn:xmpp:ping"/>')  # never closed
    err = client.expect(lambda e: e.tag == q("stream", "error"), "stream error")
    assert err.find(q("streams", "not-well-formed")) is not None
    client.wait_closed()
    assert any(d == "in" and t.startswith('<iq type="get"') for d, t in emu.stanzas())


def test_bare_jid_messages_fan_out_including_sender(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    a = client_factory(resource="device-a")
    b = client_factory(resource="device-b")
    assert sorted(emu.connected_resources()) == [f"{emu.user.jid}/device-a", f"{emu.user.jid}/device-b"]
    a.send(f'<message xmlns="jabber:client" to="{emu.user.jid}"><body>hello all</body></message>')
    for client in (a, b):
        msg = client.expect(lambda e: e.findtext(q("client", "body")) == "hello all", "fan-out")
        assert msg.get("from") == f"{emu.user.jid}/device-a"
    b.send(f'<message xmlns="jabber:client" to="{emu.user.jid}/device-a"><body>just a</body></message>')
    assert a.expect(lambda e: e.findtext(q("client", "body")) == "just a", "direct").get("from") == b.full_jid
    b.expect_nothing(lambda e: e.findtext(q("client", "body")) == "just a", within=0.3)


def test_rebinding_a_resource_closes_the_older_connection(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    old = client_factory(resource="same")
    new = client_factory(resource="same")
    err = old.expect(lambda e: e.tag == q("stream", "error"), "conflict")
    assert err.find(q("streams", "conflict")) is not None
    old.wait_closed()
    assert emu.connected_resources() == [f"{emu.user.jid}/same"]
    assert new.iq(f'<ping xmlns="{NS["ping"]}"/>').get("type") == "result"


# --------------------------------------------------------------------------------------------
# calls
# --------------------------------------------------------------------------------------------


def connect_call(
    emu: Emulator, client: RawClient, peer: AnsweringPeer, *, trickle: bool, inline_accept: bool = False
) -> tuple[EmulatedCall, int]:
    """Take an inbound call from propose to ``connected``, checking the gateway's side on the way.

    :returns: the call and how many candidates the client sent.
    """
    call, propose_msg, initiate = propose_and_proceed(emu, client)
    propose = propose_msg.find(q("jmi", "propose"))
    assert propose is not None
    gateway = propose_msg.get("from") or ""
    assert GATEWAY_JID.match(gateway) and propose_msg.get("to") == emu.user.jid
    assert propose.get("inin-cid") == call.conversation_id and propose.get("inin-autoanswer") == "false"
    assert propose.get("inin-persistent-cid") and propose.find(q("rtp", "description")).get("media") == "audio"
    assert call.direction == "inbound" and call.address == "+13175550100" and call.gateway_jid == gateway

    jingle = initiate.find(q("jingle", "jingle"))
    assert jingle is not None
    assert initiate.get("from") == gateway and initiate.get("to") == client.full_jid
    assert jingle.get("sid") == call.session_id and jingle.get("initiator") == gateway
    inline = list(jingle.iter(q("ice_udp", "candidate")))
    remote: list[tuple[str, Optional[str]]] = []
    if trickle:
        assert inline == []
        while not remote or remote[-1][1] is not None:
            info = client.expect(is_jingle("transport-info"), "gateway transport-info")
            client.result_for(info)
            remote += [(mid, cand) for mid, _ufrag, cand in parse_transport_info(info.find(q("jingle", "jingle")))]
        assert len(remote) >= 2 and all(c and " 127.0.0.1 " in c for _m, c in remote[:-1])
    else:
        assert inline and all(c.get("ip") == "127.0.0.1" for c in inline)
        client.expect_nothing(is_jingle("transport-info"), within=0.3)
    call.wait_state("initiated")

    answer = peer.answer(jingle_to_sdp(jingle, "initiator"), remote)
    _stripped, candidates = split_candidates(answer)
    assert candidates, answer
    sid, ufrag = call.session_id, ufrag_of(answer)
    infos = [jingle_el("transport-info", sid, transport_info_content(m, ufrag, c)) for m, c in candidates]
    if inline_accept:
        infos = []  # §9: candidates inline in session-accept must work too
    elif trickle:  # §10.6: the first candidate may overtake session-accept
        assert client.send_jingle(gateway, infos.pop(0)).get("type") == "result"
    accept = jingle_el("session-accept", sid, *sdp_to_jingle(answer, "responder", include_candidates=inline_accept))
    assert client.send_jingle(gateway, accept).get("type") == "result"
    call.wait_state("accepted")
    for info in infos:
        assert client.send_jingle(gateway, info).get("type") == "result"
    done = jingle_el("transport-info", sid, transport_info_content(candidates[0][0], ufrag, gathering_complete=True))
    assert client.send_jingle(gateway, done).get("type") == "result"
    peer.wait_connected()
    active = jingle_el("session-info", sid, Element(q("rtp_info", "active")))
    assert client.send_jingle(gateway, active).get("type") == "result"
    call.wait_state("connected")
    return call, 0 if inline_accept else len(candidates)


def wait_heard(sink: BufferSink, seconds: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sink.total_seconds < seconds:
        assert time.monotonic() < deadline, f"only {sink.total_seconds:.2f}s of audio heard"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "trickle, inline_accept", [(True, False), (False, False), (False, True)], ids=["trickled", "inline", "inline-accept"]
)
def test_full_call_with_audio_both_ways(trickle: bool, inline_accept: bool) -> None:
    """propose → proceed → initiate → accept → connected; tones both ways; far-end hang-up."""
    with Emulator(trickle_candidates=trickle, tone_hz=440.0) as emu:
        client = RawClient(new_channel(emu))
        peer = AnsweringPeer(tone_hz=1000.0)
        try:
            client.login(emu.user, "raw-client")
            call, sent = connect_call(emu, client, peer, trickle=trickle, inline_accept=inline_accept)

            call.wait_for_audio(min_seconds=1.2)
            wait_heard(peer.sink, 1.2)
            assert abs(call.heard_frequency(1.0) - 1000.0) < 5
            assert abs(peer.sink.dominant_frequency(1.0) - 440.0) < 5
            assert call.tone_hz == 440.0

            agent = next(p for p in call.participants if p.get("user"))
            assert agent["user"]["id"] == emu.user.id and agent["state"] == "connected"
            call.hangup()
            terminate = client.expect(is_jingle("session-terminate"), "session-terminate")
            client.result_for(terminate)
            reason = terminate.find(f"{q('jingle', 'jingle')}/{q('jingle', 'reason')}")
            assert reason is not None and reason.find(q("jingle", "success")) is not None
            assert call.state == "ended" and call.end_reason == "success" and not call.terminated_by_client
            assert call.states == ["proposed", "proceeding", "initiated", "accepted", "connected", "ended"]
            assert sorted(call.jingle_log) == sorted(["transport-info"] * (sent + 1) + ["session-accept", "session-info"])
            assert call.jingle_log.index("session-accept") == (1 if trickle else 0)
            assert call.session_info == ["active"] and call.dropped_candidates == []
            assert "connected" in call.connection_states
            assert all(p["state"] == "disconnected" for p in call.participants)
            # the wire log shows the order: proceed in, then session-initiate out
            wire = emu.stanzas()
            proceed_at = next(i for i, (d, t) in enumerate(wire) if d == "in" and "<proceed" in t)
            initiate_at = next(i for i, (d, t) in enumerate(wire) if d == "out" and "session-initiate" in t)
            assert proceed_at < initiate_at
        finally:
            peer.close()
            client.close()


def test_media_survives_socket_loss_and_stop_cleans_up() -> None:
    """A live call keeps its audio when the socket drops (§2.10); stop() then tears everything down."""
    emu = Emulator(tone_hz=600.0).start()
    client = RawClient(new_channel(emu))
    peer = AnsweringPeer(tone_hz=900.0)
    try:
        client.login(emu.user, "raw-client")
        call, _ = connect_call(emu, client, peer, trickle=True)
        call.wait_for_audio(min_seconds=0.3)
        emu.drop_connections()
        client.wait_closed()
        heard = call.seconds_heard()
        deadline = time.monotonic() + 5
        while call.seconds_heard() < heard + 0.5:
            assert time.monotonic() < deadline, "audio stopped with the socket"
            time.sleep(0.05)
        assert call.state == "connected" and abs(call.heard_frequency(0.5) - 900.0) < 5
        emu.stop()
        assert not any(t.name.startswith("pcw-emulator-") for t in threading.enumerate())
        assert abs(call.heard_frequency(0.5) - 900.0) < 5  # what was heard stays readable
    finally:
        emu.stop()
        peer.close()
        client.close()


def test_client_terminate_and_unknown_session(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    call, message, _initiate = propose_and_proceed(emu, client)
    gateway = message.get("from") or ""
    bogus = jingle_el("transport-info", "no-such-sid")
    reply = client.send_jingle(gateway, bogus)
    assert reply.get("type") == "error" and stanza_error(reply) == ["item-not-found", "unknown-session"]
    err = reply.find(q("client", "error"))
    assert err is not None and err.find(q("jingle_errors", "unknown-session")) is not None
    terminate = jingle_el("session-terminate", call.session_id)
    reason = Element(q("jingle", "reason"))
    reason.append(Element(q("jingle", "decline")))
    terminate.append(reason)
    assert client.send_jingle(gateway, terminate).get("type") == "result"
    call.wait_state("ended")
    assert call.terminated_by_client and call.end_reason == "decline"
    # the session is over: further Jingle for it is an unknown session
    reply = client.send_jingle(gateway, jingle_el("session-info", call.session_id))
    assert "unknown-session" in stanza_error(reply)


def test_client_refusing_session_initiate_ends_the_call(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    call = emu.inbound_call()
    message = client.expect(is_jmi("propose", call.session_id), "propose")
    client.send(f'<message xmlns="jabber:client" to="{message.get("from")}"><proceed xmlns="{NS["jmi"]}" id="{call.session_id}"/></message>')
    initiate = client.expect(is_jingle("session-initiate"), "session-initiate")
    client.send(
        f'<iq xmlns="jabber:client" type="error" id="{initiate.get("id")}" to="{initiate.get("from")}">'
        f'<error type="cancel"><bad-request xmlns="{NS["stanzas"]}"/></error></iq>'
    )
    call.wait_state("ended")
    assert call.end_reason == "session-initiate-error:bad-request" and not call.terminated_by_client
    client.expect_nothing(is_jingle("transport-info"), within=0.3)


def test_duplicate_proceed_is_ignored(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    call, message, _ = propose_and_proceed(emu, client)
    client.send(
        f'<message xmlns="jabber:client" to="{message.get("from")}"><proceed xmlns="{NS["jmi"]}" id="{call.session_id}"/></message>'
    )
    client.expect_nothing(is_jingle("session-initiate"), within=0.5)
    assert call.states == ["proposed", "proceeding", "initiated"]


def test_rest_disconnect_sends_session_terminate(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    call, _message, _initiate = propose_and_proceed(emu, client)
    conv = api(emu, "GET", f"conversations/calls/{call.conversation_id}").json()
    assert conv["id"] == call.conversation_id
    purposes = {p["purpose"] for p in conv["participants"]}
    assert purposes == {"customer", "agent"}
    mine = next(p for p in conv["participants"] if (p.get("user") or {}).get("id") == emu.user.id)
    generic = api(emu, "GET", f"conversations/{call.conversation_id}").json()
    assert any(p.get("userId") == emu.user.id and p["calls"] for p in generic["participants"])
    path = f"conversations/calls/{call.conversation_id}/participants/{mine['id']}"
    assert api(emu, "PATCH", path, data="{not json").status_code == 400
    assert api(emu, "PATCH", path, json={}).status_code == 400
    assert api(emu, "PATCH", f"conversations/calls/{call.conversation_id}/participants/nope", json={"muted": True}).status_code == 404
    assert api(emu, "GET", "conversations/calls/no-such-conversation").status_code == 404
    assert api(emu, "PATCH", path, json={"muted": True}).status_code == 202
    assert next(p for p in call.participants if p["id"] == mine["id"])["muted"] is True
    assert api(emu, "PATCH", path, json={"state": "disconnected"}).status_code == 202
    terminate = client.expect(is_jingle("session-terminate"), "session-terminate")
    client.result_for(terminate)
    assert terminate.find(f"{q('jingle', 'jingle')}/{q('jingle', 'reason')}/{q('jingle', 'success')}") is not None
    call.wait_state("ended")
    after = api(emu, "GET", f"conversations/calls/{call.conversation_id}").json()
    assert all(p["state"] == "disconnected" for p in after["participants"])


def test_retract_fans_out(client_factory: Callable[..., RawClient], emu: Emulator) -> None:
    a = client_factory(resource="a")
    b = client_factory(resource="b")
    call = emu.inbound_call()
    assert sorted(call.proposed_to) == sorted([a.full_jid, b.full_jid])
    for client in (a, b):
        client.expect(is_jmi("propose", call.session_id), "propose")
    call.retract()
    for client in (a, b):
        msg = client.expect(is_jmi("retract", call.session_id), "retract")
        assert GATEWAY_JID.match(msg.get("from") or "")
    assert call.state == "retracted" and call.states == ["proposed", "retracted"]
    call.retract()  # already over: nothing more happens
    with pytest.raises(EmulatorError, match="retracted"):
        call.answer_from_other_client()


def test_alert_timeout_retracts() -> None:
    with Emulator(alert_timeout=0.3) as emu:
        client = RawClient(new_channel(emu))
        try:
            client.login(emu.user)
            call = emu.inbound_call()
            client.expect(is_jmi("propose", call.session_id), "propose")
            client.expect(is_jmi("retract", call.session_id), "retract", timeout=3)
            assert call.state == "retracted" and call.end_reason == "timeout"
        finally:
            client.close()


def test_hangup_before_proceed_retracts(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    call = emu.inbound_call(auto_answer=True)
    propose = client.expect(is_jmi("propose", call.session_id), "propose")
    assert propose.find(q("jmi", "propose")).get("inin-autoanswer") == "true"
    call.hangup()
    client.expect(is_jmi("retract", call.session_id), "retract")
    assert call.state == "retracted"


def test_answer_from_other_client(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    a = client_factory(resource="a")
    b = client_factory(resource="b")
    call = emu.inbound_call()
    proposes = [c.expect(is_jmi("propose", call.session_id), "propose") for c in (a, b)]
    call.answer_from_other_client()
    for client in (a, b):
        accept = client.expect(is_jmi("accept", call.session_id), "accept from the other device")
        assert accept.get("from") == f"{emu.user.jid}/other-device-1" and accept.get("to") == emu.user.jid
    call.wait_state("answered_elsewhere")
    # a late proceed is ignored: no session-initiate
    a.send(
        f'<message xmlns="jabber:client" to="{proposes[0].get("from")}"><proceed xmlns="{NS["jmi"]}" id="{call.session_id}"/></message>'
    )
    a.expect_nothing(is_jingle("session-initiate"), within=0.5)
    # the client's own accept to its bare JID is an ordinary fan-out message, echoed to itself
    a.send(f'<message xmlns="jabber:client" to="{emu.user.jid}"><accept xmlns="{NS["jmi"]}" id="{call.session_id}"/></message>')
    for client in (a, b):
        echo = client.expect(is_jmi("accept", call.session_id), "accept echo")
        assert echo.get("from") == a.full_jid


def test_post_conversations_calls_proposes_outbound(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory()
    assert api(emu, "POST", "conversations/calls", json={}).status_code == 400
    assert api(emu, "POST", "conversations/calls", data="[").status_code == 400
    resp = api(emu, "POST", "conversations/calls", json={"phoneNumber": "+13175550123"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["selfUri"].endswith(f"/conversations/calls/{body['id']}")
    message = client.expect(is_jmi("propose"), "outbound propose")
    propose = message.find(q("jmi", "propose"))
    assert propose is not None
    assert propose.get("inin-cid") == body["id"] and propose.get("inin-autoanswer") == "true"
    call = emu.wait_for_call(lambda c: c.conversation_id == body["id"])
    assert call is emu.call_by_conversation(body["id"]) and call.direction == "outbound"
    assert call.address == "+13175550123" and call.session_id == propose.get("id")
    with pytest.raises(LookupError):
        emu.call_by_conversation("nope")


def test_sdp_over_xmpp_offer_answer() -> None:
    """SDP-over-XMPP mode (§5): JSON-RPC offer, answer, candidates, info active, terminate."""
    with Emulator(sdp_over_xmpp=True) as emu:
        client = RawClient(new_channel(emu))
        peer = AnsweringPeer(tone_hz=700.0)
        try:
            client.login(emu.user)
            call = emu.inbound_call()
            message = client.expect(is_jmi("propose", call.session_id), "propose")
            assert message.find(q("jmi", "propose")).get("inin-sdp-over-xmpp") == "true"
            gateway = message.get("from") or ""
            client.send(f'<message xmlns="jabber:client" to="{gateway}"><proceed xmlns="{NS["jmi"]}" id="{call.session_id}"/></message>')

            def rpc(el: Element) -> Optional[dict[str, Any]]:
                payload = el.find(q("genesys", "genesys-webrtc"))
                return None if payload is None else json.loads(payload.text or "")

            offer = rpc(client.expect(lambda e: (rpc(e) or {}).get("method") == "offer", "offer"))
            assert offer and offer["params"]["sessionId"] == call.session_id
            assert offer["params"]["conversationId"] == call.conversation_id and "a=candidate" not in offer["params"]["sdp"]
            # The service's form only: "m={mid} 9 RTP/AVP 0" + a candidate; no end-of-candidates fragment.
            remote: list[tuple[str, Optional[str]]] = []
            while True:
                try:
                    msg = rpc(client.expect(lambda e: (rpc(e) or {}).get("method") == "iceCandidate", "iceCandidate",
                                            timeout=5.0 if not remote else 0.5))
                except AssertionError:
                    assert remote, "no candidate trickled"
                    break
                sdp = msg["params"]["sdp"] if msg else ""
                assert sdp.startswith("m=") and "end-of-candidates" not in sdp, sdp
                remote.append((sdp.split()[0][2:], sdp.splitlines()[1][2:]))
            answer = peer.answer(offer["params"]["sdp"], remote + [("0", None)])

            def send_rpc(method: str, **params: Any) -> Element:
                body = json.dumps({"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": method,
                                   "params": {"sessionId": call.session_id, **params}})  # fmt: skip
                return client.iq(f'<genesys-webrtc xmlns="genesys">{body}</genesys-webrtc>', to=gateway, kind="set")

            assert send_rpc("answer", sdp=answer).get("type") == "result"
            peer.wait_connected()
            assert send_rpc("info", status="active").get("type") == "result"
            call.wait_state("connected")
            call.wait_for_audio(min_seconds=0.5)
            assert send_rpc("terminate", reason="success").get("type") == "result"
            call.wait_state("ended")
            assert call.terminated_by_client and call.rpc_log == ["answer", "info", "terminate"]
        finally:
            peer.close()
            client.close()


def test_dropped_connection_and_rebind(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    client = client_factory(resource="stable")
    call, _message, _ = propose_and_proceed(emu, client)
    emu.drop_connections()
    client.wait_closed()
    assert not any("<close" in t for t in client.received)
    assert emu.connected_resources() == []
    assert call.state == "initiated"  # calls survive socket loss (§2.10)
    again = client_factory(resource="stable")
    call.hangup()
    terminate = again.expect(is_jingle("session-terminate"), "session-terminate after rebind")
    assert terminate.get("to") == f"{emu.user.jid}/stable"


def test_wait_helpers_time_out_with_clear_messages(emu: Emulator, client_factory: Callable[..., RawClient]) -> None:
    with pytest.raises(TimeoutError, match="no connection"):
        emu.wait_for_connection(timeout=0.1)
    client_factory()
    call = emu.inbound_call()
    with pytest.raises(TimeoutError, match="'connected'.*'proposed'"):
        call.wait_state("connected", timeout=0.2)
    with pytest.raises(ValueError):
        call.wait_state("bogus")
    with pytest.raises(TimeoutError, match="heard 0.00s"):
        call.wait_for_audio(timeout=0.2)
    with pytest.raises(TimeoutError):
        emu.wait_for_call(lambda c: c.direction == "outbound", timeout=0.1)
    assert set(call.states) <= set(CALL_STATES)


def test_stop_is_idempotent_and_leaves_no_thread() -> None:
    emu = Emulator().start()
    names = [t.name for t in threading.enumerate()]
    assert any(re.fullmatch(r"pcw-emulator-\d+", n) for n in names)
    thread = next(t for t in threading.enumerate() if t.name.startswith("pcw-emulator-"))
    assert thread.daemon  # it never keeps the process alive (and the exit stops it)
    emu.stop()
    emu.stop()
    assert not thread.is_alive()
    with pytest.raises(EmulatorError):
        emu.start()
    with pytest.raises(EmulatorError):
        emu.inbound_call()


def test_stop_ends_calls_and_closes_streams() -> None:
    emu = Emulator().start()
    client = RawClient(new_channel(emu))
    try:
        client.login(emu.user)
        live, _message, _initiate = propose_and_proceed(emu, client)
        ringing = emu.inbound_call()
        client.expect(is_jmi("propose", ringing.session_id), "second propose")
        with pytest.raises(ValueError, match="unknown Jingle reason"):
            live.hangup("whatever")
        emu.stop()
        terminate = client.expect(is_jingle("session-terminate"), "session-terminate at stop")
        assert terminate.find(f"{q('jingle', 'jingle')}/{q('jingle', 'reason')}/{q('jingle', 'gone')}") is not None
        client.expect(is_jmi("retract", ringing.session_id), "retract at stop")
        err = client.expect(lambda e: e.tag == q("stream", "error"), "stream error at stop")
        assert err.find(q("streams", "system-shutdown")) is not None
        client.wait_closed()
        assert live.state == "ended" and live.end_reason == "gone" and ringing.state == "retracted"
        with pytest.raises(EmulatorError):
            live.hangup()
    finally:
        emu.stop()
        client.close()


def test_command_line_entry_point() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "purecloud_webrtc.emulator", "--token", "cli-token", "--tone", "523", "--inbound-call-every", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = []
        assert proc.stdout is not None
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"emulator exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        text = "".join(lines)
        base = re.search(r"REST API:\s+(http://127\.0\.0\.1:\d+)\s", text)
        streaming = re.search(r"Streaming:\s+(ws://127\.0\.0\.1:\d+)\s", text)
        assert base and streaming and "cli-token" in text, text
        me = requests.get(f"{base.group(1)}/api/v2/users/me", headers={"Authorization": "Bearer cli-token"}, timeout=5)
        assert me.status_code == 200 and me.json()["chat"]["jabberId"] in text
        # The URLs as printed (and the longer forms a user may paste from its docs) are what the SDK takes;
        # no ice_host_addresses: loopback URLs mean loopback ICE (issue 15).
        import purecloud_webrtc as pcw
        from purecloud_webrtc.media import BufferSink, ToneSource

        for api, stream in ((base.group(1), streaming.group(1)),
                            (base.group(1) + "/api/v2/", streaming.group(1) + "/stream/channels/{channelId}")):
            with pcw.PureCloudWebrtcSdk("cli-token", api_base_url=api, streaming_base_url=stream) as sdk:
                sdk.initialize(timeout=15)
                with sdk.expect_event("pendingSession", timeout=10) as ev:
                    pass  # --inbound-call-every rings this client
                with sdk.expect_event("sessionStarted", timeout=10) as started:
                    sdk.accept_pending_session(ev.value.id, source=ToneSource(880), sink=BufferSink())
                session = started.value
                deadline = time.monotonic() + 15
                while abs(session.sink.dominant_frequency(0.5) - 523) > 5:
                    assert time.monotonic() < deadline, "no audio from the command-line emulator"
                    time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
