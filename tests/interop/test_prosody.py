"""The SDK's signaling layer, and a whole call, through Prosody (a real XMPP server).

The emulator keeps serving REST (``users/me`` names the Prosody JID); the streaming
connection goes to Prosody's RFC 7395 endpoint instead (``streaming_url=``).  Our
Prosody modules (tests/prosody/plugins) make it behave like the service where stock
Prosody differs: SASL PLAIN authcid ``local@domain`` and bare-JID fan-out without
presence.  For the call, the emulator's gateway logs in to Prosody as an ordinary
user and sends XEP-0353 and Jingle through it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Iterator, List, Tuple

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc import _xml as X
from purecloud_webrtc.emulator import Emulator, XmppServerLogin
from purecloud_webrtc.media import BufferSink, NullSink, SilenceSource, ToneSource

from prosody_helpers import ORG_NAME, ProsodyServer, RawXmppClient

pytestmark = pytest.mark.timeout(90)

TOL = 5.0
GATEWAY = "gateway"
GATEWAY_PASSWORD = "gateway-secret"


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def prosody() -> Iterator[ProsodyServer]:
    """A running Prosody, one per test (the restart test must not disturb the others).

    Not in a conftest.py: a second module named ``conftest`` would shadow tests/conftest.py
    for the ``from conftest import ...`` of other test modules.
    """
    server = ProsodyServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


class Env:
    """Prosody + an emulator for REST (and optionally the gateway) + SDK factory."""

    def __init__(self, prosody: ProsodyServer, emulator: Emulator) -> None:
        self.prosody = prosody
        self.emulator = emulator
        self.sdks: List[pcw.PureCloudWebrtcSdk] = []
        self.raw: List[RawXmppClient] = []
        self.errors: List[Tuple[Any, Any]] = []

    def register_user(self, user: Any = None, password: str = "") -> str:
        user = user or self.emulator.user
        return self.prosody.register(user.local, password or "authKey:" + user.access_token)

    def sdk(self, *, initialize: bool = True, user: Any = None, **options: Any) -> pcw.PureCloudWebrtcSdk:
        user = user or self.emulator.user
        options.setdefault("api_base_url", self.emulator.api_base_url)
        options.setdefault("streaming_base_url", self.emulator.streaming_base_url)
        options.setdefault("streaming_url", self.prosody.ws_url)
        # On a plain XMPP server the gateway is an ordinary account: trust exactly that one.
        options.setdefault("trusted_peers", re.escape(f"{GATEWAY}@{self.prosody.domain}") + "/.*")
        options.setdefault("ice_host_addresses", ["127.0.0.1"])
        options.setdefault("default_source", SilenceSource())
        options.setdefault("default_sink", NullSink())
        sdk = pcw.PureCloudWebrtcSdk(user.access_token, **options)
        self.sdks.append(sdk)

        @sdk.on("error")
        def on_error(error: Any, details: Any) -> None:
            self.errors.append((error, details))

        if initialize:
            sdk.initialize(timeout=15)
        return sdk

    def raw_client(self, local: str, resource: str = "raw") -> RawXmppClient:
        jid = self.prosody.register(local, "raw-secret")
        client = RawXmppClient(self.prosody.ws_url, jid, "raw-secret", resource)
        self.raw.append(client)
        return client

    def close(self) -> None:
        for sdk in self.sdks:
            sdk.close()
        for client in self.raw:
            client.close()


@pytest.fixture
def env(prosody: ProsodyServer) -> Iterator[Env]:
    with Emulator(org_name=ORG_NAME) as emu:
        e = Env(prosody, emu)
        try:
            yield e
        finally:
            e.close()


@pytest.fixture
def call_env(prosody: ProsodyServer) -> Iterator[Env]:
    """The emulator's gateway logged in to Prosody: calls travel through the real server."""
    gateway_jid = prosody.register(GATEWAY, GATEWAY_PASSWORD)
    login = XmppServerLogin(prosody.ws_url, gateway_jid, GATEWAY_PASSWORD, resource="gjoll-1")
    with Emulator(org_name=ORG_NAME, xmpp_server=login) as emu:
        e = Env(prosody, emu)
        try:
            yield e
        finally:
            e.close()


