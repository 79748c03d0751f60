"""Live audio commands of a session: swap source or sink, mute, recording.

The public methods live on :class:`~purecloud_webrtc.Session` (and
``sdk.set_audio_mute``); they delegate here.  Each command does its blocking
part (opening a device or a file, closing the previous one, REST) on the
calling thread and its state change on the core loop through ``Core.call``, so
it may be called from any thread except the core's, including callbacks.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Optional, Union

from .errors import ApiError, ConnectionFailedError, SessionStateError, UsageError
from .media.live import CallMedia, CallRecorder, Recording

if TYPE_CHECKING:  # pragma: no cover
    from .jingle.session import JingleSession
    from .sdk import PureCloudWebrtcSdk

__all__ = ["set_source", "set_sink", "set_audio_mute", "start_recording", "stop_recording"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


def _media(session: "JingleSession", what: str) -> CallMedia:
    if session.ended:
        raise SessionStateError(f"{what}: session {session.sid} has ended", session_id=session.sid)
    if session.media is None:
        raise SessionStateError(f"{what}: session {session.sid} has not been answered yet", session_id=session.sid)
    return session.media


def _wait_answered(session: "JingleSession", what: str, timeout: Optional[float]) -> CallMedia:
    """Return the session's media, waiting (up to ``timeout``) while it is still being answered.

    ``sessionStarted`` is emitted before the SDK answers (so callbacks can register first); a
    command issued right after it must not fail just because the answer is a few ms away.
    """
    deadline = time.monotonic() + (timeout or DEFAULT_TIMEOUT)
    while session.media is None and not session.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    return _media(session, what)


def set_source(sdk: "PureCloudWebrtcSdk", session: "JingleSession", spec: Any, *, close_previous: bool,
               timeout: Optional[float]) -> None:
    """Resolve ``spec`` here, swap it in on the core loop, then close the previous source here."""
    from .media import resolve_source

    sdk._check_open("set_source")
    _wait_answered(session, "set_source", timeout)
    source = resolve_source(spec, logger=sdk.log)

    async def swap() -> Any:
        media = _media(session, "set_source")
        if not session.local_sdp or "a=sendrecv" not in session.local_sdp and "a=sendonly" not in session.local_sdp:
            raise SessionStateError(f"set_source: session {session.sid} was answered receive-only",
                                    session_id=session.sid)
        previous = media.set_source(source)
        session.source = source
        if previous is not None and previous is not source and not close_previous:
            media.retired_sources.append(previous)  # still closed when the call ends
        return previous

    try:
        previous = sdk._core.call(swap, timeout or DEFAULT_TIMEOUT, "set_source")
    except BaseException:
        if source is not spec:
            source.close()
        raise
    if previous is not None and previous is not source and close_previous:
        previous.close()


def set_sink(sdk: "PureCloudWebrtcSdk", session: "JingleSession", spec: Any, *, close_previous: bool,
             timeout: Optional[float]) -> None:
    """Resolve ``spec`` here, make it the call's sink on the core loop, then close the previous one here."""
    from .media import resolve_sink

    sdk._check_open("set_sink")
    _wait_answered(session, "set_sink", timeout)
    sink = resolve_sink(spec, logger=sdk.log)

    async def swap() -> Any:
        media = _media(session, "set_sink")
        previous = media.set_sink(sink)
        session.sink = sink
        if session.pump is None:
            session._start_pump()
        if previous is not None and previous is not sink and not close_previous:
            media.retired_sinks.append(previous)
        return previous

    try:
        previous = sdk._core.call(swap, timeout or DEFAULT_TIMEOUT, "set_sink")
    except BaseException:
        if sink is not spec:
            sink.close()
        raise
    if previous is not None and previous is not sink and close_previous:
        previous.close()


def set_audio_mute(sdk: "PureCloudWebrtcSdk", session: "JingleSession", muted: bool, *, rest: bool,
                   timeout: Optional[float]) -> None:
    """Mute locally at once (silence is sent, no renegotiation), then ``PATCH`` the participant's ``muted``.

    :raises ApiError: the REST update failed (the local mute stays in effect).
    """
    if not isinstance(muted, bool):
        raise UsageError(f"muted must be True or False, not {muted!r}")
    sdk._check_open("set_audio_mute")
    _wait_answered(session, "set_audio_mute", timeout)

    async def apply() -> None:
        _media(session, "set_audio_mute").set_muted(muted)

    sdk._core.call(apply, timeout or DEFAULT_TIMEOUT, "set_audio_mute")
    me = sdk._core.me or {}
    if not rest or not session.conversation_id or not me.get("id"):
        return
    # The service keeps the participant's mute state (PROTOCOL.md §1.2); other clients and the agent UI show it.
    try:
        conversation = sdk.api.get_conversation(session.conversation_id)
        participant = sdk.api.my_connected_participant(conversation, me["id"])
        if participant is None:
            raise ApiError(f"no connected participant of this user in conversation {session.conversation_id}")
        sdk.api.patch_participant(session.conversation_id, participant["id"], {"muted": muted})
    except (ApiError, ConnectionFailedError) as exc:
        sdk._core.trace("warning", f"REST {'mute' if muted else 'unmute'} of {session.sid} failed: {exc}; "
                                   "the local mute is in effect", {"session_id": session.sid})
        raise


def start_recording(sdk: "PureCloudWebrtcSdk", session: "JingleSession", path: Union[str, "os.PathLike[str]"], *,
                    timeout: Optional[float], mode: int = 0o600) -> None:
    """Open ``path`` here and start feeding it on the core loop."""
    sdk._check_open("start_recording")
    _wait_answered(session, "start_recording", timeout)
    recorder_holder: list[CallRecorder] = []

    async def begin() -> None:
        media = _media(session, "start_recording")
        if media.recorder is not None:
            raise UsageError(f"session {session.sid} is already recording to {media.recorder.path}")
        # The file's clock starts now, on the loop whose monotonic clock stamps the blocks.
        recorder = CallRecorder(path, mode=mode)
        recorder_holder.append(recorder)
        media.recorder = recorder
        media.last_recorder = recorder

    try:
        sdk._core.call(begin, timeout or DEFAULT_TIMEOUT, "start_recording")
    except BaseException:
        for recorder in recorder_holder:
            recorder.close()
        raise


def stop_recording(sdk: "PureCloudWebrtcSdk", session: "JingleSession", *, timeout: Optional[float]) -> Recording:
    """Stop feeding the recorder (core loop), then finish the file here."""
    media = session.media
    if media is None:
        raise SessionStateError(f"stop_recording: session {session.sid} has not been answered", session_id=session.sid)

    async def end() -> Optional[CallRecorder]:
        recorder, media.recorder = media.recorder, None
        return recorder

    recorder: Optional[CallRecorder] = None
    if not session.ended and sdk._core.thread.is_alive():
        recorder = sdk._core.call(end, timeout or DEFAULT_TIMEOUT, "stop_recording")
    if recorder is None:
        recorder = media.last_recorder  # the call ended meanwhile and stopped it
    if recorder is None:
        raise UsageError(f"session {session.sid} is not recording")
    recorder.close()
    return Recording(recorder.path, recorder.seconds_written)
