"""The Jingle responder state machine: a call's signalling (core loop only).

The gateway is always the Jingle initiator and we the responder (docs/protocol.rst §4).
A session is created by ``session-initiate`` (or, in SDP-over-XMPP mode, a JSON-RPC ``offer``, §5);
:meth:`JingleSession.accept` answers it: ``session-accept`` without candidates, one ``transport-info``
per candidate, then ``<gathering-complete/>`` (aiortc gathers everything before ``setLocalDescription``
returns, so we trickle them ourselves, §9).  When ICE completes we send ``session-info <active/>``.

The call's media (peer connection, live audio, pump, RFC 4733, quality, recording) is a
:class:`~purecloud_webrtc._session_media.SessionMedia` that this signalling drives.  Every method runs
on the core loop.  Handlers for one session are serialised by a lock, so a ``transport-info`` that
arrives while the offer is still being applied waits for it instead of racing it.

The public :class:`~purecloud_webrtc.Session` reads :attr:`JingleSession.view`, a frozen snapshot the
core replaces whenever the state it shows changes, so a reader on another thread always sees one
consistent state (no reliance on the GIL).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Optional

from .._session_media import SessionMedia
from .._xml import Element, element, q
from ..errors import ConnectionFailedError, MediaError, SessionStateError
from . import sdp as sdpmod
from .messages import jingle_iq, parse_reason, reason_element

#: at most this many IQs of one session are kept to send again after a reconnect
MAX_LOST_IQS = 64

if TYPE_CHECKING:  # pragma: no cover
    from .._core import Core
    from ..media.sinks import AudioSink
    from ..media.sources import AudioSource

__all__ = ["JingleSession", "SessionState", "ConnectionState", "SessionView"]

log = logging.getLogger(__name__)


class SessionState:
    """Values of ``session.state`` (docs/protocol.rst §4.8)."""

    STARTING = "starting"
    PENDING = "pending"
    ACTIVE = "active"
    ENDED = "ended"


class ConnectionState:
    """Values of ``session.connection_state``, derived from aiortc's ICE state (docs/protocol.rst §4.8, §9)."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    INTERRUPTED = "interrupted"
    DISCONNECTED = "disconnected"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class SessionView:
    """What a session shows other threads, replaced as a whole by the core on every change."""

    state: str = SessionState.STARTING
    connection_state: str = ConnectionState.NEW
    interrupted: bool = False
    conversation_id: Optional[str] = None
    end_reason: Optional[str] = None
    end_reason_text: Optional[str] = None
    local_sdp: Optional[str] = None
    remote_sdp: Optional[str] = None


_VIEW_FIELDS = frozenset(f.name for f in dataclasses.fields(SessionView))
_MEDIA_FIELDS = frozenset({"pc", "remote_track", "source", "sink", "pump", "dtmf_track", "te_sender", "quality"})


