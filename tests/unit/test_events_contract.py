"""The events contract: the core never waits for user code, nothing is retained, waiters wake on close."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any, List

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.events import SDK_EVENTS, SESSION_EVENTS, Dispatcher, Emitter, signals

OFFLINE = dict(api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")


class Owner(Emitter):
    _event_table = {**SDK_EVENTS, **SESSION_EVENTS}


def make_owner(maxsize: int = 10000) -> Owner:
    owner = Owner()
    owner._init_emitter(Dispatcher(owner, maxsize=maxsize))
    return owner


def test_a_blocked_callback_never_blocks_emit_and_overflow_is_reported():
    owner = make_owner(maxsize=5)
    release = threading.Event()
    errors: List[Any] = []
    owner.on("trace", lambda *args: release.wait(30))
    owner.on("error", lambda error, details: errors.append(error))
    start = time.monotonic()
    for i in range(50):
        owner._emit("trace", "info", f"line {i}", {})
    # Before: each emit on a full queue waited 2 s on the core loop.
    assert time.monotonic() - start < 1.0
    release.set()
    # The overflow is reported each time the thread gets free: once, or twice when the thread picked its first
    # event only after a few emits had already been dropped (a busy machine).  Every drop is counted.
    deadline = time.monotonic() + 10
    while sum(e.dropped for e in errors) < 44 and time.monotonic() < deadline:
        time.sleep(0.01)
    owner._dispatcher.close()
    assert errors and all(isinstance(e, pcw.EventOverflowError) for e in errors), errors
    assert sum(e.dropped for e in errors) >= 44 and len(errors) <= 2, errors  # 50 - 5 queued - 1 delivered


def test_periodic_events_are_coalesced_and_skipped_without_listeners():
    owner = make_owner()
    release = threading.Event()
    seen: List[Any] = []
    spy: List[str] = []
    original = owner._dispatcher.emit
    owner._dispatcher.emit = lambda name, sender, args: (spy.append(name), original(name, sender, args))[1]
    owner._emit("audioLevel", owner, "nobody listens")
    assert spy == []  # not even queued
    owner.on("trace", lambda *args: release.wait(30))
    owner.on("audioLevel", lambda session, levels: seen.append(levels))
    owner._emit("trace", "info", "block", {})
    for i in range(100):
        owner._emit("audioLevel", owner, i)
    release.set()
    deadline = time.monotonic() + 10
    while 99 not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [99]  # the latest wins
    owner._dispatcher.close()


def test_off_once_expect_event_and_queues_leave_no_receiver():
    sdk = pcw.PureCloudWebrtcSdk("tok", **OFFLINE)
    try:
        blinker_before = {name: len(signal.receivers) for name, signal in signals.items()}
        for _ in range(1000):
            fn = lambda *args: None  # noqa: E731
            sdk.on("pendingSession", fn)
            sdk.off("pendingSession", fn)
            sdk.once("ready", fn)
            with sdk.expect_event("ready", timeout=5):
                sdk._emit("ready")
            sdk.event_queue(["error"]).close()
        assert sdk._registry == {} or all(not v for v in sdk._registry.values())
        assert {name: len(signal.receivers) for name, signal in signals.items()} == blinker_before
    finally:
        sdk.close()


def test_a_closed_sdk_with_callbacks_is_collectable():
    sdk = pcw.PureCloudWebrtcSdk("tok", **OFFLINE)
    sdk.on("pendingSession", lambda pending: sdk)  # a callback that refers back to the SDK
    sdk.close()
    ref = weakref.ref(sdk)
    del sdk
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("how", ["expect_event", "wait_for_event", "EventQueue.get", "iterate"])
def test_waiters_are_woken_by_close_with_closed_error(how):
    sdk = pcw.PureCloudWebrtcSdk("tok", **OFFLINE)
    outcome: List[Any] = []
    queue = sdk.event_queue(["pendingSession"])
    started = threading.Event()

    def wait() -> None:
        started.set()
        try:
            if how == "expect_event":
                with sdk.expect_event("pendingSession", timeout=60):
                    pass
            elif how == "wait_for_event":
                sdk.wait_for_event("pendingSession", timeout=60)
            elif how == "EventQueue.get":
                queue.get(timeout=60)
            else:
                outcome.append(list(queue))  # the iteration ends
                return
            outcome.append("returned")
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    started.wait(5)
    time.sleep(0.1)
    start = time.monotonic()
    sdk.close()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - start < 5
    if how == "iterate":
        assert outcome == [[]]
    else:
        assert len(outcome) == 1 and isinstance(outcome[0], pcw.ClosedError), outcome


def test_a_raising_callback_reports_itself_once_without_logging(capfd):
    import logging

    owner = make_owner()
    logger = logging.getLogger("purecloud_webrtc")
    saved, logger.handlers = logger.handlers, [logging.NullHandler()]
    root_saved, logging.getLogger().handlers = logging.getLogger().handlers, []
    try:
        owner.on("ready", lambda: 1 / 0)
        owner._emit("ready")
        owner._emit("ready")
        owner._dispatcher.close()
    finally:
        logger.handlers = saved
        logging.getLogger().handlers = root_saved
    err = capfd.readouterr().err
    assert err.count("an event callback raised") == 1 and "ZeroDivisionError" in err


def test_a_lambda_connected_to_a_blinker_signal_is_called_and_released_on_disconnect():
    from purecloud_webrtc import signals

    owner = make_owner()
    got: List[Any] = []
    receiver = lambda sender, **kw: got.append(kw["message"])  # noqa: E731 - the case users write
    ref = weakref.ref(receiver)
    signals["trace"].connect(receiver, sender=owner)
    del receiver  # before: blinker held it weakly, so it was never called
    owner._emit("trace", "info", "hello", {})
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == ["hello"]
    signals["trace"].disconnect(ref(), sender=owner)
    gc.collect()
    assert ref() is None  # nothing keeps it after disconnect
    owner._dispatcher.close()
