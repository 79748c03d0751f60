"""``connected`` means a bound, healthy stream: faults injected at the exact phase of a connect (scripted)."""

from __future__ import annotations

import time
from typing import Any, List, Tuple

import pytest

import purecloud_webrtc as pcw

from helpers import wait_until
from scripted import ScriptedApi, ScriptedXmpp

ME = "5f99d2c4b1a0e8f7d6c5b4a3c@acmecorp.orgspan.com"

PHASES = {
    "bind": lambda text: "xmpp-bind" in text,
    "ICE server discovery": lambda text: "extdisco" in text,
    "subscribe": lambda text: "pubsub" in text,
}


def make(server: ScriptedXmpp, **options: Any) -> Tuple[Any, List[Tuple[str, Any]]]:
    options.setdefault("ping_interval", 0)
    sdk = pcw.PureCloudWebrtcSdk("tok", api_base_url="http://api.scripted.test", allow_insecure=True,
                                 streaming_base_url="ws://streaming.scripted.test",
                                 reconnect_initial_delay=0.05, reconnect_max_delay=0.1,
                                 xmpp_transport=server.factory, http_adapter=ScriptedApi("user-1", ME), **options)
    events: List[Tuple[str, Any]] = []
    for name in ("connected", "disconnected"):
        sdk.on(name, lambda info, name=name: events.append((name, info)))
    return sdk, events


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_cut_during_initialize_fails_it_and_leaves_nothing_running(phase):
    server = ScriptedXmpp(ME)
    sdk, events = make(server)
    try:
        server.cut_when(PHASES[phase])
        with pytest.raises(pcw.ConnectionFailedError):
            sdk.initialize(timeout=10)
        assert not sdk.connected and sdk.state in ("disconnected", "idle")
        time.sleep(0.5)  # 10 x the back-off: a background reconnect would have started by now
        assert len(server.transports) == 1, "a failed initialize() went on connecting in the background"
        assert sdk._core._reconnect_task is None
        assert [name for name, _ in events] == []
        # A second initialize() is a clean new attempt.
        sdk.initialize(timeout=10)
        assert sdk.connected
        wait_until(lambda: [name for name, _ in events] == ["connected"], 5, "one connected event")
    finally:
        sdk.close()


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_reconnect_cut_in_any_phase_tries_again_and_connects_once(phase):
    server = ScriptedXmpp(ME)
    sdk, events = make(server)
    try:
        sdk.initialize(timeout=10)
        server.cut_when(PHASES[phase])  # the first reconnect attempt breaks there
        server.drop()
        wait_until(lambda: sdk.connected and len(server.transports) == 3, 10, "the second attempt to connect")
        time.sleep(0.3)
        names = [(name, info.get("reconnect", info.get("reconnecting"))) for name, info in events]
        assert names == [("connected", False), ("disconnected", True), ("connected", True)], names
        assert not server.transports[-1].closed and server.transports[1].closed
    finally:
        sdk.close()


def test_a_loss_right_after_a_reconnect_starts_another():
    server = ScriptedXmpp(ME)
    sdk, events = make(server)
    try:
        sdk.initialize(timeout=10)
        for round_ in range(1, 4):
            server.drop()
            wait_until(lambda: sdk.connected and len(server.transports) == round_ + 1, 10, f"reconnect {round_}")
        names = [name for name, _ in events]
        assert names == ["connected"] + ["disconnected", "connected"] * 3, names
    finally:
        sdk.close()


def test_a_ping_that_cannot_be_sent_drops_the_stream():
    server = ScriptedXmpp(ME)
    sdk, events = make(server, ping_interval=0.2, ping_timeout=0.5)
    try:
        sdk.initialize(timeout=10)
        transport = server.transports[-1]
        transport.broken = True  # the socket dies without telling: sends now fail
        wait_until(lambda: ("disconnected", True) in [(n, i.get("reconnecting")) for n, i in events], 10,
                   "the failed ping to drop the stream")
        wait_until(lambda: sdk.connected and len(server.transports) == 2, 10, "the reconnect")
    finally:
        sdk.close()


GW = "webrtc-7731@gjoll.us-east-1.example.test/a61c4e20"


def propose(sid: str) -> str:
    return (f'<message xmlns="jabber:client" from="{GW}" to="{ME}"><propose xmlns="urn:xmpp:jingle-message:0" '
            f'id="{sid}" inin-cid="c-{sid}" inin-autoanswer="false"><description '
            f'xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"/></propose></message>')


def test_a_proceed_that_may_have_been_lost_is_sent_again_after_the_reconnect():
    server = ScriptedXmpp(ME)
    sdk, events = make(server)
    try:
        sdk.initialize(timeout=10)
        with sdk.expect_event("pendingSession"):
            server.inject(propose("s1"))
        server.cut_when(lambda text: "<proceed" in text)  # the proceed never leaves: the socket breaks
        sdk.accept_pending_session("s1")
        wait_until(lambda: sdk.connected and len(server.transports) == 2, 10, "the reconnect")
        wait_until(lambda: any("<proceed" in t and 's1' in t for t in server.sent), 5, "the proceed again")
        assert [p.id for p in sdk.pending_sessions] == ["s1"]
    finally:
        sdk.close()


def test_a_proposal_whose_retract_may_have_been_lost_expires_after_a_reconnect():
    server = ScriptedXmpp(ME)
    sdk, events = make(server, pending_reconnect_grace=0.5)
    try:
        sdk.initialize(timeout=10)
        with sdk.expect_event("pendingSession"):
            server.inject(propose("gone"))
            server.inject(propose("rings-on"))
        with sdk.expect_event("cancelPendingSession", timeout=10, predicate=lambda sid: sid == "gone") as ev:
            server.drop()
            wait_until(lambda: sdk.connected and len(server.transports) == 2, 10, "the reconnect")
            server.inject(propose("rings-on"))  # the service proposes this one again: it still rings
        assert ev.value == "gone"
        with pytest.raises(pcw.SessionStateError, match="expired"):
            sdk.accept_pending_session("gone")
        assert [p.id for p in sdk.pending_sessions] == ["rings-on"]
    finally:
        sdk.close()
