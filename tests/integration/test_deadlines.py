"""A ``timeout`` is a deadline for the whole operation: retries, ``Retry-After`` and joins included (issue 13).

The emulator scripts the REST faults (``Emulator.rest_fault``): a 429 whose ``Retry-After`` is longer than
the caller's timeout, or a GET that hangs.  The call still ends (the SDK falls back to a Jingle
session-terminate) and nothing waits past the deadline.
"""

from __future__ import annotations

import threading
import time

import pytest

import purecloud_webrtc as pcw

from helpers import answer_call, wait_until

#: What a blocking call may take beyond its timeout on a busy machine (the loop hop, a session-terminate).
SLACK = 1.5


@pytest.mark.parametrize("fault", [dict(status=429, retry_after=8), dict(hang=8)], ids=["retry-after-8", "hanging-get"])
def test_end_session_timeout_bounds_retries_and_retry_after(emulator, make_sdk, fault):
    sdk = make_sdk()
    session, call = answer_call(sdk, emulator)
    emulator.rest_fault("GET", "/conversations/", times=None, **fault)
    start = time.monotonic()
    with sdk.expect_event("sessionEnded", timeout=10):
        sdk.end_session(id=session.id, timeout=5)
    took = time.monotonic() - start
    # Before: 24 s against Retry-After: 8 (three waits), 15 s against the hanging GET.
    assert took < 5 + SLACK, f"end_session(timeout=5) took {took:.1f} s"
    wait_until(lambda: call.state == "ended", 10, "the far end to see the hang-up (Jingle fallback)")
    assert sdk.sessions == []
    emulator.clear_rest_faults()


def test_close_timeout_is_a_deadline_even_with_a_request_in_flight(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer_call(sdk, emulator)
    emulator.rest_fault("GET", "/conversations/", hang=6, times=None)
    outcome: list = []

    def hang_up() -> None:
        try:
            sdk.end_session(id=session.id, timeout=4)
            outcome.append("returned")
        except pcw.PureCloudWebrtcError as exc:
            outcome.append(type(exc).__name__)

    worker = threading.Thread(target=hang_up)
    worker.start()
    wait_until(lambda: emulator.rest_faults_served() > 0, 10, "the hanging GET to start")
    start = time.monotonic()
    sdk.close(timeout=2)
    took = time.monotonic() - start
    # Before: 19 s (the executor waited out the request and urllib3's Retry-After sleeps).
    assert took < 2 + SLACK, f"close(timeout=2) took {took:.1f} s"
    assert sdk.state == "closed"
    worker.join(10)
    assert outcome and outcome[0] in ("returned", "ClosedError"), outcome
    wait_until(lambda: call.state == "ended", 10, "the far end to see the hang-up")
    emulator.clear_rest_faults()


def test_initialize_timeout_bounds_a_hanging_rest_call(emulator, make_sdk):
    emulator.rest_fault("GET", "/users/me", hang=6, times=None)
    sdk = make_sdk(initialize=False)
    start = time.monotonic()
    with pytest.raises((pcw.OperationTimeoutError, pcw.ConnectionFailedError)):
        sdk.initialize(timeout=2)
    assert time.monotonic() - start < 2 + SLACK
    assert not sdk.connected and sdk.state != "connected"
    emulator.clear_rest_faults()
