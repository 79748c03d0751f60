"""Faults at the exact moment they hurt (issue 13): the signalling link dies between the service's message
and the SDK's answer, during a hang-up, or the whole service is killed mid-call.

``FaultProxy.blackhole_after(needle)`` delivers the service's frame containing ``needle`` and then swallows
everything both ways (a half-open link: no FIN), so the client's answer to that frame is lost.  After
:meth:`restore` the SDK's pings notice, it reconnects, and the call must either complete or end with a
reason; never a session that can neither connect nor be accepted.
"""

from __future__ import annotations

import threading
import time

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.media import BufferSink, ToneSource

from helpers import answer_call, wait_until
from test_resilience import FAST, proxy  # noqa: F401  (the fault proxy fixture, and fast keep-alive options)


class Events:
    """Connection and session events in delivery order."""

    def __init__(self, sdk: pcw.PureCloudWebrtcSdk) -> None:
        self.items: list = []
        self.lock = threading.Lock()
        sdk.on("connected", lambda info: self._add(("connected", info["reconnect"])))
        sdk.on("disconnected", lambda info: self._add(("disconnected", info["reconnecting"])))
        sdk.on("sessionEnded", lambda session, reason: self._add(("sessionEnded", reason)))

    def watch(self, session: pcw.Session) -> None:
        session.on("change:interrupted", lambda s, value: self._add(("interrupted", value)))

    def _add(self, item: tuple) -> None:
        with self.lock:
            self.items.append(item)

    def get(self) -> list:
        with self.lock:
            return list(self.items)


def heard(call: object, tone: float) -> bool:
    return abs(call.heard_frequency(0.5) - tone) <= 5  # type: ignore[attr-defined]


def test_accept_while_half_open_between_propose_and_proceed_still_connects(emulator, make_sdk, proxy):
    sdk = make_sdk(streaming_base_url=proxy.url, **FAST)
    events = Events(sdk)
    proxy.blackhole_after("<propose")
    with sdk.expect_event("pendingSession", timeout=10) as ev:
        call = emulator.inbound_call(tone_hz=440)
    assert proxy.triggered.wait(5)
    sink = BufferSink()
    # The link is dead but nothing has noticed yet: accept returns, its proceed is lost.
    sdk.accept_pending_session(ev.value.id, source=ToneSource(880), sink=sink)
    wait_until(lambda: ("disconnected", True) in events.get(), 10, "the dead link to be noticed")
    assert not sdk.connected
    proxy.restore()
    wait_until(lambda: ("connected", True) in events.get(), 15, "the reconnect")
    # Before: the proceed was never sent again, and a second accept said "already accepted".
    call.wait_state("connected", timeout=20)
    wait_until(lambda: heard(call, 880) and abs(sink.dominant_frequency(0.5) - 440) <= 5, 15, "audio both ways")
    assert [s.id for s in sdk.sessions] == [ev.value.id]
    with sdk.expect_event("sessionEnded"):
        call.hangup()


@pytest.mark.parametrize("mode", ["jingle", "sdp-over-xmpp"])
def test_the_answer_lost_between_offer_and_accept_is_sent_again_or_the_call_ends(emulator, make_sdk, proxy, mode):
    sdk = make_sdk(streaming_base_url=proxy.url, **FAST)
    events = Events(sdk)
    offer = "session-initiate" if mode == "jingle" else '"method": "offer"'
    with sdk.expect_event("pendingSession", timeout=10) as ev:
        call = emulator.inbound_call(tone_hz=440, sdp_over_xmpp=(mode == "sdp-over-xmpp"))
    proxy.blackhole_after(offer)
    sink = BufferSink()
    sdk.accept_pending_session(ev.value.id, source=ToneSource(880), sink=sink)
    assert proxy.triggered.wait(10), "the offer never came"
    wait_until(lambda: ("disconnected", True) in events.get(), 10, "the dead link to be noticed")
    proxy.restore()
    wait_until(lambda: ("connected", True) in events.get(), 15, "the reconnect")
    # The session either completes (its answer sent again on the new link) or ends with a reason; it
    # never stays "active" with no media and no end.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(e[0] == "sessionEnded" for e in events.get()):
            break
        if call.state == "connected" and heard(call, 880) and abs(sink.dominant_frequency(0.5) - 440) <= 5:
            break
        time.sleep(0.1)
    ended = [e for e in events.get() if e[0] == "sessionEnded"]
    if ended:
        assert len(ended) == 1 and sdk.sessions == [], events.get()
        wait_until(lambda: call.state in ("ended", "retracted"), 10, "the far end to be told")
    else:
        assert call.state == "connected", f"neither connected nor ended: {events.get()}, far end {call.state}"
        [session] = sdk.sessions
        assert session.active and not session.interrupted
        with sdk.expect_event("sessionEnded"):
            call.hangup()


def test_a_link_that_dies_during_end_session_still_ends_the_call_once(emulator, make_sdk, proxy):
    sdk = make_sdk(streaming_base_url=proxy.url, **FAST)
    session, call = answer_call(sdk, emulator)
    events = Events(sdk)
    errors: list = []
    sdk.on("error", lambda error, details: errors.append(error))
    proxy.blackhole()  # the service's session-terminate will not arrive
    start = time.monotonic()
    sdk.end_session(id=session.id, timeout=5)
    assert time.monotonic() - start < 6.5
    wait_until(lambda: call.state == "ended", 10, "the far end to hang up (REST reached it)")
    wait_until(lambda: any(e[0] == "sessionEnded" for e in events.get()), 5, "sessionEnded")
    # The user hung up: "success", and no media error for the far end's media closing meanwhile.
    assert [e for e in events.get() if e[0] == "sessionEnded"] == [("sessionEnded", "success")], events.get()
    proxy.restore()
    wait_until(lambda: ("connected", True) in events.get(), 15, "the reconnect")
    time.sleep(0.5)
    assert [e for e in events.get() if e[0] == "sessionEnded"] == [("sessionEnded", "success")]
    assert sdk.sessions == [] and sdk.connected
    assert not [e for e in errors if isinstance(e, pcw.MediaError)], errors


def test_a_killed_service_ends_the_call_and_never_reports_connected(emulator_process, make_process_sdk):
    emu = emulator_process
    sdk = make_process_sdk(emu, media_interrupted_after=1.0, media_timeout=4.0, **FAST)
    events = Events(sdk)
    errors: list = []
    sdk.on("error", lambda error, details: errors.append(error))
    session, call = answer_call(sdk, emu)
    events.watch(session)
    emu.kill()  # SIGKILL: no FIN from the service's side of the media, no terminate, nothing
    wait_until(lambda: ("disconnected", True) in events.get(), 10, "the lost link")
    # No media: interrupted within media_interrupted_after, or (when ICE learns at once that the far end is
    # gone) the end itself; either way the truth within seconds, and the end within media_timeout.
    wait_until(lambda: ("interrupted", True) in events.get() or any(e[0] == "sessionEnded" for e in events.get()),
               5, "change:interrupted or the end")
    wait_until(lambda: any(e[0] == "sessionEnded" for e in events.get()), 15, f"the call to end: {events.items}")
    reasons = [e[1] for e in events.get() if e[0] == "sessionEnded"]
    assert reasons in (["connectivity-error"], ["failed-transport"]), events.get()
    assert sdk.sessions == [] and not sdk.connected and sdk.state != "connected"
    assert errors, "the lost call was not reported as an error event"
    time.sleep(1.0)
    assert ("connected", True) not in events.get() and not sdk.connected
