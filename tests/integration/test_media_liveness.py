"""Media liveness: a far end that stops sending makes the call ``interrupted``, then ends it (both modes)."""

from __future__ import annotations

from typing import Any, List

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.emulator import Emulator

from conftest import SdkFactory
from helpers import answer_call, wait_until


@pytest.fixture(params=["jingle", "sdp-over-xmpp"])
def emu(request: Any) -> Any:
    with Emulator(sdp_over_xmpp=request.param != "jingle") as emulator:
        yield emulator


def test_an_outage_interrupts_the_call_and_recovery_resumes_it(emu):
    factory = SdkFactory(emu)
    try:
        sdk = factory(media_interrupted_after=1.0, media_timeout=60)
        session, call = answer_call(sdk, emu)
        changes: List[Any] = []
        session.on("change:interrupted", lambda s, interrupted: changes.append(interrupted))
        call.pause_media(True)
        wait_until(lambda: changes == [True], 10, "change:interrupted(True)")
        assert session.interrupted and session.connection_state == "interrupted" and session.active
        call.pause_media(False)
        wait_until(lambda: changes == [True, False], 10, "change:interrupted(False)")
        assert not session.interrupted and session.connection_state == "connected"
        wait_until(lambda: abs(session.sink.dominant_frequency(0.4) - 440.0) <= 5, 10, "the tone again")
    finally:
        factory.close()


def test_an_outage_beyond_media_timeout_ends_the_call_and_hangs_up_by_rest(emu):
    factory = SdkFactory(emu)
    try:
        sdk = factory(media_interrupted_after=0.5, media_timeout=2.0)
        errors: List[Any] = []
        sdk.on("error", lambda error, details: errors.append(error))
        session, call = answer_call(sdk, emu)
        with sdk.expect_event("sessionEnded", timeout=20) as ended:
            call.pause_media(True)
        assert ended.args[1] == "connectivity-error" and session.ended
        assert any(isinstance(e, pcw.MediaError) and "no media" in str(e) for e in errors)
        # The far end does not stay connected: the SDK hung up by REST (the service then terminates).
        wait_until(lambda: call.state == "ended", 10, "the far end to end")
        assert any(method == "PATCH" for method, _path, _status in emu.rest_log)
    finally:
        factory.close()