class JingleSession:
    """One call's signalling, owned by the core loop; its media is :attr:`rtc`.

    :param core: the SDK core.
    :param sid: Jingle session id (= XEP-0353 proposal id).
    :param peer: the initiator's full JID (all our Jingle IQs go there).
    """

    def __init__(self, core: "Core", sid: str, peer: str, conversation_id: Optional[str]) -> None:
        from .._trust import CandidateCounts
        from ..session import Session

        object.__setattr__(self, "view", SessionView(conversation_id=conversation_id))
        self.core = core
        self.sid = sid
        self.peer = peer
        self.conversation_id = conversation_id
        self.state = SessionState.STARTING
        self.connection_state = ConnectionState.NEW
        self.interrupted = False
        self.end_reason: Optional[str] = None
        self.end_reason_text: Optional[str] = None
        self.local_sdp: Optional[str] = None
        self.remote_sdp: Optional[str] = None
        self.created_at = time.monotonic()
        self.connected_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self.active_sent = False
        self.local_ufrag: Optional[str] = None
        #: how many ICE restarts of the far end re-established this call's media
        self.restarts = 0
        #: "jingle", or "rpc" when the server negotiates with JSON-RPC SDP-over-XMPP (docs/protocol.rst §5).
        self.mode = "jingle"
        self._lock = asyncio.Lock()
        #: set once the session has its media (answered) or has ended; commands wait on it
        self.answered = asyncio.Event()
        #: set when the session has ended
        self.ended_event = asyncio.Event()
        #: Remote candidates used and dropped (multicast, link-local, over the limit, ...), for the stats.
        self.candidates = CandidateCounts()
        self.public = Session(core.sdk, self)
        #: the media-liveness watchdog, once ICE connected
        self._liveness: Optional["asyncio.Task[None]"] = None
        self._ending_for_media = False
        #: end_session is under way: the media closing meanwhile is its doing, not a failure
        self.hanging_up = False
        #: set when the SDK ends the call itself (media gone): the reason reported, whatever the terminate says
        self._local_end_reason: Optional[str] = None
        #: the call's media, driven by this signalling
        self.rtc = SessionMedia(self, self._on_ice_state)
        #: IQs that a lost link swallowed before their result, sent again after the reconnect (bounded)
        self._lost_iqs: "list[tuple[str, Element]]" = []

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _MEDIA_FIELDS:
            setattr(self.rtc, name, value)
            return
        object.__setattr__(self, name, value)
        if name in _VIEW_FIELDS:
            # One new snapshot per change: readers on other threads see the old or the new, never a mix.
            object.__setattr__(self, "view", dataclasses.replace(self.view, **{name: value}))

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set on the session: the media's (pc, pump, source, sink, quality...).
        if name in _MEDIA_FIELDS and "rtc" in self.__dict__:
            return getattr(self.__dict__["rtc"], name)
        raise AttributeError(name)

    @property
    def media(self) -> Any:
        """The call's live audio (:class:`~purecloud_webrtc.media.live.CallMedia`), once answered."""
        return self.rtc.live

    def _start_pump(self) -> None:
        self.rtc.start_pump()

    # -- helpers -------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state == SessionState.ENDED

    def discard(self) -> None:
        """A session whose offer could not be used: ended without events (it was never announced)."""
        self.state = SessionState.ENDED
        self.answered.set()
        self.ended_event.set()

    def _send_rpc(self, method: str, params: dict) -> None:
        from .rpc import rpc_iq

        self._send_iq(method, rpc_iq(self.peer, method, {"sessionId": self.sid, **params}))

    def _send_jingle(self, action: str, *children: Element) -> None:
        self._send_iq(action, jingle_iq(self.peer, action, self.sid, *children))

    def _send_iq(self, action: str, iq: Element) -> None:
        try:
            self.core.send_iq_nowait(iq, on_error=lambda exc: self._on_iq_error(action, exc, iq))
        except ConnectionFailedError as exc:  # no stream right now (an outage): the same as a lost one
            if action in ("session-terminate", "terminate"):
                raise  # finish() ends the call locally anyway
            self._on_iq_error(action, exc, iq)

    def _on_iq_error(self, action: str, exc: Exception, iq: Optional[Element] = None) -> None:
        from ..errors import IqError

        if isinstance(exc, IqError) and exc.app_condition == "unknown-session" and not self.ended:
            # The peer no longer knows this session (stanza 12 ends it silently with "gone", §4.1).
            self.core.loop.create_task(self.finish("gone", send=False))
            return
        if (isinstance(exc, ConnectionFailedError) and iq is not None and not self.ended
                and action not in ("session-terminate", "terminate")
                and len(self._lost_iqs) < MAX_LOST_IQS):
            # The link died before the peer confirmed it: the answer (or candidate, or mute) may never have
            # arrived.  It goes again, in order, once the SDK has reconnected (resend_lost_iqs).
            self._lost_iqs.append((action, iq))
            return
        self.core.report_error(exc, {"session_id": self.sid, "action": action})

    def resend_lost_iqs(self) -> None:
        """After a reconnect: send again what the lost link may have swallowed (a session-accept and its
        candidates, an answer), so a call accepted during an outage still connects (issue 13)."""
        lost, self._lost_iqs = self._lost_iqs, []
        if self.ended or not lost:
            return
        self.core.trace("info", f"session {self.sid}: {len(lost)} message(s) the lost link may have swallowed "
                                f"sent again ({', '.join(action for action, _ in lost)})", {"session_id": self.sid})
        for action, iq in lost:
            iq.set("id", str(uuid.uuid4()))
            self._send_iq(action, iq)

    def _set_state(self, state: str) -> None:
        old, self.state = self.state, state
        if old == state:
            return
        if old == SessionState.ACTIVE:
            self.public._emit("change:active", self.public, False)
        if state == SessionState.ACTIVE:
            self.public._emit("change:active", self.public, True)

    def _set_connection_state(self, state: str) -> None:
        if state == self.connection_state:
            return
        was_interrupted = self.connection_state == ConnectionState.INTERRUPTED
        self.connection_state = state
        self.public._emit("change:connectionState", self.public, state)
        if state == ConnectionState.INTERRUPTED and not self.interrupted:
            self.interrupted = True
            self.public._emit("change:interrupted", self.public, True)
        elif was_interrupted and self.interrupted:
            self.interrupted = False
            self.public._emit("change:interrupted", self.public, False)

    def _on_ice_state(self, state: str) -> None:
        """The media's ICE state changed: the connection state, and the service's cue once connected."""
        if self.ended:
            return
        if state == "checking":
            self._set_connection_state(ConnectionState.CONNECTING)
        elif state in ("completed", "connected"):
            if self.connected_at is None:
                self.connected_at = time.monotonic()
                self._liveness = self.core.loop.create_task(self._watch_media(), name=f"pcw-liveness-{self.sid}")
            self._set_connection_state(ConnectionState.CONNECTED)
            self.rtc.quality.start()
            if not self.active_sent:
                # aiortc's "completed" is the browsers' "connected": the server's cue (§4.6, §9).
                self.active_sent = True
                if self.mode == "rpc":
                    self._send_rpc("info", {"status": "active"})
                else:
                    self._send_jingle("session-info", element(q("rtp_info", "active")))
        elif state == "failed":
            self._set_connection_state(ConnectionState.FAILED)
            self._end_for_media("failed-transport", "ICE failed")
        elif state == "closed":
            # The far end closed the media (DTLS close_notify) or aiortc closed it on consent expiry: the call
            # cannot carry audio any more.  A normal hang-up closes the media too, and its session-terminate
            # may still be on its way through signalling: give it a moment before ending the call ourselves.
            self._set_connection_state(ConnectionState.DISCONNECTED)
            grace = max(2.0, self.core.options.media_interrupted_after)
            closed = self.rtc.pc

            def end_unless_restarted() -> None:
                if self.rtc.pc is closed:  # an ICE restart meanwhile brought new media (restart())
                    self._end_for_media("connectivity-error", "the media connection closed")

            self.core.loop.call_later(grace, end_unless_restarted)

    async def _watch_media(self) -> None:
        """RTP inactivity: ``interrupted`` after ``media_interrupted_after`` s without remote media, back when it
        returns; beyond ``media_timeout`` s the call ends (docs/protocol.rst §4.8)."""
        options = self.core.options
        after = options.media_interrupted_after
        timeout = options.media_timeout
        last, seen = time.monotonic(), self.rtc.activity()
        while not self.ended:
            await asyncio.sleep(min(0.25, after / 4))
            now, count = time.monotonic(), self.rtc.activity()
            if count != seen:
                last, seen = now, count
                if self.connection_state == ConnectionState.INTERRUPTED:
                    self._set_connection_state(ConnectionState.CONNECTED)
                continue
            # DISCONNECTED: the far end closed the media; unless a session-terminate ends the call first, that
            # is an interruption like any other.
            # A far end that never sent anything since ICE connected counts too (it died at once, or its media
            # never started), unless its offer said it would not send.
            if (self.connection_state in (ConnectionState.CONNECTED, ConnectionState.DISCONNECTED)
                    and now - last >= after and (seen or self._remote_sends())):
                self.core.trace("warning", f"session {self.sid}: no media for {now - last:.1f} s",
                                {"session_id": self.sid})
                self._set_connection_state(ConnectionState.INTERRUPTED)
            elif self.connection_state == ConnectionState.INTERRUPTED and timeout and now - last >= timeout:
                self._end_for_media("connectivity-error", f"no media for {now - last:.0f} s")
                return

    def _remote_sends(self) -> bool:
        """Whether the far end's description of our audio section says it sends (not ``recvonly``/``inactive``)."""
        plan = self.rtc.plan
        return plan is None or plan.remote_direction in ("sendrecv", "sendonly")

    def _end_for_media(self, reason: str, why: str) -> None:
        """The media is gone for good: end the call (by REST when it has a conversation, so the far end does
        not stay connected), with an ``error`` event saying why; ``sessionEnded`` follows once."""
        if self.ended or self._ending_for_media or self.hanging_up:
            return
        self._ending_for_media = True
        # The service's session-terminate answers our hang-up with "success": the reason is still ours.
        self._local_end_reason = reason
        self.core.report_error(MediaError(f"session {self.sid} ended: {why}"), {"session_id": self.sid,
                                                                                  "reason": reason})

        conversation_id = self.conversation_id

        by_rest = bool(conversation_id and (self.core.me or {}).get("id"))

        async def end() -> None:
            # The call is over for us now (sessionEnded at once); the hang-up follows so the far end does not stay
            # connected, however long the service takes: by REST as the seed does (the service then ends the
            # conversation), else, or when REST fails, a session-terminate.
            await self.finish(reason, send=not by_rest)
            if not by_rest or self.core.closing:
                return
            try:
                await self.core.commands.hang_up_by_rest(conversation_id, time.monotonic() + 10)
            except Exception as exc:  # noqa: BLE001 - best effort; the call has ended here already
                self.core.trace("info", f"session {self.sid}: REST hang-up after the media ended failed ({exc}); "
                                        "sending session-terminate", {"session_id": self.sid})
                try:
                    self._send_terminate(reason, None)
                except Exception:  # noqa: BLE001 - no link either: nothing more can be done
                    pass

        self.core.loop.create_task(end())

    # -- remote candidates: the filter and the bound (see _trust) ----------------------------

    def _admit_candidate(self, candidate: str) -> bool:
        """Whether a remote candidate may reach the ICE agent; counts it either way."""
        reason = self.core.candidate_filter().verdict(candidate)
        limit = self.core.limits.max_remote_candidates
        if reason is None and self.candidates.accepted >= limit:
            reason = "over Limits.max_remote_candidates"
            if "over Limits.max_remote_candidates" not in (self.candidates.reasons or {}):
                from ..errors import SignalingError

                self.core.report_error(SignalingError(
                    f"session {self.sid}: more than {limit} remote ICE candidates; the rest are ignored "
                    "(Limits.max_remote_candidates)"), {"session_id": self.sid})
        if reason is not None:
            self.candidates.drop(reason)
            log.info("session %s: remote candidate dropped (%s): %s", self.sid, reason, candidate[:200])
            return False
        self.candidates.accepted += 1
        return True

    def _screen_sdp(self, sdp: str) -> str:
        """``sdp`` with only the remote candidates that may be used."""
        lines = [line for line in sdp.split("\r\n")
                 if not line.startswith("a=candidate:") or self._admit_candidate(line[2:])]
        return "\r\n".join(lines)

    # -- incoming Jingle -------------------------------------------------------------------

    async def on_initiate(self, iq: Element, jingle: Element) -> bool:
        """Apply the offer; reply to ``iq``.  Returns ``True`` when the session can go on."""
        from ..xmpp.stream import error_reply, result_reply

        async with self._lock:
            if not jingle.findall(q("jingle", "content")):
                self.core.send(error_reply(iq, "bad-request", "modify", text="session-initiate without contents"))
                return False
            try:
                offer = sdpmod.jingle_to_sdp(jingle, "initiator")
            except sdpmod.SdpError as exc:
                self.core.send(error_reply(iq, "bad-request", "modify", text=f"cannot translate the offer: {exc}"))
                self.core.report_error(exc, {"session_id": self.sid, "action": "session-initiate"})
                return False
            offer = self._screen_sdp(offer)
            self.remote_sdp = offer
            try:
                await self.rtc.apply_offer(offer)
            except Exception as exc:  # aiortc raises ValueError & co. for offers it cannot use
                self.core.send(error_reply(iq, "not-acceptable", "modify", text=f"offer refused: {exc}"))
                self.core.report_error(MediaError(f"the offer of session {self.sid} was refused: {exc}"),
                                       {"session_id": self.sid})
                return False
            self.core.send(result_reply(iq))
            self._set_state(SessionState.PENDING)
            return True

    # -- SDP over XMPP (docs/protocol.rst §5) ---------------------------------------------------------

    async def on_rpc_offer(self, offer: str, take_early: "Callable[[], list[str]]" = list) -> bool:
        """Apply a JSON-RPC ``offer``; returns ``True`` when the session can go on (no IQ reply in this mode).

        ``take_early()`` hands over the candidate fragments that arrived before the offer was applied; they
        are added in arrival order under this session's lock, so an ``end-of-candidates`` can never overtake
        a candidate (aiortc ignores candidates after it, and ICE would fail).
        """
        async with self._lock:
            self.mode = "rpc"
            offer = self._screen_sdp(offer)
            self.remote_sdp = offer
            try:
                await self.rtc.apply_offer(offer)
            except Exception as exc:  # an offer aiortc cannot use
                self.core.report_error(MediaError(f"the offer of session {self.sid} was refused: {exc}"),
                                       {"session_id": self.sid})
                return False
            while True:
                batch = take_early()
                if not batch:
                    break
                for fragment in batch:
                    await self._add_rpc_candidate(fragment)
            # No await between the last empty batch and this: later candidates go straight to the session.
            self._set_state(SessionState.PENDING)
            return True

    async def on_rpc_renegotiate(self, offer: str) -> None:
        """Same ICE credentials: a renegotiation of this session; answer it again (§5)."""
        async with self._lock:
            if self.rtc.pc is None or self.ended:
                return
            offer = self._screen_sdp(offer)
            try:
                local = await self.rtc.renegotiate(offer)
            except Exception as exc:
                self.core.report_error(MediaError(f"renegotiation of {self.sid} failed: {exc}"),
                                       {"session_id": self.sid})
                return
            self.remote_sdp = offer
            self.local_sdp = local
            stripped, _ = sdpmod.split_candidates(local)
            self._send_rpc("answer", {"sdp": stripped})

    def _send_rpc_answer(self, stripped: str, candidates: "list[tuple[str, str]]") -> None:
        self._send_rpc("answer", {"sdp": stripped})
        for mid, candidate in candidates:
            # The SDP fragment form SC uses, with the trailing CRLF it gained in 19.0.1 (§5, §8 #24).
            self._send_rpc("iceCandidate", {"sdp": f"m={mid} 9 RTP/AVP 0\r\na={candidate}\r\n"})
        self._send_rpc("iceCandidate", {"sdp": "a=end-of-candidates\r\n"})

    async def on_rpc_candidate(self, fragment: str) -> None:
        """A JSON-RPC ``iceCandidate``: ``m={mid} …`` + ``a=candidate:…``, or ``a=end-of-candidates``."""
        async with self._lock:
            await self._add_rpc_candidate(fragment)

    async def _add_rpc_candidate(self, fragment: str) -> None:
        from .rpc import parse_candidate_fragment

        if self.rtc.pc is None or self.ended:
            return
        try:
            mid, candidate = parse_candidate_fragment(fragment)
        except ValueError as exc:
            log.warning("session %s: %s", self.sid, exc)
            return
        if candidate is not None and not self._admit_candidate(candidate):
            return
        try:
            # No m= line in the fragment: the (bundled) first section.
            await self.rtc.add_candidate(candidate, mid=mid)
        except Exception as exc:  # one bad candidate must not hurt the call
            log.warning("session %s: remote candidate %r refused: %s", self.sid, candidate, exc)

    def _remote_ufrag(self) -> Optional[str]:
        return next((line[len("a=ice-ufrag:"):].strip() for line in (self.remote_sdp or "").splitlines()
                     if line.startswith("a=ice-ufrag:")), None)

    async def on_transport_info(self, jingle: Element) -> None:
        async with self._lock:
            if self.rtc.pc is None or self.ended:
                return
            try:
                entries = sdpmod.parse_transport_info(jingle)
                creds = sdpmod.transport_credentials(jingle)
            except sdpmod.SdpError as exc:
                self.core.report_error(exc, {"session_id": self.sid, "action": "transport-info"})
                return
            if creds is not None and creds.ufrag != self._remote_ufrag():
                if not await self._restart_ice(creds):
                    return
            for mid, _ufrag, candidate in entries:
                if candidate is not None and not self._admit_candidate(
                        candidate[len("candidate:"):] if candidate.startswith("candidate:") else candidate):
                    continue
                try:
                    await self.rtc.add_candidate(candidate, mid=mid)
                except Exception as exc:  # a bad candidate must not hurt the others
                    log.warning("session %s: remote candidate %r refused: %s", self.sid, candidate, exc)

    async def _restart_ice(self, creds: "sdpmod.TransportCredentials") -> bool:
        """The far end restarted ICE (XEP-0176: a ``transport-info`` with a new ufrag and pwd): re-establish the
        media under this same session (:meth:`SessionMedia.restart`) and send our new credentials, fingerprint
        and candidates the same way. Returns whether the candidates that came with it can be added.
        A call not yet answered just takes the new credentials into the offer it will answer."""
        offer = sdpmod.with_credentials(self.remote_sdp or "", creds)
        self.core.trace("info", f"session {self.sid}: the far end restarted ICE", {"session_id": self.sid})
        try:
            if self.state != SessionState.ACTIVE:
                old = self.rtc.pc
                await self.rtc.apply_offer(offer)
                if old is not None:
                    await old.close()
                self.remote_sdp = offer
                return True
            local = await self.rtc.restart(offer)
        except Exception as exc:  # the media cannot come back: the call is over, and says why
            self.remote_sdp = offer
            await self.finish("failed-application", text=f"ICE restart failed: {exc}", send=True)
            self.core.report_error(MediaError(f"session {self.sid}: the ICE restart failed: {exc}"),
                                   {"session_id": self.sid})
            return False
        self.remote_sdp, self.local_sdp = offer, local
        self.restarts += 1
        stripped, candidates = sdpmod.split_candidates(local)
        # Our new transport first (XEP-0176: credentials and fingerprint in a transport-info), then trickle.
        contents = sdpmod.sdp_to_jingle(stripped, "responder", include_candidates=False)
        for content in contents:
            transport = content.find(q("ice_udp", "transport"))
            if content.tag != q("jingle", "content") or transport is None or not transport.get("ufrag"):
                continue
            for description in [c for c in content if c is not transport]:
                content.remove(description)
            self._send_jingle("transport-info", content)
        self._trickle(stripped, candidates)
        return True

    async def on_terminate(self, jingle: Element) -> None:
        condition, text = parse_reason(jingle)
        await self.finish(condition, text=text, send=False)

    # -- accept -------------------------------------------------------------------------------

    async def accept(self, source: Optional["AudioSource"], sink: Optional["AudioSink"],
                     owns_source: bool = True, owns_sink: bool = True) -> None:
        """Answer the offer with ``source`` as our audio (``None``: receive only) and play into ``sink``.

        :raises SessionStateError: when the session is not waiting for an answer.
        """
        async with self._lock:
            if self.state != SessionState.PENDING or self.rtc.pc is None:
                raise SessionStateError(f"session {self.sid} cannot be accepted: it is {self.state}",
                                        session_id=self.sid)
            try:
                local = await self.rtc.answer(source, sink, owns_source, owns_sink, self.remote_sdp or "")
            except Exception as exc:
                await self.finish("failed-application", text=str(exc), send=True)
                raise MediaError(f"cannot answer session {self.sid}: {exc}") from exc
            self.local_sdp = local
            stripped, candidates = sdpmod.split_candidates(local)
            if self.mode == "rpc":
                self._send_rpc_answer(stripped, candidates)
            else:
                self._send_session_accept(stripped, candidates)
            self._set_state(SessionState.ACTIVE)
            self.public._emit("endOfCandidates", self.public)
            if self.rtc.remote_track is not None and sink is not None:
                self.rtc.start_pump()

    def _send_session_accept(self, stripped: str, candidates: "list[tuple[str, str]]") -> None:
        contents = sdpmod.sdp_to_jingle(stripped, "responder", include_candidates=False)
        self._send_jingle("session-accept", *contents)
        self._trickle(stripped, candidates, contents)

    def _trickle(self, stripped: str, candidates: "list[tuple[str, str]]",
                 contents: "Optional[list[Element]]" = None) -> None:
        """Our candidates, one ``transport-info`` each, then the end of candidates (§4.4, §4.5)."""
        if contents is None:
            contents = sdpmod.sdp_to_jingle(stripped, "responder", include_candidates=False)
        ufrags = {}
        for content in contents:
            transport = content.find(q("ice_udp", "transport"))
            if content.tag == q("jingle", "content") and transport is not None:
                ufrags[content.get("name")] = transport.get("ufrag")
        for mid, candidate in candidates:
            self._send_jingle("transport-info", sdpmod.transport_info_content(mid, ufrags.get(mid), candidate))
        first_mid = next((mid for mid, ufrag in ufrags.items() if ufrag), None)  # not a rejected content
        if first_mid is not None:
            self.local_ufrag = ufrags[first_mid]
            self._send_jingle("transport-info", sdpmod.transport_info_content(
                first_mid, ufrags[first_mid], gathering_complete=True))

    # -- end -------------------------------------------------------------------------------------

    async def finish(self, reason: str = "success", *, text: Optional[str] = None, send: bool = True) -> None:
        """End the session once: optionally send ``session-terminate``, close media, emit the events."""
        if self.ended:
            return
        if self._local_end_reason:
            reason = self._local_end_reason
        self.end_reason, self.end_reason_text = reason, text
        was_active = self.state == SessionState.ACTIVE
        self.state = SessionState.ENDED
        self.ended_at = time.monotonic()
        self.answered.set()
        self.ended_event.set()
        if self._liveness is not None and self._liveness is not asyncio.current_task():
            self._liveness.cancel()
        # Out of the live list at once: callers that saw it end (end_session) must not still find it.
        self.core.forget_session(self)
        if was_active:
            self.public._emit("change:active", self.public, False)
        if send:
            try:
                self._send_terminate(reason, text)
            except Exception as exc:  # the stream may be down; the call ends locally anyway
                log.info("session %s: could not send session-terminate: %s", self.sid, exc)
        await self.rtc.close()
        deferred = getattr(self, "deferred_options", None)
        if deferred is not None:  # accepted with media that was never answered with (deferred accept)
            await self.core.close_accept_media(deferred)
        if self.connection_state not in (ConnectionState.DISCONNECTED, ConnectionState.NEW, ConnectionState.FAILED):
            self._set_connection_state(ConnectionState.DISCONNECTED)
        self.public._emit("terminated", self.public, reason)
        self.core.sdk._emit("sessionEnded", self.public, reason)

    def _send_terminate(self, reason: str, text: Optional[str]) -> None:
        if self.mode == "rpc":
            self._send_rpc("terminate", {"reason": reason})
        else:
            self._send_jingle("session-terminate", reason_element(reason, text))

    async def close_media(self) -> None:
        """Close the media now (the session's ``finish`` does it too)."""
        await self.rtc.close()
