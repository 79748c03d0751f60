"""Calls that survive the network: keep-alive, reconnect, transfer, survivability, tokens, ICE refresh.

The SDK's streaming socket goes through a fault-injecting proxy (tests/faultproxy.py) in front of the
emulator; media runs peer to peer on 127.0.0.1 as it does against the real service, so a signaling
outage must not interrupt audio.
"""

from __future__ import annotations

import threading
import time

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.emulator import FaultProxy
from purecloud_webrtc.media import BufferSink, ToneSource

from helpers import answer_call, wait_until

FAST = dict(ping_interval=0.3, ping_timeout=0.3, reconnect_initial_delay=0.1, reconnect_max_delay=0.5)


@pytest.fixture
def proxy(emulator):
    with FaultProxy(emulator.port) as p:
        yield p


class Log:
    """Connection events in delivery order."""

    def __init__(self, sdk):
        self.items = []
        self.lock = threading.Lock()
        # Let events already queued (the initial "connected") be delivered before listening: the
        # events thread delivers in order, so once this marker arrives everything before it has.
        with sdk.expect_event("trace", predicate=lambda level, message, details: message == "log-start"):
            sdk._emit("trace", "debug", "log-start", {})
        sdk.on("connected", lambda info: self._add(("connected", info["reconnect"])))
        sdk.on("disconnected", lambda info: self._add(("disconnected", info["reconnecting"])))
        sdk.on("sessionEnded", lambda session, reason: self._add(("sessionEnded", reason)))
        self.errors = []
        sdk.on("error", lambda error, details: self.errors.append(error))

    def _add(self, item):
        with self.lock:
            self.items.append(item)

    def get(self):
        with self.lock:
            return list(self.items)


answer = answer_call


def audio_flows(session, call, seconds=0.6):
    frames, heard = session.frames_received, call.seconds_heard()
    time.sleep(seconds)
    return session.frames_received - frames >= 20 and call.seconds_heard() - heard >= 0.4


def channels_created(emulator):
    return sum(1 for m, p, s in emulator.rest_log if m == "POST" and p.startswith("/api/v2/notifications/channels"))


# -- 1. keep-alive -----------------------------------------------------------------------


def test_half_open_socket_is_detected_by_pings_and_the_call_survives(emulator, make_sdk, proxy):
    sdk = make_sdk(streaming_base_url=proxy.url, **FAST)
    log = Log(sdk)
    session, call = answer(sdk, emulator)
    proxy.blackhole()  # no FIN, no RST: only the missing pongs can tell
    wait_until(lambda: ("disconnected", True) in log.get(), 10, "a dead socket to be noticed")
    assert audio_flows(session, call)  # media does not go through the signaling socket
    proxy.restore()
    wait_until(lambda: ("connected", True) in log.get(), 15, "the reconnect")
    assert log.get() == [("disconnected", True), ("connected", True)]
    with sdk.expect_event("sessionEnded"):
        call.hangup()  # Jingle reaches the session on the new socket


def test_server_pings_are_answered(emulator, make_sdk):
    sdk = make_sdk()
    emulator.send_raw(f'<iq xmlns="jabber:client" type="get" id="srv-ping-1" from="{emulator.user.domain}">'
                      '<ping xmlns="urn:xmpp:ping"/></iq>')
    wait_until(lambda: any(d == "in" and 'id="srv-ping-1"' in t and 'type="result"' in t
                           for d, t in emulator.stanzas()), 5, "the pong")


def test_client_pings_go_out_and_are_answered(emulator, make_sdk):
    sdk = make_sdk(ping_interval=0.2, ping_timeout=1.0)
    wait_until(lambda: sum('urn:xmpp:ping' in t for d, t in emulator.stanzas() if d == "in") >= 3, 5, "3 pings")
    assert sdk.connected and sdk._core.stream.missed_pings == 0


# -- 2. reconnect ---------------------------------------------------------------------------


def test_reconnect_backs_off_until_the_service_returns(emulator, make_sdk, proxy):
    sdk = make_sdk(streaming_base_url=proxy.url, **FAST)
    log = Log(sdk)
    jid = sdk.jid
    proxy.refuse()
    wait_until(lambda: channels_created(emulator) >= 4, 15, "several attempts")
    assert not sdk.connected and log.get() == [("disconnected", True)]
    proxy.restore()
    wait_until(lambda: sdk.connected, 15, "the reconnect")
    assert log.get() == [("disconnected", True), ("connected", True)]
    assert sdk.jid == jid  # the same bound resource every time (docs/protocol.rst §2.4)


def test_reconnect_gives_up_after_max_attempts(emulator, make_sdk, proxy):
    sdk = make_sdk(streaming_base_url=proxy.url, reconnect_max_attempts=3, **FAST)
    log = Log(sdk)
    before = channels_created(emulator)
    proxy.refuse()
    wait_until(lambda: ("disconnected", False) in log.get(), 15, "giving up")
    assert channels_created(emulator) - before == 3
    assert any("gave up reconnecting after 3 attempts" in str(e) for e in log.errors)
    time.sleep(1.0)
    assert channels_created(emulator) - before == 3  # and then it stays quiet


def test_disconnect_stops_the_reconnect_loop_at_once(emulator, make_sdk, proxy):
    sdk = make_sdk(streaming_base_url=proxy.url, **FAST)
    proxy.refuse()
    wait_until(lambda: channels_created(emulator) >= 3, 15, "the retry loop")
    sdk.disconnect()
    count = channels_created(emulator)
    proxy.restore()
    time.sleep(1.5)
    assert channels_created(emulator) == count and not sdk.connected


