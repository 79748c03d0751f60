"""Bad input fails loudly and at once, and loses nothing (issue 15), written as a user meets it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.media import AudioDeviceError, BufferSink, ToneSource

from helpers import answer_call, wait_until


def ring(sdk: pcw.PureCloudWebrtcSdk, emulator: Any, tone: float = 440.0) -> Any:
    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=tone)
    return ev.value, call


def test_a_missing_source_file_or_sink_directory_fails_the_accept_and_the_call_can_still_be_answered(
        emulator, make_sdk, tmp_path: Path):
    sdk = make_sdk()
    pending, call = ring(sdk, emulator)
    # Before: accept returned, sessionStarted fired and the session stayed pending while the caller rang on.
    with pytest.raises(pcw.MediaSpecError, match="nope.wav.*no such file"):
        sdk.accept_pending_session(pending.id, source="nope.wav")
    with pytest.raises(pcw.MediaSpecError, match="does not exist"):
        sdk.accept_pending_session(pending.id, sink="/nonexistent/dir/x.wav")
    assert [p.id for p in sdk.pending_sessions] == [pending.id] and sdk.sessions == []
    assert call.state == "proposed"  # no proceed went out
    # Nothing was lost: the same call is answered with good media.
    recording = tmp_path / "call.wav"
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(pending.id, source="tone:523", sink=[str(recording), BufferSink()])
    call.wait_state("connected", timeout=15)
    wait_until(lambda: abs(call.heard_frequency(0.5) - 523) <= 5, 10, "the far end to hear tone:523")
    with sdk.expect_event("sessionEnded"):
        sdk.end_session(id=started.value.id)
    assert recording.stat().st_size > 44 and (recording.stat().st_mode & 0o777) == 0o600


def test_named_specs_mean_the_same_as_on_the_command_line(emulator, make_sdk):
    sdk = make_sdk()
    pending, call = ring(sdk, emulator)
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(pending.id, source="silence", sink="buffer")  # before: "silence" was a path
    call.wait_state("connected", timeout=15)
    session = started.value
    wait_until(lambda: abs(session.sink.dominant_frequency(0.5) - 440) <= 5, 10, "the caller's tone in 'buffer'")
    assert call.heard_frequency(0.5) == 0.0  # silence
    with sdk.expect_event("sessionEnded"):
        call.hangup()
    with pytest.raises(pcw.MediaSpecError, match="tone:440"):
        pcw.media.resolve_source("tone:abc")


def test_ending_a_call_before_it_is_answered_leaves_the_shared_default_source_open(emulator, make_sdk):
    default = ToneSource(660)
    sdk = make_sdk(default_source=default, auto_connect_sessions=False)
    pending, call = ring(sdk, emulator)
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(pending.id)
    with sdk.expect_event("sessionEnded"):
        sdk.end_session(id=started.value.id)  # ended before session.accept()
    assert not default.closed  # before: closed, and every later call failed with "ToneSource is closed"
    pending, call = ring(sdk, emulator)
    with sdk.expect_event("sessionStarted") as started:
        sdk.accept_pending_session(pending.id)
    started.value.accept()
    call.wait_state("connected", timeout=15)
    wait_until(lambda: abs(call.heard_frequency(0.5) - 660) <= 5, 10, "the default tone")
    with sdk.expect_event("sessionEnded"):
        call.hangup()
    assert not default.closed


def test_one_source_object_for_two_calls_is_refused_clearly(emulator, make_sdk):
    sdk = make_sdk()
    tone = ToneSource(550)
    session, first = answer_call(sdk, emulator, source=tone)
    pending, second = ring(sdk, emulator, tone=660)
    # Before: accepted, and the second call silently got nothing.
    with pytest.raises(pcw.UsageError, match="already feeds session"):
        sdk.accept_pending_session(pending.id, source=tone)
    with sdk.expect_event("sessionStarted"):
        sdk.accept_pending_session(pending.id, source="tone:770")
    second.wait_state("connected", timeout=15)
    wait_until(lambda: abs(second.heard_frequency(0.5) - 770) <= 5, 10, "the second call's own tone")
    assert abs(first.heard_frequency(0.5) - 550) <= 5


class BrokenSource(ToneSource):
    """A source that opens fine and fails when the call's media is built."""

    def create_track(self) -> Any:
        raise RuntimeError("the capture device vanished")


def test_a_failure_after_the_proceed_ends_the_session_with_a_reason(emulator, make_sdk):
    sdk = make_sdk()
    errors: list = []
    sdk.on("error", lambda error, details: errors.append(error))
    pending, call = ring(sdk, emulator)
    ended = threading.Event()
    reasons: list = []
    sdk.on("sessionEnded", lambda session, reason: (reasons.append(reason), ended.set()))
    sdk.accept_pending_session(pending.id, source=BrokenSource(440))
    assert ended.wait(15), f"the session was left hanging: {errors}"
    assert reasons == ["failed-application"], (reasons, errors)
    wait_until(lambda: any("capture device vanished" in str(e) for e in errors), 5, f"the error event: {errors}")
    assert sdk.sessions == [] and sdk.pending_sessions == []
    wait_until(lambda: call.state == "ended", 10, "the caller to be told")


