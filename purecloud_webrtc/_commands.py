"""Every command of the SDK, as a coroutine that runs on the core loop.

Both facades only marshal: a method of :class:`~purecloud_webrtc.PureCloudWebrtcSdk` or
:class:`~purecloud_webrtc.Session` is one ``core.call(...)`` of a coroutine here, and the asyncio twin
(:mod:`purecloud_webrtc.aio`) awaits the very same coroutine with ``core.acall(...)`` (one hop, no thread
pool).  The state these commands change is the core's; blocking work goes to the core's executors:
REST to its one REST thread (``pcw-rest-N``: the ``requests.Session`` is only ever used there), opening
devices and files to ``pcw-io-N``.  Waits are on ``asyncio`` events, never polling.

``deadline`` is a ``time.monotonic()`` value (``None``: no deadline) that bounds the whole command,
REST retries and ``Retry-After`` waits included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from ._pending import AcceptOptions
from .errors import (
    ApiError,
    AuthenticationError,
    ClosedError,
    ConnectionFailedError,
    OperationTimeoutError,
    SessionNotFoundError,
    SessionStateError,
    UsageError,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core
    from .events import PendingSession
    from .jingle.session import JingleSession
    from .media.live import CallMedia, Recording

__all__ = ["Commands"]

log = logging.getLogger(__name__)

#: Seconds ``end_session`` waits for the service's session-terminate after the REST PATCH (§4.7).
TERMINATE_WAIT = 5.0
#: Seconds a session command waits when called with ``timeout=None``.
DEFAULT_TIMEOUT = 10.0


def deadline(timeout: Optional[float]) -> Optional[float]:
    """The ``time.monotonic()`` by which a command must be done (``None``: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout


def grace(timeout: Optional[float]) -> Optional[float]:
    """How long a facade waits for a command bounded by ``timeout``: the command's own deadline fires first and
    raises its precise error; this only catches a core that stopped answering."""
    return None if timeout is None else timeout + 2.0


def remaining(deadline: Optional[float], floor: float = 0.05) -> Optional[float]:
    """Seconds left until ``deadline`` (at least ``floor``), or ``None`` without a deadline."""
    return None if deadline is None else max(floor, deadline - time.monotonic())


class Commands:
    """The commands of one SDK; every method runs on the core loop (``core.call``/``core.acall``)."""

    def __init__(self, core: "Core") -> None:
        self.core = core

    # -- helpers ---------------------------------------------------------------------------

    def check_open(self, what: str) -> None:
        if self.core.closing:
            raise ClosedError(f"{what}: the SDK is closed")

    def check_connected(self, what: str) -> None:
        self.check_open(what)
        if self.core.state != "connected":
            raise UsageError(f"{what}: the SDK is not connected (call initialize() first)")

    def _me(self, what: str) -> Dict[str, Any]:
        me = self.core.me or {}
        if not me.get("id"):
            raise UsageError(f"{what}: initialize() first: the user is not known yet")
        return me

    async def rest(self, fn: Any, *args: Any, deadline: Optional[float] = None, **kwargs: Any) -> Any:
        """Run the blocking REST call ``fn`` on the REST thread with what is left of ``deadline``."""
        return await self.core.run_rest(fn, *args, timeout=remaining(deadline), **kwargs)

    async def _my_participant_id(self, conversation_id: str, deadline: Optional[float], *,
                                 connected: bool = False) -> str:
        """This user's participant in the conversation (``GET conversations/calls/{cid}``): the ``connected``
        one (v1.3 rule, docs/protocol.rst §8 #8) or any that has not ended.

        :raises ApiError: when there is none (or the REST call failed).
        """
        api = self.core.api
        user_id = (self.core.me or {}).get("id", "")
        conversation = await self.rest(api.get_conversation, conversation_id, deadline=deadline)
        if connected:
            participant = api.my_connected_participant(conversation, user_id)
            if participant is None:
                raise ApiError(f"no connected participant of this user in conversation {conversation_id}")
        else:
            participant = api.my_participant(conversation, user_id)
            if participant is None:
                raise ApiError(f"this user has no active participant in conversation {conversation_id}")
        return str(participant["id"])

    def find_session(self, id: Optional[str], conversation_id: Optional[str]) -> "JingleSession":
        if (id is None) == (conversation_id is None):
            raise UsageError("give exactly one of id= or conversation_id=")
        for session in self.core.sessions.values():
            if session.ended:
                continue
            if (id is not None and session.sid == id) or (
                    conversation_id is not None and session.conversation_id == conversation_id):
                return session
        what = f"id {id!r}" if id is not None else f"conversation id {conversation_id!r}"
        raise SessionNotFoundError(f"no active session with {what}", session_id=id)

    # -- lifecycle -------------------------------------------------------------------------

    async def initialize(self, deadline: Optional[float], timeout: Optional[float]) -> None:
        """``organizations/me`` (informational), then the streaming connection (``Core.connect``); ``ready``."""
        self.check_open("initialize")
        core = self.core
        if core.state == "connected":
            return
        core.user_disconnected = False
        try:
            try:
                core.sdk.org = await self.rest(core.api.get_organization, deadline=deadline)
            except (AuthenticationError, ConnectionFailedError):
                raise
            except ApiError as exc:
                core.log.warning("GET organizations/me failed (%s); continuing without organization details", exc)
            await core.connect(deadline=deadline)
        except ConnectionFailedError as exc:
            if deadline is not None and time.monotonic() >= deadline - 0.05:
                raise OperationTimeoutError("initialize", timeout) from exc
            raise
        core.sdk._emit("ready")

    async def disconnect(self) -> None:
        """Close the stream on purpose; without survivability every session ends (``connectivity-error``)."""
        core = self.core
        core.user_disconnected = True
        was = core.state
        await core.disconnect()
        if was in ("connected", "connecting", "disconnected") and not core.options.session_survivability:
            core.end_all_sessions_locally("connectivity-error")

    # -- pending sessions ------------------------------------------------------------------

    async def accept_pending(self, id: str, options: "AcceptOptions") -> None:
        self.check_open("accept_pending_session")
        if not isinstance(id, str) or not id:
            raise UsageError("accept_pending_session needs the pending session id (a string)")
        await self.core.accept_pending(id, options)

    async def reject_pending(self, id: str, deadline: Optional[float]) -> None:
        """Decline by REST (this user's participant ``disconnected``), then XEP-0353 ``reject`` (§3.4)."""
        self.check_open("reject_pending_session")
        core = self.core
        # Forgotten locally first, so the retract that follows is not reported.
        info: "PendingSession" = await core.reject_pending(id)
        me = core.me or {}
        if info.conversation_id and me.get("id"):
            try:
                participant_id = await self._my_participant_id(info.conversation_id, deadline)
                await self.rest(core.api.patch_participant, info.conversation_id, participant_id,
                                {"state": "disconnected"}, deadline=deadline)
            except (ApiError, ConnectionFailedError) as exc:
                core.trace("warning", f"declining {id} by REST failed ({exc}); sending the XMPP reject")
        await core.send_reject(info)

    # -- sessions ----------------------------------------------------------------------------

    async def accept_session(self, session: "JingleSession", source: Any, sink: Any, auto_start_media: bool) -> None:
        self.check_open("accept")
        await self.core.accept_session(session, source, sink, auto_start_media)

    async def end_session(self, id: Optional[str], conversation_id: Optional[str], reason: str,
                          deadline: Optional[float], wait: bool) -> None:
        """Hang up as the seed does: REST GET + PATCH, wait for the service's terminate, else Jingle terminate.

        ``wait`` is ``False`` inside an event callback: the ``sessionEnded`` it would wait for could only be
        delivered by the thread that waits.
        """
        self.check_open("end_session")
        core = self.core
        session = self.find_session(id, conversation_id)
        # Hanging up closes the far end's media too: that is not a media failure to report (issue 13).
        session.hanging_up = True
        me = core.me or {}
        rest_ok = False
        if session.conversation_id and me.get("id"):
            try:
                await self.hang_up_by_rest(session.conversation_id, deadline)
                rest_ok = True
            except (ApiError, ConnectionFailedError) as exc:
                core.trace("warning", f"ending {session.sid} by REST failed ({exc}); sending session-terminate",
                           {"session_id": session.sid})
        if rest_ok and wait:
            left = remaining(deadline, 0.0)
            limit = TERMINATE_WAIT if left is None else min(TERMINATE_WAIT, max(0.0, left - 0.2))
            try:
                await asyncio.wait_for(session.ended_event.wait(), limit)
            except asyncio.TimeoutError:
                pass  # a persistent connection never terminates (§8 #26): we do it ourselves
        if not session.ended:
            await session.finish(reason, send=True)

    async def hang_up_by_rest(self, conversation_id: str, deadline: Optional[float]) -> None:
        """PATCH this user's connected participant of ``conversation_id`` to ``disconnected``.

        :raises ApiError: no connected participant, or the service refused.
        :raises ConnectionFailedError: the service could not be reached before ``deadline``.
        """
        participant_id = await self._my_participant_id(conversation_id, deadline, connected=True)
        await self.rest(self.core.api.patch_participant, conversation_id, participant_id,
                        {"state": "disconnected"}, deadline=deadline)

    async def set_conversation_held(self, conversation_id: str, held: bool, deadline: Optional[float]) -> None:
        self.check_open("set_conversation_held")
        if not isinstance(held, bool):
            raise UsageError("held must be True or False")
        await self.patch_my_participant(conversation_id, {"held": held}, deadline, "set_conversation_held")

    async def patch_my_participant(self, conversation_id: str, body: Dict[str, Any], deadline: Optional[float],
                                   what: str) -> None:
        self._me(what)
        participant_id = await self._my_participant_id(conversation_id, deadline)
        await self.rest(self.core.api.patch_participant, conversation_id, participant_id, body, deadline=deadline)

    async def fetch_users_station(self, deadline: Optional[float]) -> Dict[str, Any]:
        self.check_open("fetch_users_station")
        api = self.core.api
        me = await self.rest(api.request, "GET", "users/me", params={"expand": "station"}, deadline=deadline)
        station = (((me or {}).get("station") or {}).get("effectiveStation") or {}).get("id")
        if not station:
            raise ApiError("this user has no effective station (assign a WebRTC phone in Genesys Cloud)")
        return await self.rest(api.request, "GET", f"stations/{station}", deadline=deadline)

    async def start_softphone_session(self, body: Dict[str, Any], deadline: Optional[float], source: Any = None,
                                      sink: Any = None) -> str:
        # Without a connection nothing could answer the call the service would ring here.
        self.check_connected("start_softphone_session")
        core = self.core
        # The media is opened before the call is placed: a bad file fails here, before any phone rings.
        options = AcceptOptions(source, sink)
        if source is not None or sink is not None:
            options = await core.resolve_accept_media(options)
        core.placing += 1
        try:
            result = await self.rest(core.api.place_call, body, deadline=deadline)
            conversation_id = result.get("id") if isinstance(result, dict) else None
            if not conversation_id:
                raise ApiError("POST conversations/calls returned no conversation id", body=result)
            core.remember_placed(str(conversation_id), options)
        except BaseException:
            core.release_accept_media(options)
            raise
        finally:
            core.placing -= 1
            core.placing_changed.set()
        return str(conversation_id)

    # -- DTMF ------------------------------------------------------------------------------

    async def send_dtmf(self, session: "JingleSession", digits: str, method: str, duration: float, gap: float,
                        deadline: Optional[float]) -> str:
        from .media.dtmf import check_digits

        digits = check_digits(digits)
        if method == "auto":
            if session.te_sender is not None:
                method = "rfc4733"
            else:
                method = "rest" if session.conversation_id else "inband"
        if method == "rfc4733":
            if session.te_sender is None or session.ended:
                raise SessionStateError(f"session {session.sid}: telephone-event was not negotiated",
                                        session_id=session.sid)
            session.te_sender.send(digits, duration, gap)
        elif method == "inband":
            if session.dtmf_track is None or session.ended:
                raise SessionStateError(f"session {session.sid} sends no audio: in-band DTMF is not possible",
                                        session_id=session.sid)
            session.dtmf_track.send(digits, duration, gap)
        elif method == "rest":
            if not session.conversation_id:
                raise SessionStateError(f"session {session.sid} has no conversation id for REST DTMF",
                                        session_id=session.sid)
            await self._post_digits(session.conversation_id, digits, deadline)
        else:
            raise ValueError(f"method must be 'auto', 'rfc4733', 'inband' or 'rest', not {method!r}")
        return method

    async def _post_digits(self, conversation_id: str, digits: str, deadline: Optional[float]) -> None:
        """REST DTMF: ``POST /conversations/calls/{cid}/participants/{pid}/digits`` (docs/protocol.rst §1.2)."""
        participant_id = await self._my_participant_id(conversation_id, deadline)
        await self.rest(self.core.api.request, "POST", f"conversations/calls/{conversation_id}/participants/"
                        f"{participant_id}/digits", json={"digits": digits}, deadline=deadline)

    # -- live audio ----------------------------------------------------------------------------

    async def _answered(self, session: "JingleSession", what: str, deadline: Optional[float]) -> "CallMedia":
        """The session's media, waiting (up to the deadline) while it is still being answered.

        ``sessionStarted`` is emitted before the SDK answers (so callbacks can register first); a command
        issued right after it must not fail just because the answer is a few ms away.
        """
        self.check_open(what)
        if session.media is None and not session.ended:
            try:
                await asyncio.wait_for(session.answered.wait(), remaining(deadline))
            except asyncio.TimeoutError:
                pass
        if session.ended:
            raise SessionStateError(f"{what}: session {session.sid} has ended", session_id=session.sid)
        if session.media is None:
            raise SessionStateError(f"{what}: session {session.sid} has not been answered yet", session_id=session.sid)
        return session.media

    async def _swap(self, session: "JingleSession", spec: Any, kind: str, close_previous: bool,
                    deadline: Optional[float]) -> None:
        """Resolve ``spec`` (off the loop: devices are slow), make it the call's source or sink, then close the
        previous one (or keep it, closed when the call ends)."""
        from .media import resolve_sink, resolve_source

        core = self.core
        what = f"set_{kind}"
        await self._answered(session, what, deadline)
        new = core.own(await core.run_blocking(resolve_source if kind == "source" else resolve_sink, spec,
                                               logger=core.log))
        try:
            media = await self._answered(session, what, deadline)
            if kind == "source" and not ("a=sendrecv" in (session.local_sdp or "")
                                         or "a=sendonly" in (session.local_sdp or "")):
                raise SessionStateError(f"set_source: session {session.sid} was answered receive-only",
                                        session_id=session.sid)
        except BaseException:
            if new is not spec:
                await core.run_blocking(core.close_owned, new)
            raise
        if kind == "source":
            previous, retired = media.set_source(new), media.retired_sources
            session.source = new
            session.rtc.owns_source = True  # what set_source opens (or is handed) belongs to the call
        else:
            previous, retired = media.set_sink(new), media.retired_sinks
            session.sink = new
            session.rtc.owns_sink = True
            if session.pump is None:
                session._start_pump()
        if previous is not None and previous is not new:
            if close_previous:
                await core.run_blocking(core.close_owned, previous)
            else:
                retired.append(previous)

    async def set_source(self, session: "JingleSession", spec: Any, close_previous: bool,
                         deadline: Optional[float]) -> None:
        """Send ``spec`` from now on (no renegotiation)."""
        await self._swap(session, spec, "source", close_previous, deadline)

    async def set_sink(self, session: "JingleSession", spec: Any, close_previous: bool,
                       deadline: Optional[float]) -> None:
        """Play the remote audio into ``spec`` from now on."""
        await self._swap(session, spec, "sink", close_previous, deadline)

    async def set_audio_mute(self, session: "JingleSession", muted: bool, rest: bool,
                             deadline: Optional[float]) -> None:
        """Mute locally at once (silence is sent, no renegotiation), then ``PATCH`` the participant's ``muted``.

        :raises ApiError: the REST update failed (the local mute stays in effect).
        """
        if not isinstance(muted, bool):
            raise UsageError(f"muted must be True or False, not {muted!r}")
        media = await self._answered(session, "set_audio_mute", deadline)
        media.set_muted(muted)
        core = self.core
        me = core.me or {}
        if not rest or not session.conversation_id or not me.get("id"):
            return
        # The service keeps the participant's mute state (§1.2); other clients and the agent UI show it.
        try:
            participant_id = await self._my_participant_id(session.conversation_id, deadline, connected=True)
            await self.rest(core.api.patch_participant, session.conversation_id, participant_id,
                            {"muted": muted}, deadline=deadline)
        except (ApiError, ConnectionFailedError) as exc:
            core.trace("warning", f"REST {'mute' if muted else 'unmute'} of {session.sid} failed: {exc}; "
                                  "the local mute is in effect", {"session_id": session.sid})
            raise

    async def start_recording(self, session: "JingleSession", path: Any, mode: int, deadline: Optional[float]) -> None:
        """Create the file off the loop, then feed it from the loop (its clock starts now)."""
        from .media.live import CallRecorder

        await self._answered(session, "start_recording", deadline)
        media = await self._answered(session, "start_recording", deadline)
        if media.recorder is not None:
            raise UsageError(f"session {session.sid} is already recording to {media.recorder.path}")
        recorder = await self.core.run_blocking(CallRecorder, path, mode=mode)
        if session.ended or media.recorder is not None:
            await self.core.run_blocking(recorder.close)
            raise SessionStateError(f"start_recording: session {session.sid} has ended", session_id=session.sid)
        media.recorder = recorder
        media.last_recorder = recorder

    async def stop_recording(self, session: "JingleSession") -> "Recording":
        """Stop feeding the recorder, then finish the file off the loop."""
        from .media.live import Recording

        media = session.media
        if media is None:
            raise SessionStateError(f"stop_recording: session {session.sid} has not been answered",
                                    session_id=session.sid)
        recorder, media.recorder = media.recorder, None
        if recorder is None:
            recorder = media.last_recorder  # the call ended meanwhile and stopped it
        if recorder is None:
            raise UsageError(f"session {session.sid} is not recording")
        await self.core.run_blocking(recorder.close)
        return Recording(recorder.path, recorder.seconds_written)

    def finished_recording(self, session: "JingleSession") -> "Recording":
        """The last recording of a session whose SDK is closed (nothing runs any more: any thread)."""
        from .media.live import Recording

        media = session.media
        recorder = media.last_recorder if media is not None else None
        if recorder is None:
            raise UsageError(f"session {session.sid} is not recording")
        recorder.close()
        return Recording(recorder.path, recorder.seconds_written)

    async def get_stats(self, session: "JingleSession") -> Any:
        quality = session.quality
        if session.ended and quality.last is not None:
            return quality.last
        return await quality.collect()