@pytest.mark.parametrize("how", ["cxfr", "v2.system.no_longer_subscribed", "duplicate_id"])
def test_transfer_and_dead_channel_events_move_to_a_new_channel(emulator, make_sdk, how):
    sdk = make_sdk(**FAST)
    log = Log(sdk)
    session, call = answer(sdk, emulator)
    before = channels_created(emulator)
    if how == "cxfr":
        emulator.send_connection_transfer()
    else:
        emulator.send_service_event(how)
    wait_until(lambda: ("connected", True) in log.get(), 10, "the hard reconnect")
    assert log.get() == [("disconnected", True), ("connected", True)]
    assert channels_created(emulator) == before + 1
    if how == "cxfr":  # SC sends no result for the transfer IQ
        assert not any(d == "in" and 'id="cxfr-' in t for d, t in emulator.stanzas())
    assert audio_flows(session, call)
    with sdk.expect_event("sessionEnded"):
        sdk.end_session(id=session.id)


# -- 3. survivability ------------------------------------------------------------------------


def test_five_second_outage_keeps_audio_and_the_session(emulator, make_sdk, proxy):
    sdk = make_sdk(streaming_base_url=proxy.url, **FAST)
    log = Log(sdk)
    session, call = answer(sdk, emulator, tone=523.0, sdk_tone=784.0)
    proxy.refuse()
    outage_end = time.monotonic() + 3.0
    while time.monotonic() < outage_end:
        assert audio_flows(session, call, 0.5)
    proxy.restore()
    wait_until(lambda: ("connected", True) in log.get(), 15, "the reconnect")
    assert abs(call.heard_frequency(1.0) - 784.0) <= 5 and abs(session.sink.dominant_frequency(1.0) - 523.0) <= 5
    with sdk.expect_event("sessionEnded") as ended:
        sdk.end_session(id=session.id)
    assert ended.args[1] == "success"
    assert log.get()[-1] == ("sessionEnded", "success")


def test_sessions_whose_media_died_while_away_are_cleaned_up(emulator, make_sdk):
    sdk = make_sdk(**FAST)
    session, call = answer(sdk, emulator)
    sdk.disconnect()
    # The terminate cannot reach us, but the far end closes its peer connection: the media is gone, so the
    # call ends at once (before, it stayed "active" until the next connect cleaned it up with "gone").
    with sdk.expect_event("sessionEnded", timeout=30) as ended:
        call.hangup()
    assert ended.args == (session, "connectivity-error")
    sdk.initialize()
    assert sdk.sessions == []


# -- 4. tokens -------------------------------------------------------------------------------


def test_set_access_token_is_used_by_the_next_reconnect_without_dropping_the_call(emulator, make_sdk):
    sdk = make_sdk(**FAST)
    log = Log(sdk)
    session, call = answer(sdk, emulator)
    emulator.rotate_access_token("rotated-token")
    sdk.set_access_token("rotated-token")
    emulator.drop_connections()
    wait_until(lambda: ("connected", True) in log.get(), 10, "the reconnect")
    assert not log.errors and audio_flows(session, call)


def test_revoked_token_stops_the_retry_loop_with_an_authentication_error(emulator, make_sdk):
    sdk = make_sdk(**FAST)
    log = Log(sdk)
    emulator.rotate_access_token("someone-else-has-it")
    emulator.drop_connections()
    wait_until(lambda: ("disconnected", False) in log.get(), 10, "giving up")
    assert [type(e) for e in log.errors] == [pcw.AuthenticationError]
    assert log.errors[0].status == 401
    count = len(emulator.rest_log)
    time.sleep(1.0)
    assert len(emulator.rest_log) == count  # no hammering


def test_sasl_refusal_on_reconnect_stops_the_retry_loop(emulator, make_sdk):
    sdk = make_sdk(**FAST)
    log = Log(sdk)
    emulator.refuse_sasl("not-authorized")
    emulator.drop_connections()
    wait_until(lambda: ("disconnected", False) in log.get(), 10, "giving up")
    assert isinstance(log.errors[0], pcw.AuthenticationError) and log.errors[0].condition == "not-authorized"
    before = channels_created(emulator)
    time.sleep(1.0)
    assert channels_created(emulator) == before


def test_temporary_auth_failure_keeps_retrying(emulator, make_sdk):
    sdk = make_sdk(**FAST)
    log = Log(sdk)
    emulator.refuse_sasl("temporary-auth-failure")
    before = channels_created(emulator)
    emulator.drop_connections()
    wait_until(lambda: channels_created(emulator) >= before + 2, 10, "retries")
    emulator.refuse_sasl(None)
    wait_until(lambda: ("connected", True) in log.get(), 10, "the reconnect")
    assert not log.errors


# -- 5. ICE servers --------------------------------------------------------------------------


def test_ice_servers_are_refreshed_periodically_and_on_reconnect(emulator, make_sdk):
    first = [{"urls": "turn:127.0.0.1:3478", "username": "u1", "credential": "c1"}, {"urls": "stun:127.0.0.1:3478"}]
    second = [{"urls": "turn:127.0.0.1:3478", "username": "u2", "credential": "c2"}, {"urls": "stun:127.0.0.1:3478"}]
    third = [{"urls": "turn:127.0.0.1:3478", "username": "u3", "credential": "c3"}, {"urls": "stun:127.0.0.1:3478"}]
    emulator.set_ice_servers(first)
    sdk = make_sdk(ice_refresh_interval=0.3, **FAST)
    assert sdk.ice_servers == first
    emulator.set_ice_servers(second)
    wait_until(lambda: sdk.ice_servers == second, 5, "the periodic refresh")
    sdk2 = make_sdk(**FAST)  # default 6 h period: only a reconnect refreshes it
    emulator.set_ice_servers(third)
    with sdk2.expect_event("connected"):
        emulator.drop_connections()
    wait_until(lambda: sdk2.ice_servers == third, 5, "the refresh on reconnect")
