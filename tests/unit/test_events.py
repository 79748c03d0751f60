"""The event machinery: names, registration doors, ordering, errors in callbacks, waiting."""

from __future__ import annotations

import threading
import time

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.events import SDK_EVENTS, SESSION_EVENTS, canonical_event_name


def make_offline_sdk() -> pcw.PureCloudWebrtcSdk:
    # Never initialised: no packet leaves; only the events machinery is used.
    return pcw.PureCloudWebrtcSdk("token", api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")


@pytest.fixture
def sdk():
    s = make_offline_sdk()
    yield s
    s.close()


@pytest.mark.parametrize("alias, canonical", [
    ("pendingSession", "pendingSession"),
    ("pending_session", "pendingSession"),
    ("cancel_pending_session", "cancelPendingSession"),
    ("handled_pending_session", "handledPendingSession"),
    ("session_started", "sessionStarted"),
    ("session_ended", "sessionEnded"),
])
def test_sdk_event_aliases(alias, canonical):
    assert canonical_event_name(alias, list(SDK_EVENTS)) == canonical


@pytest.mark.parametrize("alias, canonical", [
    ("change:connectionState", "change:connectionState"),
    ("change_connection_state", "change:connectionState"),
    ("connection_state", "change:connectionState"),
    ("change:interrupted", "change:interrupted"),
    ("interrupted", "change:interrupted"),
    ("active", "change:active"),
    ("end_of_candidates", "endOfCandidates"),
    ("terminated", "terminated"),
])
def test_session_event_aliases(alias, canonical):
    assert canonical_event_name(alias, list(SESSION_EVENTS)) == canonical


def test_unknown_event_is_refused_with_a_suggestion(sdk):
    with pytest.raises(ValueError, match="did you mean 'pendingSession'"):
        sdk.on("pendingSesion", lambda p: None)
    with pytest.raises(ValueError, match="unknown event 'terminated'"):
        sdk.on("terminated", lambda s, r: None)  # a session event, not an SDK one


def test_on_once_off_decorator_and_order(sdk):
    seen = []
    sdk.on("trace", lambda level, message, details: seen.append(("on", message)))

    @sdk.on("trace")
    def decorated(level, message, details):
        seen.append(("dec", message))

    sdk.once("trace", lambda level, message, details: seen.append(("once", message)))
    for i in range(50):
        sdk._emit("trace", "info", f"m{i}", {})
    with sdk.expect_event("ready", timeout=5):
        sdk._emit("ready")
    assert [m for kind, m in seen if kind == "on"] == [f"m{i}" for i in range(50)]
    assert [m for kind, m in seen if kind == "dec"] == [f"m{i}" for i in range(50)]
    assert [m for kind, m in seen if kind == "once"] == ["m0"]
    sdk.off("trace", decorated)
    seen.clear()
    with sdk.expect_event("ready", timeout=5):
        sdk._emit("trace", "info", "after-off", {})
        sdk._emit("ready")
    assert seen == [("on", "after-off")]
    sdk.off("trace")
    seen.clear()
    with sdk.expect_event("ready", timeout=5):
        sdk._emit("trace", "info", "after-off-all", {})
        sdk._emit("ready")
    assert seen == []


def test_callbacks_run_on_the_events_thread(sdk):
    names = []
    sdk.on("ready", lambda: names.append(threading.current_thread().name))
    with sdk.expect_event("ready", timeout=5):
        sdk._emit("ready")
    assert len(names) == 1 and names[0].startswith("pcw-events-")


def test_a_failing_callback_becomes_an_error_event_and_others_still_run(sdk, caplog):
    errors, after = [], []

    def broken():
        raise RuntimeError("boom")

    sdk.on("ready", broken)
    sdk.on("ready", lambda: after.append(True))
    sdk.on("error", lambda error, details: errors.append((error, details)))
    with sdk.expect_event("error", timeout=5):
        sdk._emit("ready")
    assert after == [True]
    assert isinstance(errors[0][0], RuntimeError) and errors[0][1]["event"] == "ready"
    assert "callback for 'ready' raised" in caplog.text


def test_expect_event_is_race_free_and_times_out(sdk):
    with sdk.expect_event("cancelPendingSession", timeout=5) as ev:
        sdk._emit("cancelPendingSession", "abc")  # emitted before the block ends: not missed
    assert ev.value == "abc" and ev.event.name == "cancelPendingSession"
    with pytest.raises(pcw.OperationTimeoutError, match="cancelPendingSession"):
        with sdk.expect_event("cancel_pending_session", timeout=0.2):
            pass
    with sdk.expect_event("cancelPendingSession", timeout=5, predicate=lambda i: i == "b") as ev:
        sdk._emit("cancelPendingSession", "a")
        sdk._emit("cancelPendingSession", "b")
    assert ev.value == "b"


def test_waiting_inside_a_callback_is_a_usage_error(sdk):
    problems = []

    def cb():
        try:
            sdk.wait_for_event("pendingSession", timeout=1)
        except pcw.UsageError as exc:
            problems.append(exc)

    sdk.on("ready", cb)
    with sdk.expect_event("ready", timeout=5):
        sdk._emit("ready")
    time.sleep(0.1)
    assert problems and "inside an event callback" in str(problems[0])


def test_event_queue_pulls_events_in_order(sdk):
    with sdk.event_queue(["trace", "ready"]) as q:
        sdk._emit("trace", "info", "one", {})
        sdk._emit("ready")
        first, second = q.get(timeout=5), q.get(timeout=5)
        assert (first.name, first.args[1]) == ("trace", "one")
        assert second.name == "ready" and second.args == ()
        assert q.get_nowait() is None
        with pytest.raises(pcw.OperationTimeoutError):
            q.get(timeout=0.1)


def test_direct_blinker_subscription(sdk):
    got = []

    def receiver(sender, **kwargs):
        got.append((sender, kwargs))

    pcw.signals["handledPendingSession"].connect(receiver, sender=sdk)
    try:
        with sdk.expect_event("handledPendingSession", timeout=5):
            sdk._emit("handledPendingSession", "xyz")
    finally:
        pcw.signals["handledPendingSession"].disconnect(receiver, sender=sdk)
    assert got == [(sdk, {"session_id": "xyz"})]


def test_close_from_inside_a_callback_does_not_deadlock():
    sdk = make_offline_sdk()
    done = threading.Event()

    def cb():
        sdk.close()
        done.set()

    sdk.on("ready", cb)
    sdk._emit("ready")
    assert done.wait(10)
    sdk._dispatcher.thread.join(5)
    assert not sdk._dispatcher.thread.is_alive()
    with pytest.raises(pcw.ClosedError):
        sdk.initialize()


def test_pending_session_payload_speaks_both_spellings():
    p = pcw.PendingSession(id="s1", address="webrtc-1", conversation_id="c1", auto_answer=True)
    assert p.conversationId == "c1" and p.autoAnswer is True
    assert p["conversationId"] == "c1" and p["id"] == "s1"
