"""The Jingle responder state machine with its aiortc peer connection (core loop only).

The gateway is always the Jingle initiator and we the responder (docs/protocol.rst §4).
A session is created by ``session-initiate``; :meth:`JingleSession.accept`
answers it: ``session-accept`` without candidates, one ``transport-info`` per
candidate, then ``<gathering-complete/>`` (aiortc gathers everything before
``setLocalDescription`` returns, so we trickle them ourselves, §9).  When ICE
completes we send ``session-info <active/>``.

Every method runs on the core loop.  Handlers for one session are serialised by
a lock, so a ``transport-info`` that arrives while the offer is still being
applied waits for it instead of racing it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from .. import _xml as X
from .._xml import NS, Element, element, q
from ..errors import MediaError, SessionStateError
from . import sdp as sdpmod
from .messages import jingle_iq, parse_reason, reason_element

if TYPE_CHECKING:  # pragma: no cover
    from .._core import Core
    from ..media.live import CallMedia
    from ..media.sinks import AudioSink, SinkPump
    from ..media.sources import AudioSource

__all__ = ["JingleSession", "SessionState", "ConnectionState"]

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


def _only_sha256(sdp: str) -> str:
    # aiortc offers sha-256/384/512; browsers (and the gateway) send sha-256 only (docs/protocol.rst §9).
    lines = sdp.split("\r\n")
    if any(line.startswith("a=fingerprint:sha-256 ") for line in lines):
        lines = [line for line in lines if not line.startswith("a=fingerprint:") or line.startswith("a=fingerprint:sha-256 ")]
    return "\r\n".join(lines)


class JingleSession:
    """One call's signaling and media, owned by the core loop.

    :param core: the SDK core.
    :param sid: Jingle session id (= XEP-0353 proposal id).
    :param peer: the initiator's full JID (all our Jingle IQs go there).
    """

    def __init__(self, core: "Core", sid: str, peer: str, conversation_id: Optional[str]) -> None:
        from ..session import Session

        self.core = core
        self.sid = sid
        self.peer = peer
        self.conversation_id = conversation_id
        self.state = SessionState.STARTING
        self.connection_state = ConnectionState.NEW
        self.interrupted = False
        self.end_reason: Optional[str] = None
        self.end_reason_text: Optional[str] = None
        self.pc: Optional[RTCPeerConnection] = None
        self.remote_track: Any = None
        self.source: Optional["AudioSource"] = None
        self.sink: Optional["AudioSink"] = None
        self.pump: Optional["SinkPump"] = None
        self.media: Optional["CallMedia"] = None  # live source/sink swaps, mute, levels, recording
        self.local_sdp: Optional[str] = None
        self.remote_sdp: Optional[str] = None
        self.created_at = time.monotonic()
        self.connected_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self.active_sent = False
        self.local_ufrag: Optional[str] = None
        self.dtmf_track: Any = None
        self.te_sender: Any = None  # RFC 4733 sender, when telephone-event was negotiated
        #: "jingle", or "rpc" when the server negotiates with JSON-RPC SDP-over-XMPP (docs/protocol.rst §5).
        self.mode = "jingle"
        self._lock = asyncio.Lock()
        #: set once the session has its media (answered) or has ended; commands wait on it
        self.answered = asyncio.Event()
        #: set when the session has ended
        self.ended_event = asyncio.Event()
        self._owns_source = True
        self._owns_sink = True
        from .._trust import CandidateCounts

        #: Remote candidates used and dropped (multicast, link-local, over the limit, ...), for the stats.
        self.candidates = CandidateCounts()
        self.public = Session(core.sdk, self)
        from .._session_quality import SessionQuality

        self.quality = SessionQuality(self)  # our jitter buffer, get_stats(), the stats event

    # -- helpers -------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.state == SessionState.ENDED

    def _send_rpc(self, method: str, params: dict) -> None:
        from .rpc import rpc_iq

        iq = rpc_iq(self.peer, method, {"sessionId": self.sid, **params})
        self.core.send_iq_nowait(iq, on_error=lambda exc: self._on_iq_error(method, exc))

    def _send_jingle(self, action: str, *children: Element) -> None:
        iq = jingle_iq(self.peer, action, self.sid, *children)
        self.core.send_iq_nowait(iq, on_error=lambda exc: self._on_iq_error(action, exc))

    def _on_iq_error(self, action: str, exc: Exception) -> None:
        from ..errors import IqError

        if isinstance(exc, IqError) and exc.app_condition == "unknown-session" and not self.ended:
            # The peer no longer knows this session (stanza 12 ends it silently with "gone", §4.1).
            self.core.loop.create_task(self.finish("gone", send=False))
            return
        self.core.report_error(exc, {"session_id": self.sid, "action": action})

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

    def _configuration(self) -> RTCConfiguration:
        servers = []
        for server in self.core.ice_servers:
            servers.append(RTCIceServer(urls=server["urls"], username=server.get("username"),
                                        credential=server.get("credential")))
        policy = RTCIceTransportPolicy.RELAY if self.core.ice_transport_policy == "relay" else RTCIceTransportPolicy.ALL
        # Always an explicit list: with None aiortc would add a public STUN server (docs/protocol.rst §13.1).
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

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
            self.pc = RTCPeerConnection(self._configuration())
            self._wire_pc(self.pc)
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            except Exception as exc:  # aiortc raises ValueError & co. for offers it cannot use
                self.core.send(error_reply(iq, "not-acceptable", "modify", text=f"offer refused: {exc}"))
                self.core.report_error(MediaError(f"the offer of session {self.sid} was refused: {exc}"),
                                       {"session_id": self.sid})
                await self.pc.close()
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
            self.pc = RTCPeerConnection(self._configuration())
            self._wire_pc(self.pc)
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            except Exception as exc:  # an offer aiortc cannot use
                self.core.report_error(MediaError(f"the offer of session {self.sid} was refused: {exc}"),
                                       {"session_id": self.sid})
                await self.pc.close()
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
            if self.pc is None or self.ended:
                return
            offer = self._screen_sdp(offer)
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
                answer = await self.pc.createAnswer()
                await self.pc.setLocalDescription(answer)
            except Exception as exc:
                self.core.report_error(MediaError(f"renegotiation of {self.sid} failed: {exc}"),
                                       {"session_id": self.sid})
                return
            self.remote_sdp = offer
            local = _only_sha256(self.pc.localDescription.sdp)
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

        if self.pc is None or self.ended:
            return
        try:
            mid, candidate = parse_candidate_fragment(fragment)
        except ValueError as exc:
            log.warning("session %s: %s", self.sid, exc)
            return
        try:
            if candidate is None:
                await self.pc.addIceCandidate(None)
                return
            if not self._admit_candidate(candidate):
                return
            ice = candidate_from_sdp(candidate[len("candidate:"):])
            if mid is None:
                ice.sdpMLineIndex = 0  # no m= line in the fragment: the (bundled) first section
            else:
                ice.sdpMid = mid
            await self.pc.addIceCandidate(ice)
        except Exception as exc:  # one bad candidate must not hurt the call
            log.warning("session %s: remote candidate %r refused: %s", self.sid, candidate, exc)

    async def on_transport_info(self, jingle: Element) -> None:
        async with self._lock:
            if self.pc is None or self.ended:
                return
            try:
                entries = sdpmod.parse_transport_info(jingle)
            except sdpmod.SdpError as exc:
                self.core.report_error(exc, {"session_id": self.sid, "action": "transport-info"})
                return
            for mid, _ufrag, candidate in entries:
                try:
                    if candidate is None:
                        await self.pc.addIceCandidate(None)
                        continue
                    text = candidate[len("candidate:"):] if candidate.startswith("candidate:") else candidate
                    if not self._admit_candidate(text):
                        continue
                    ice = candidate_from_sdp(text)
                    ice.sdpMid = mid
                    await self.pc.addIceCandidate(ice)
                except Exception as exc:  # a bad candidate must not hurt the others
                    log.warning("session %s: remote candidate %r refused: %s", self.sid, candidate, exc)

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
            if self.state != SessionState.PENDING or self.pc is None:
                raise SessionStateError(f"session {self.sid} cannot be accepted: it is {self.state}",
                                        session_id=self.sid)
            self.source, self.sink = source, sink
            self._owns_source, self._owns_sink = owns_source, owns_sink
            pc = self.pc
            try:
                from ..media.live import CallMedia

                self.media = CallMedia(lambda name, *args: self.public._emit(name, self.public, *args))
                self.answered.set()
                self.media.set_sink(sink)
                # One stable sending track whose inner source can be swapped live (no renegotiation).
                send_track = self.media.start(source)
                if source is not None:
                    from ..media.dtmf import DtmfOverlayTrack

                    # In-band DTMF rides on top of whatever is sent (aiortc has no RFC 4733 sender).
                    self.dtmf_track = DtmfOverlayTrack(send_track)
                    # addTrack (not replaceTrack) makes the transceiver sendrecv (docs/protocol.rst §10.8).
                    pc.addTrack(self.dtmf_track)
                answer = await pc.createAnswer()
                await pc.setLocalDescription(answer)
            except Exception as exc:
                await self.finish("failed-application", text=str(exc), send=True)
                raise MediaError(f"cannot answer session {self.sid}: {exc}") from exc
            local = self.quality.munge_answer(_only_sha256(pc.localDescription.sdp))
            local = self._setup_rfc4733(local)
            self.local_sdp = local
            stripped, candidates = sdpmod.split_candidates(local)
            if self.mode == "rpc":
                self._send_rpc_answer(stripped, candidates)
                self._set_state(SessionState.ACTIVE)
                self.public._emit("endOfCandidates", self.public)
                if self.remote_track is not None and sink is not None:
                    self._start_pump()
                return
            contents = sdpmod.sdp_to_jingle(stripped, "responder", include_candidates=False)
            self._send_jingle("session-accept", *contents)
            self._set_state(SessionState.ACTIVE)
            ufrags = {}
            for content in contents:
                transport = content.find(q("ice_udp", "transport"))
                if content.tag == q("jingle", "content") and transport is not None:
                    ufrags[content.get("name")] = transport.get("ufrag")
            for mid, candidate in candidates:
                self._send_jingle("transport-info", sdpmod.transport_info_content(mid, ufrags.get(mid), candidate))
            first_mid = next(iter(ufrags), None)
            if first_mid is not None:
                self.local_ufrag = ufrags[first_mid]
                self._send_jingle("transport-info", sdpmod.transport_info_content(
                    first_mid, ufrags[first_mid], gathering_complete=True))
            self.public._emit("endOfCandidates", self.public)
            if self.remote_track is not None and sink is not None:
                self._start_pump()

    def _setup_rfc4733(self, answer: str) -> str:
        """Accept the offer's telephone-event in our answer and hook RFC 4733 send/receive (see media.rfc4733)."""
        from ..media.rfc4733 import TelephoneEventSender, answer_telephone_event, attach_receiver, telephone_event_of

        answer = answer_telephone_event(answer, self.remote_sdp or "")
        negotiated = telephone_event_of(answer)
        if negotiated is None or self.pc is None:
            return answer
        sender = next((t.sender for t in self.pc.getTransceivers() if t.kind == "audio"), None)
        if sender is not None and sender.track is not None:
            te = TelephoneEventSender(sender, *negotiated)
            if te.install():
                self.te_sender = te
            else:
                self.core.trace("warning", f"session {self.sid}: RFC 4733 sending is not available with this "
                                "aiortc; DTMF is sent in-band", {"session_id": self.sid, "hook": "rfc4733_send"})
        if not attach_receiver(self.pc, negotiated[0], lambda digit: self.public._emit("dtmf", self.public, digit)):
            self.core.trace("warning", f"session {self.sid}: RFC 4733 receiving is not available with this aiortc; "
                            "only in-band DTMF is detected", {"session_id": self.sid, "hook": "rfc4733_receive"})
        return answer

    def _start_pump(self) -> None:
        from ..media.sinks import SinkPump

        if self.pump is None and self.sink is not None and self.remote_track is not None:
            from ..media.dtmf import DtmfDetectorSink

            target = self.media.router if self.media is not None else self.sink
            detector = DtmfDetectorSink(lambda digit: self.public._emit("dtmf", self.public, digit), target)
            self.pump = SinkPump(self.remote_track, detector)
            self.pump.start()

    def _wire_pc(self, pc: RTCPeerConnection) -> None:
        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio" and self.remote_track is None:
                self.remote_track = self.quality.wrap_track(pc, track)
                if self.state == SessionState.ACTIVE:
                    self._start_pump()

        @pc.on("iceconnectionstatechange")
        def on_ice_state() -> None:
            state = pc.iceConnectionState
            if self.ended:
                return
            if state == "checking":
                self._set_connection_state(ConnectionState.CONNECTING)
            elif state in ("completed", "connected"):
                if self.connected_at is None:
                    self.connected_at = time.monotonic()
                self._set_connection_state(ConnectionState.CONNECTED)
                self.quality.start()
                if not self.active_sent:
                    # aiortc's "completed" is the browsers' "connected": the server's cue (§4.6, §9).
                    self.active_sent = True
                    if self.mode == "rpc":
                        self._send_rpc("info", {"status": "active"})
                    else:
                        self._send_jingle("session-info", element(q("rtp_info", "active")))
            elif state == "failed":
                self._set_connection_state(ConnectionState.FAILED)
                self.core.loop.create_task(self.finish("failed-transport", send=True))
            elif state == "closed":
                self._set_connection_state(ConnectionState.DISCONNECTED)

    # -- end -------------------------------------------------------------------------------------

    async def finish(self, reason: str = "success", *, text: Optional[str] = None, send: bool = True) -> None:
        """End the session once: optionally send ``session-terminate``, close media, emit the events."""
        if self.ended:
            return
        self.end_reason, self.end_reason_text = reason, text
        was_active = self.state == SessionState.ACTIVE
        self.state = SessionState.ENDED
        self.ended_at = time.monotonic()
        self.answered.set()
        self.ended_event.set()
        # Out of the live list at once: callers that saw it end (end_session) must not still find it.
        self.core.forget_session(self)
        if was_active:
            self.public._emit("change:active", self.public, False)
        if send:
            try:
                if self.mode == "rpc":
                    self._send_rpc("terminate", {"reason": reason})
                else:
                    self._send_jingle("session-terminate", reason_element(reason, text))
            except Exception as exc:  # the stream may be down; the call ends locally anyway
                log.info("session %s: could not send session-terminate: %s", self.sid, exc)
        await self.close_media()
        if self.connection_state not in (ConnectionState.DISCONNECTED, ConnectionState.NEW, ConnectionState.FAILED):
            self._set_connection_state(ConnectionState.DISCONNECTED)
        self.public._emit("terminated", self.public, reason)
        self.core.sdk._emit("sessionEnded", self.public, reason)

    async def close_media(self) -> None:
        """Stop the pump, close the peer connection, release source and sink (sink/source closed off-loop)."""
        await self.quality.stop()
        if self.pump is not None:
            try:
                await self.pump.stop()
            except Exception:  # stopping must go on
                log.debug("pump stop failed", exc_info=True)
        if self.pc is not None:
            try:
                await self.pc.close()
            except Exception:
                log.debug("pc close failed", exc_info=True)
        closers = []
        if self.media is not None:
            recorder = await self.media.close()
            if recorder is not None:
                closers.append(recorder.close)
            closers.extend(s.close for s in self.media.retired_sources)
            closers.extend(s.close for s in self.media.retired_sinks)
        if self.source is not None and self._owns_source:
            closers.append(self.source.close)
        if self.sink is not None and self._owns_sink:
            closers.append(self.sink.close)
        for close in closers:
            try:
                await self.core.run_blocking(close)
            except Exception:
                log.warning("closing media of session %s failed", self.sid, exc_info=True)
