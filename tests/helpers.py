"""Small helpers shared by the test modules (import as ``from helpers import wait_until``)."""

from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy (returns its value) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def answer_call(sdk: Any, emulator: Any, tone: float = 440.0, sdk_tone: float = 880.0, **accept: Any) -> Any:
    """Ring ``sdk`` from ``emulator`` (far end playing ``tone``), answer with ``sdk_tone`` into a BufferSink,
    and wait until the call is connected; returns ``(session, call)``."""
    from purecloud_webrtc.media import BufferSink, ToneSource

    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=tone)
    with sdk.expect_event("sessionStarted") as started:
        accept.setdefault("source", ToneSource(sdk_tone))
        accept.setdefault("sink", BufferSink())
        sdk.accept_pending_session(ev.value.id, **accept)
    call.wait_state("connected", timeout=15)
    return started.value, call