def test_a_missing_device_fails_the_accept(emulator, make_sdk, monkeypatch):
    from purecloud_webrtc.media import _pyaudio

    def no_device(*args: Any, **kwargs: Any) -> Any:
        raise _pyaudio.AudioDeviceError("no input device matches 'headset' (test)")

    monkeypatch.setattr(pcw.media.sources, "MicrophoneSource", no_device)
    sdk = make_sdk()
    pending, call = ring(sdk, emulator)
    with pytest.raises(AudioDeviceError, match="headset") as info:
        sdk.accept_pending_session(pending.id, source="mic:headset")
    assert isinstance(info.value, pcw.PureCloudWebrtcError)  # before: outside the SDK's hierarchy
    assert [p.id for p in sdk.pending_sessions] == [pending.id]


# -- outbound calls take media options and are answered by the SDK that placed them ---------------


def test_an_outbound_call_is_answered_with_the_media_given_to_start_softphone_session(emulator, make_sdk):
    sdk = make_sdk()
    for n, tone in enumerate((600.0, 700.0, 800.0)):  # the propose races the POST's answer (the emulator jitters it)
        sink = BufferSink()
        conversation_id = sdk.start_softphone_session(f"+1317555010{n}", source=f"tone:{tone:g}", sink=sink)
        session = sdk.wait_for_session(conversation_id, timeout=15)
        call = emulator.call_by_conversation(conversation_id)
        call.wait_state("connected", timeout=15)
        # Before: start_softphone_session took no source/sink, and the far end heard the default (silence).
        wait_until(lambda: abs(call.heard_frequency(0.5) - tone) <= 5, 10, f"the far end to hear {tone} Hz")
        wait_until(lambda: abs(sink.dominant_frequency(0.5) - call.tone_hz) <= 5, 10, "our sink to hear the far end")
        with sdk.expect_event("sessionEnded"):
            sdk.end_session(id=session.id)


def test_a_bad_source_fails_before_the_call_is_placed(emulator, make_sdk):
    sdk = make_sdk()
    with pytest.raises(pcw.MediaSpecError, match="nope.wav"):
        sdk.start_softphone_session("+13175550100", source="nope.wav")
    assert not [c for c in emulator.calls if c.direction == "outbound"]  # no phone rang


def test_two_processes_of_one_user_each_answer_the_calls_they_placed(emulator, make_sdk):
    # As two gunicorn or Celery workers: one user, two SDKs; before, whichever won the race answered.
    a = make_sdk(auto_answer_outbound_calls="own")
    b = make_sdk(auto_answer_outbound_calls="own")
    placed = {"a": [], "b": []}
    for n in range(3):
        for name, sdk in (("a", a), ("b", b)):
            placed[name].append(sdk.start_softphone_session(f"+1317555020{n}", source="silence", sink="null"))
    for name, sdk in (("a", a), ("b", b)):
        for cid in placed[name]:
            sdk.wait_for_session(cid, timeout=15)
            emulator.call_by_conversation(cid).wait_state("connected", timeout=15)
    assert sorted(s.conversation_id for s in a.sessions) == sorted(placed["a"])
    assert sorted(s.conversation_id for s in b.sessions) == sorted(placed["b"])


def test_auto_answer_outbound_calls_is_validated(emulator):
    with pytest.raises(pcw.ConfigurationError, match="auto_answer_outbound_calls"):
        pcw.PureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                               streaming_base_url=emulator.streaming_base_url, auto_answer_outbound_calls="mine")


def test_accepting_twice_raises_the_documented_error(emulator, make_sdk):
    sdk = make_sdk()
    session, call = answer_call(sdk, emulator)
    # Before: SessionNotFoundError ("not pending or does not exist") once the session had started.
    with pytest.raises(pcw.SessionStateError, match="already accepted"):
        sdk.accept_pending_session(session.id)
    with pytest.raises(pcw.SessionStateError):
        session.accept()


def test_calls_that_need_a_connection_say_so_before_anything_remote(emulator, make_sdk):
    sdk = make_sdk(initialize=False)
    # Before: a real call was placed that nothing could answer.
    with pytest.raises(pcw.UsageError, match="initialize"):
        sdk.start_softphone_session("+13175550100")
    sdk.initialize(timeout=15)
    sdk.disconnect()
    with pytest.raises(pcw.UsageError, match="not connected"):
        sdk.start_softphone_session("+13175550100")
    assert not [c for c in emulator.calls if c.direction == "outbound"]
    sdk.close()
    with pytest.raises(pcw.ClosedError):  # before: waited out its timeout
        sdk.wait_for_event("pendingSession", timeout=30)
    with pytest.raises(pcw.ClosedError):
        sdk.start_softphone_session("+13175550100")


def test_close_closes_what_an_accepted_but_unanswered_call_opened(emulator, make_sdk, tmp_path: Path):
    # Found under load: the media a pending call had opened was closed on an executor that close() then shut
    # down, so a microphone (and PortAudio) stayed open after close().
    sdk = make_sdk(auto_connect_sessions=False)
    pending, call = ring(sdk, emulator)
    tone = ToneSource(300)
    with sdk.expect_event("sessionStarted"):
        sdk.accept_pending_session(pending.id, source=tone, sink=str(tmp_path / "x.wav"))
    # (never answered: auto_connect_sessions=False and no session.accept())
    sdk.close()
    assert tone.closed
