"""Hostile and broken input: each case gives a clear typed error or event, and a healthy call stays healthy."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.api import ApiClient
from purecloud_webrtc.media import BufferSink, ToneSource

from helpers import answer_call, wait_until


answer = answer_call


def still_healthy(sdk, session, call):
    frames, heard = session.frames_received, call.seconds_heard()
    wait_until(lambda: session.frames_received >= frames + 20 and call.seconds_heard() >= heard + 0.4, 10, "audio")
    assert sdk.connected and not session.ended
    assert abs(session.sink.dominant_frequency(0.4) - 440.0) <= 5


BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><message xmlns="jabber:client">&lol3;</message>')
EXTERNAL = ('<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            '<message xmlns="jabber:client"><body>&xxe;</body></message>')

HOSTILE_FRAMES = {
    "malformed": ("<iq type='set'><unclosed>", "malformed XML"),
    "not xml": ("hello there", "malformed XML"),
    "entity bomb": (BOMB, "XML rejected"),
    "external entity": (EXTERNAL, "XML rejected"),
    "oversized": ("<message xmlns='jabber:client'><body>" + "x" * (1 << 20) + "</body></message>", "oversized"),
    "propose without id": ('<message xmlns="jabber:client" from="gw@x/y"><propose xmlns="urn:xmpp:jingle-message:0"/>'
                           "</message>", "without an id"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FRAMES))
def test_hostile_frames_give_an_error_event_and_the_call_goes_on(emulator, make_sdk, case):
    sdk = make_sdk()
    session, call = answer(sdk, emulator)
    frame, expected = HOSTILE_FRAMES[case]
    with sdk.expect_event("error", timeout=10) as ev:
        emulator.send_raw(frame)
    assert isinstance(ev.value, pcw.SignalingError) and expected in str(ev.value)
    still_healthy(sdk, session, call)
    assert "root:" not in str(ev.args)  # nothing from the external entity was read


ODD_STANZAS = [
    # (stanza, what the SDK must answer, or None when it must stay silent)
    ('<iq xmlns="jabber:client" type="get" from="acme"><ping xmlns="urn:xmpp:ping"/></iq>', None),  # no id
    ('<iq xmlns="jabber:client" type="set" id="o1" from="acme"/>', "bad-request"),  # no payload
    ('<iq xmlns="jabber:client" type="set" id="o2" from="acme"><unknown xmlns="urn:x"/></iq>', "service-unavailable"),
    ('<iq xmlns="jabber:client" type="set" id="o3" from="acme"><jingle xmlns="urn:xmpp:jingle:1"/></iq>',
     "bad-request"),  # no action/sid
    ('<iq xmlns="jabber:client" type="set" id="o4" from="acme"><jingle xmlns="urn:xmpp:jingle:1" '
     'action="transport-info" sid="ended-or-unknown"/></iq>', "unknown-session"),
    ('<iq xmlns="jabber:client" type="result" id="never-asked"/>', None),
    ('<iq xmlns="jabber:client" type="bogus" id="o5"/>', None),
    ('<message xmlns="jabber:client" from="gw@x/y"><retract xmlns="urn:xmpp:jingle-message:0" id="nope"/></message>',
     None),
    ('<presence xmlns="jabber:client" from="gw@x/y" type="unavailable"/>', None),
    ('<foo xmlns="urn:unknown"/>', None),
]


def test_odd_stanzas_are_answered_correctly_and_harm_nothing(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer(sdk, emulator)
    errors = []
    sdk.on("error", lambda error, details: errors.append(error))
    for stanza, expected in ODD_STANZAS:
        start = len(emulator.stanzas())
        emulator.send_raw(stanza)
        if expected is not None:
            wait_until(lambda: any(d == "in" and expected in t for d, t in emulator.stanzas()[start:]), 5, expected)
    # A duplicate session-initiate for the live session is refused as out of order, the session goes on.
    initiate = next(t for d, t in emulator.stanzas() if d == "out" and 'action="session-initiate"' in t)
    emulator.send_raw(initiate.replace('id="', 'id="dup-', 1))
    wait_until(lambda: any(d == "in" and "out-of-order" in t for d, t in emulator.stanzas()), 5, "out-of-order")
    still_healthy(sdk, session, call)
    assert errors == []  # answered by protocol, not reported as errors


def test_invalid_sdp_inside_valid_jingle_is_refused_and_reported(emulator, make_sdk):
    sdk = make_sdk()
    gateway = emulator.intruder("webrtc-1@gjoll.us-east-1.emulator.local/x")  # trusted, and proceeded below
    sid = gateway.propose(auto_answer=True)
    wait_until(lambda: any("<proceed" in t for t in gateway.received), 10, "the proceed")
    bad = ('<iq xmlns="jabber:client" type="set" id="bad-1">'
           f'<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="{sid}">'
           '<content creator="initiator" name="audio"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">'
           '<payload-type id="111" name="opus" clockrate="48000" channels="2"/></description>'
           '<transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="u" pwd="p"/></content></jingle></iq>')
    with sdk.expect_event("error") as ev:
        gateway.send(bad, gateway.client_jid())
    assert isinstance(ev.value, pcw.PureCloudWebrtcError)
    reply = gateway.wait_for_reply("bad-1")
    assert 'type="error"' in reply and "unknown-session" not in reply  # refused for its offer, not its sender
    assert sdk.sessions == [] and sdk.connected


# -- REST ---------------------------------------------------------------------------------


class Scripted(BaseHTTPRequestHandler):
    script: list = []
    seen: list = []

    def _reply(self):
        self.seen.append((self.command, self.path, time.monotonic()))
        status, headers, body = self.script.pop(0) if self.script else (200, {}, b"{}")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = _reply

    def log_message(self, *args):
        pass


@pytest.fixture
def rest():
    Scripted.script, Scripted.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ApiClient(f"http://127.0.0.1:{server.server_address[1]}", "tok", timeout=5, retries=3), Scripted
    server.shutdown()
    server.server_close()


def test_rest_5xx_on_get_is_retried(rest):
    api, s = rest
    s.script = [(503, {}, b""), (500, {}, b""), (200, {}, b'{"id":"o1"}')]
    assert api.get_organization() == {"id": "o1"}
    assert len(s.seen) == 3


def test_rest_429_honours_retry_after(rest):
    api, s = rest
    s.script = [(429, {"Retry-After": "1"}, b'{"message":"slow down"}'), (200, {}, b'{"id":"o1"}')]
    assert api.get_organization() == {"id": "o1"}
    assert s.seen[1][2] - s.seen[0][2] >= 0.9


def test_rest_timeout_is_a_deadline_for_retries_and_retry_after(rest):
    api, s = rest
    s.script = [(429, {"Retry-After": "8"}, b'{"message":"slow down"}'), (200, {}, b'{"id":"o1"}')]
    start = time.monotonic()
    with pytest.raises(pcw.ApiError) as info:
        api.get_organization(timeout=2)
    # The 8 s wait would end past the 2 s deadline: it is not started (before, it took 8 s and more).
    assert info.value.status == 429 and len(s.seen) == 1 and time.monotonic() - start < 6
    s.script = [(503, {"Retry-After": "0.2"}, b""), (200, {}, b'{"id":"o1"}')]
    assert api.get_organization(timeout=5) == {"id": "o1"}  # a wait that fits is honoured


def test_rest_post_is_not_retried_and_errors_carry_context(rest):
    api, s = rest
    s.script = [(503, {"inin-correlation-id": "corr-1"}, b'{"message":"down"}')]
    with pytest.raises(pcw.ApiError) as info:
        api.create_streaming_channel()
    assert (info.value.status, info.value.correlation_id, info.value.method) == (503, "corr-1", "POST")
    assert "down" in str(info.value) and len(s.seen) == 1


@pytest.mark.parametrize("status, body, error, text", [
    (401, b'{"message":"expired"}', pcw.AuthenticationError, "expired"),
    (403, b"", pcw.AuthenticationError, "403"),
    (404, b'{"message":"no such conversation"}', pcw.ApiError, "no such conversation"),
    (400, b"<html>oops</html>", pcw.ApiError, "oops"),
    (200, b"{not json", pcw.ApiError, "not JSON"),
    (200, b'{"chat":{}}', pcw.ApiError, "jabberId"),
])
def test_rest_errors_are_typed(rest, status, body, error, text):
    api, s = rest
    s.script = [(status, {}, body)]
    with pytest.raises(error) as info:
        api.get_me()
    assert text in str(info.value)