class WireLog(logging.Handler):
    """Collects the SDK's wire log (``purecloud_webrtc.wire``, DEBUG) as (direction, element)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.frames: List[Tuple[str, str]] = []
        # Not self.lock: logging.Handler.handle() already holds that one around emit().
        self.frames_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        direction, _, text = record.getMessage().partition(" ")
        with self.frames_lock:
            self.frames.append((direction, text))

    def elements(self, direction: str) -> List[X.Element]:
        with self.frames_lock:
            texts = [t for d, t in self.frames if d == direction]
        out = []
        for text in texts:
            try:
                out.append(X.parse(text))
            except X.XmlError:
                pass
        return out


@pytest.fixture
def wire() -> Iterator[WireLog]:
    handler = WireLog()
    logger = logging.getLogger("purecloud_webrtc.wire")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def _jmi(el: X.Element) -> Tuple[str, str]:
    child = next(iter(el), None)
    if child is None or X.split(child.tag)[0] != X.NS["jmi"]:
        return ("", "")
    return (X.split(child.tag)[1], child.get("id") or "")


def _propose(sid: str, to: str) -> str:
    return (f"<message xmlns='jabber:client' to='{to}'><propose xmlns='urn:xmpp:jingle-message:0' id='{sid}' "
            f"inin-cid='conv-{sid}' inin-autoanswer='false'>"
            f"<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>")


# -- signaling ---------------------------------------------------------------------------------------


def test_connect_sasl_bind_ice_discovery_pings_and_close(env: Env, wire: WireLog) -> None:
    env.register_user()
    sdk = env.sdk(jid_resource="pcw-interop-1", ping_interval=0.3)
    user = env.emulator.user
    # RFC 7395 open, SASL PLAIN with the service's authcid form (bare JID), restart, bind with our resource.
    assert sdk.connected and sdk.jid == f"{user.jid}/pcw-interop-1"
    sent = wire.elements("SEND")
    auth = [el for el in sent if el.tag == X.q("sasl", "auth")]
    assert len(auth) == 1  # the wire log redacts it (token inside); Prosody offered PLAIN only and said success
    assert any(el.tag == X.q("sasl", "success") for el in wire.elements("RECV"))
    opens = [el for el in sent if el.tag == X.q("framing", "open")]
    assert len(opens) == 2 and all(el.get("to") == user.domain for el in opens)  # before and after SASL
    # XEP-0215 answered by Prosody's mod_external_services (extdisco:1) with no servers: host candidates only.
    assert sdk.ice_servers == []
    # IQ correlation: every IQ we sent got exactly its own answer.
    _wait(lambda: sum(1 for el in wire.elements("SEND") if el.find(X.q("ping", "ping")) is not None) >= 3, 10,
          "three client pings")
    sent = {el.get("id"): el.get("to") for el in wire.elements("SEND")
            if el.tag == X.q("client", "iq") and el.get("type") in ("get", "set")}
    _wait(lambda: set(sent) <= {el.get("id") for el in wire.elements("RECV") if el.get("type") in ("result", "error")},
          10, "an answer for every IQ")
    # The one IQ Prosody refuses is the subscription to the notification service (docs/protocol.rst §2.7), a host a
    # plain XMPP server does not have; the SDK logs it and carries on.
    errors = {el.get("id") for el in wire.elements("RECV") if el.get("type") == "error"}
    assert all((sent.get(i) or "").startswith("notifications.") for i in errors), errors
    # The server pinging us (XEP-0199) and asking disco#info: a raw client stands in for it.
    raw = env.raw_client("pinger")
    raw.send_raw(f"<iq xmlns='jabber:client' type='get' id='p1' to='{sdk.jid}'><ping xmlns='urn:xmpp:ping'/></iq>")
    pong = raw.expect(lambda el: el.get("id") == "p1")
    assert pong.get("type") == "result" and pong.get("from") == sdk.jid
    raw.send_raw(f"<iq xmlns='jabber:client' type='get' id='d1' to='{sdk.jid}'>"
                 f"<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
    disco = raw.expect(lambda el: el.get("id") == "d1")
    features = {f.get("var") for f in disco.iter(X.q("disco_info", "feature"))}
    assert {"urn:xmpp:jingle:1", "urn:xmpp:jingle-message:0", "urn:xmpp:ping"} <= features
    # An IQ nobody handles is answered service-unavailable, with the id kept.
    raw.send_raw(f"<iq xmlns='jabber:client' type='get' id='v1' to='{sdk.jid}'><query xmlns='jabber:iq:version'/></iq>")
    err = raw.expect(lambda el: el.get("id") == "v1")
    assert err.get("type") == "error" and err.find(f".//{X.q('stanzas', 'service-unavailable')}") is not None
    # Close: our <close/>, Prosody's <close/> back.
    with sdk.expect_event("disconnected", timeout=10) as ev:
        sdk.disconnect()
    assert ev.value["reconnecting"] is False and not sdk.connected
    assert any(el.tag == X.q("framing", "close") for el in wire.elements("SEND"))
    _wait(lambda: any(el.tag == X.q("framing", "close") for el in wire.elements("RECV")), 5, "Prosody's <close/>")
    assert env.errors == []


def test_wrong_password_is_a_clear_authentication_error(env: Env) -> None:
    env.register_user(password="authKey:some-other-token")
    sdk = env.sdk(initialize=False, reconnect=False)
    with pytest.raises(pcw.AuthenticationError) as info:
        sdk.initialize(timeout=15)
    assert "SASL not-authorized" in str(info.value)
    assert not sdk.connected


def test_messages_routed_by_bare_and_full_jid(env: Env) -> None:
    env.register_user()
    caller = re.escape(f"caller@{env.prosody.domain}") + "/.*"  # the raw client below proposes here
    one = env.sdk(jid_resource="desk", trusted_peers=caller)
    two = env.sdk(jid_resource="laptop", trusted_peers=caller)
    user = env.emulator.user
    raw = env.raw_client("caller", "phone")
    pending: List[Tuple[str, str]] = []
    lock = threading.Lock()
    for name, sdk in (("desk", one), ("laptop", two)):
        sdk.on("pendingSession", lambda p, name=name: pending.append((name, p.id)))
    # To the bare JID: every resource rings, though neither sent presence (our fan-out module).
    raw.send_raw(_propose("s-bare", user.jid))
    _wait(lambda: sorted(pending) == [("desk", "s-bare"), ("laptop", "s-bare")], 10, "both resources ringing")
    # To one full JID: only that resource.
    raw.send_raw(_propose("s-full", f"{user.jid}/laptop"))
    _wait(lambda: ("laptop", "s-full") in pending, 10, "laptop ringing")
    with lock:
        assert ("desk", "s-full") not in pending
    # proceed goes back to the proposer's full JID, stamped by Prosody with ours.
    one.accept_pending_session("s-bare")
    proceed = raw.expect(lambda el: _jmi(el) == ("proceed", "s-bare"))
    assert proceed.get("from") == one.jid and proceed.get("to") == raw.full_jid
    # A message a client sends to its own bare JID (the XEP-0353 accept) reaches all its resources, itself
    # included, with the "to" kept (Prosody strips it; the module puts it back).
    own = env.raw_client("caller", "tablet")  # a second resource of the raw user
    raw.send_raw(f"<message xmlns='jabber:client' to='{raw.jid}'>"
                 f"<accept xmlns='urn:xmpp:jingle-message:0' id='x1'/></message>")
    for client in (raw, own):
        got = client.expect(lambda el: _jmi(el) == ("accept", "x1"))
        assert got.get("to") == raw.jid and got.get("from") == raw.full_jid
    # Retract to the bare JID cancels the other pending proposal on every resource.
    cancelled: List[str] = []
    two.on("cancelPendingSession", lambda sid: cancelled.append(sid))
    raw.send_raw(f"<message xmlns='jabber:client' to='{user.jid}'>"
                 f"<retract xmlns='urn:xmpp:jingle-message:0' id='s-full'/></message>")
    _wait(lambda: cancelled == ["s-full"], 10, "retract on the laptop")
    assert env.errors == []


# -- calls ---------------------------------------------------------------------------------------------


def _answer_inbound(env: Env, sdk: pcw.PureCloudWebrtcSdk, tone: float) -> Tuple[Any, pcw.Session]:
    with sdk.expect_event("pendingSession", timeout=15) as ev:
        call = env.emulator.inbound_call(tone_hz=440.0)
    pending = ev.value
    assert pending.id == call.session_id and pending.conversation_id == call.conversation_id
    # The propose came through Prosody from the gateway's own account.
    assert pending.from_jid == f"{GATEWAY}@{env.prosody.domain}/gjoll-1"
    with sdk.expect_event("sessionStarted", timeout=15) as started:
        sdk.accept_pending_session(pending.id, source=ToneSource(660.0), sink=BufferSink())
    session = started.value
    call.wait_state("connected", timeout=20)
    return call, session


def _check_audio(session: pcw.Session, call: Any) -> None:
    call.wait_for_audio(timeout=15, min_seconds=1.0)
    assert session.sink.wait_for_duration(1.2, timeout=15)
    heard_by_sdk = session.sink.dominant_frequency(last_seconds=1.0)
    heard_by_remote = call.heard_frequency(seconds=1.0)
    assert abs(heard_by_sdk - 440.0) <= TOL, heard_by_sdk
    assert abs(heard_by_remote - 660.0) <= TOL, heard_by_remote


def test_full_call_through_prosody(call_env: Env) -> None:
    call_env.register_user()
    sdk = call_env.sdk(jid_resource="softphone")
    call, session = _answer_inbound(call_env, sdk, 660.0)
    assert call.client_jid == sdk.jid
    _check_audio(session, call)
    # The SDK ends it: REST to the emulator, whose gateway sends session-terminate through Prosody.
    with sdk.expect_event("sessionEnded", timeout=15) as ended:
        sdk.end_session(id=session.id)
    assert ended.args[1] == "success"
    call.wait_state("ended", timeout=10)
    assert "session-accept" in call.jingle_log
    assert call_env.errors == []


def test_outbound_call_through_prosody(call_env: Env) -> None:
    call_env.register_user()
    sdk = call_env.sdk(jid_resource="softphone", default_source=ToneSource(660.0))
    with sdk.expect_event("sessionStarted", timeout=20) as started:
        cid = sdk.start_softphone_session("+13175550199")
    session = started.value
    assert session.conversation_id == cid
    call = call_env.emulator.call_by_conversation(cid)
    call.wait_state("connected", timeout=20)
    call.wait_for_audio(timeout=15, min_seconds=1.0)
    assert abs(call.heard_frequency(seconds=1.0) - 660.0) <= TOL
    with sdk.expect_event("sessionEnded", timeout=15):
        call.hangup()
    assert call_env.errors == []


def test_call_survives_a_prosody_restart(call_env: Env) -> None:
    call_env.register_user()
    sdk = call_env.sdk(jid_resource="softphone")
    events: List[Tuple[str, Any]] = []
    sdk.on("disconnected", lambda info: events.append(("disconnected", info["reconnecting"])))
    sdk.on("connected", lambda info: events.append(("connected", info["reconnect"])))
    call, session = _answer_inbound(call_env, sdk, 660.0)
    _check_audio(session, call)
    gateway = call_env.emulator._xmpp_client
    assert gateway is not None and gateway.logins == 1

    call_env.prosody.kill()
    _wait(lambda: ("disconnected", True) in events, 15, "the SDK noticing the server is gone")
    heard_before = call.seconds_heard()
    call_env.prosody.start()
    _wait(lambda: ("connected", True) in events, 30, "the SDK reconnecting by itself")
    _wait(lambda: gateway.logins == 2 and gateway.connected, 30, "the gateway logging in again")
    assert sdk.jid == f"{call_env.emulator.user.jid}/softphone"  # same resource after the restart
    # Media is peer to peer: it never stopped (docs/protocol.rst §2.10).
    _wait(lambda: call.seconds_heard() > heard_before + 0.5, 10, "audio still flowing")
    assert session.connection_state == "connected" and not session.ended
    # And signaling works again through the new server process: the far end hangs up.
    with sdk.expect_event("sessionEnded", timeout=15) as ended:
        call.hangup()
    assert ended.args[1] == "success"
    # The first connect's own event may reach the events thread after on() was called: leave it out.
    assert [e for e in events if e != ("connected", False)][:2] == [("disconnected", True), ("connected", True)]
    assert call_env.errors == []
