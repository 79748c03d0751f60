"""The emulated far end of each call: the XMPP↔SIP gateway ("gjoll") and a real aiortc party.

An :class:`EmulatedCall` is one conversation.  Its gateway side speaks
XEP-0353 (propose / proceed / retract, docs/protocol.rst §3) and Jingle as the
*initiator* (§4), or the JSON-RPC "SDP over XMPP" dialect (§5) when the
emulator is built with ``sdp_over_xmpp=True``.  Its media side is a real
aiortc ``RTCPeerConnection`` that plays a tone (:class:`~purecloud_webrtc.media.ToneSource`)
and records what it hears (:class:`~purecloud_webrtc.media.BufferSink`), so
tests can check audio in both directions.

Threads: everything that touches a call runs on the emulator's loop, one
item at a time from the call's inbox (stanzas and scenario commands alike,
so a hang-up never interleaves with a half-applied session-accept).  The
public methods are for other threads: they queue work and wait for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import itertools
import json
import logging
import random
import secrets
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from .._xml import NS, Element, element, q, split, sub
from ._state import EmulatedUser, EmulatorError, EmulatorState
from .streaming import XmppConnection, XmppRouter, bare, iq_error, iq_result

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from ..media import BufferSink, SinkPump, ToneSource

__all__ = ["ALLOWED_MEDIA_ADDRESSES", "CALL_STATES", "JINGLE_REASONS", "EmulatedCall", "Gateway"]

#: Every state an :class:`EmulatedCall` can be in.
CALL_STATES = (
    "proposed",
    "proceeding",
    "initiated",
    "accepted",
    "connected",
    "answered_elsewhere",
    "ended",
    "retracted",
)
_FINAL = ("ended", "retracted")

#: Jingle reason conditions (XEP-0166 §7.4) accepted by :meth:`EmulatedCall.hangup`.
JINGLE_REASONS = frozenset(
    {
        "alternative-session", "busy", "cancel", "connectivity-error", "decline", "expired",
        "failed-application", "failed-transport", "general-error", "gone", "incompatible-parameters",
        "media-error", "security-error", "success", "timeout", "unsupported-applications",
        "unsupported-transports",
    }
)  # fmt: skip

#: Remote candidates with any other address are dropped: the emulator sends
#: packets to 127.0.0.1 only, whatever a client offers.
ALLOWED_MEDIA_ADDRESSES = frozenset({"127.0.0.1"})

_JINGLE_ACTIONS = {
    "content-accept", "content-add", "content-modify", "content-reject", "content-remove",
    "description-info", "security-info", "session-accept", "session-info", "session-initiate",
    "session-terminate", "transport-accept", "transport-info", "transport-reject", "transport-replace",
}  # fmt: skip

_iq_ids = itertools.count(1)

#: One item of a call's inbox: a coroutine function, its arguments, and the
#: future a waiting thread blocks on (``None`` for stanzas).
_Work = tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], Optional["concurrent.futures.Future[Any]"]]


def _sdp_helpers() -> Any:
    from ..jingle import (
        sdp,  # written alongside; imported late so the REST side works without it
    )

    return sdp


def _media() -> Any:
    from .. import media

    return media


def ufrags_by_mid(sdp: str) -> dict[str, str]:
    """``{mid: ice-ufrag}`` of an SDP (a session-level ufrag applies to every m-section)."""
    session_ufrag: Optional[str] = None
    result: dict[str, str] = {}
    mid: Optional[str] = None
    ufrag: Optional[str] = None
    in_media = False

    def flush() -> None:
        if in_media and mid is not None and (ufrag or session_ufrag):
            result[mid] = ufrag or session_ufrag or ""

    for line in sdp.splitlines():
        if line.startswith("m="):
            flush()
            in_media, mid, ufrag = True, None, None
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=ice-ufrag:"):
            if in_media:
                ufrag = line[12:].strip()
            else:
                session_ufrag = line[12:].strip()
    flush()
    return result


def filter_sdp_candidates(sdp: str) -> tuple[str, list[str]]:
    """Drop ``a=candidate`` lines whose address is not allowed (see :data:`ALLOWED_MEDIA_ADDRESSES`).

    :returns: the filtered SDP and the dropped candidate lines.
    """
    kept, dropped = [], []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            bits = line.split()
            if len(bits) < 8 or bits[4] not in ALLOWED_MEDIA_ADDRESSES:
                dropped.append(line[2:])
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", dropped


class Gateway:
    """Routes stanzas addressed to the gateway domain to their call; tracks the gateway's own IQs.

    :param state: the emulator state.
    :param router: the XMPP router (for delivery).
    :param loop: the emulator loop.
    :param logger: the emulator logger.
    """

    def __init__(
        self, state: EmulatorState, router: XmppRouter, loop: asyncio.AbstractEventLoop, logger: logging.Logger
    ) -> None:
        self.state = state
        self.router = router
        self.loop = loop
        self.logger = logger
        self.calls_by_sid: dict[str, "EmulatedCall"] = {}
        self._pending: dict[str, tuple["asyncio.Future[Element]", "EmulatedCall"]] = {}
        #: IQ results/errors from clients that match no IQ of ours (a client answering twice, or late)
        self.unsolicited: list[str] = []
        self.thread_id: Optional[int] = None
        #: a :class:`~.libwebrtc_party.LibwebrtcParty` to put libwebrtc on the far end instead of aiortc.
        self.remote_party: Optional[Any] = None
        #: far ends that send pre-encoded Opus and count packets without decoding (:mod:`.cheap`)
        self.cheap_far_ends = False

    # -- thread helpers ----------------------------------------------------

    def check_not_loop(self, what: str) -> None:
        """Refuse a blocking call made on the loop thread (it would deadlock)."""
        if threading.get_ident() == self.thread_id:
            raise EmulatorError(f"{what} blocks; it cannot be called on the emulator's own thread")

    def call_on_loop(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn()`` on the loop and return its result (from another thread)."""
        self.check_not_loop("this call")

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    # -- IQs from the gateway ----------------------------------------------

    def send_iq(
        self, call: "EmulatedCall", payload: Element, *, expect_result: bool = True
    ) -> "asyncio.Future[Element]":
        """Send an IQ set from ``call``'s gateway JID to its client; the future gets the reply element.

        An undeliverable IQ (client not bound) completes at once with a
        ``service-unavailable`` error, as the real server would answer.
        """
        assert call.client_jid is not None
        iq_id = f"gw-{next(_iq_ids)}-{secrets.token_hex(3)}"
        iq = element(q("client", "iq"), {"type": "set", "id": iq_id, "from": call.gateway_jid, "to": call.client_jid})
        iq.append(payload)
        future: "asyncio.Future[Element]" = self.loop.create_future()
        if expect_result:
            # Kept until the client's result arrives, also after the call ended (a session-terminate's
            # result comes after the call is gone), or for PENDING_IQ_SECONDS at most.
            self._pending[iq_id] = (future, call)
            self.loop.call_later(self.PENDING_IQ_SECONDS, self._expire, iq_id)
        if self.router.deliver(iq) == 0:
            self._pending.pop(iq_id, None)
            err = copy.deepcopy(iq)
            err.set("from", call.client_jid)
            err.set("to", call.gateway_jid)
            future.set_result(iq_error(err, "service-unavailable"))
        elif not expect_result:
            future.set_result(iq_result(iq))
        return future

    #: how long an IQ of the gateway waits for its result before it is forgotten
    PENDING_IQ_SECONDS = 30.0

    def _expire(self, iq_id: str) -> None:
        pending = self._pending.pop(iq_id, None)
        if pending is not None and not pending[0].done():
            pending[0].set_exception(asyncio.TimeoutError(f"no result for IQ {iq_id}"))
            pending[0].exception()  # retrieved: nobody may be waiting any more

    def pending_iqs(self, call: "EmulatedCall") -> int:
        """How many IQs of ``call`` still wait for the client's result."""
        return sum(1 for _, owner in self._pending.values() if owner is call)

    # -- stanzas to the gateway --------------------------------------------

    def add(self, call: "EmulatedCall") -> None:
        """Register ``call`` under its session id."""
        self.calls_by_sid[call.session_id] = call

    def _call_for(self, sid: Optional[str], to: str) -> Optional["EmulatedCall"]:
        call = self.calls_by_sid.get(sid or "")
        if call is None:
            return None
        # The bare gateway JID is tolerated; another full JID is a different peer.
        if to != call.gateway_jid and to != bare(call.gateway_jid):
            return None
        return call

    def handle_stanza(self, conn: XmppConnection, el: Element) -> None:
        """A stanza from a bound client to the gateway domain (loop thread)."""
        kind = split(el.tag)[1]
        to = el.get("to") or ""
        if kind == "message":
            for child in el:
                if split(child.tag)[0] != NS["jmi"]:
                    continue
                call = self._call_for(child.get("id"), to)
                if call is None:
                    self.logger.warning("%s for unknown session %s ignored", split(child.tag)[1], child.get("id"))
                    continue
                call.enqueue(call._on_jmi, el.get("from"), split(child.tag)[1])
            return
        if kind != "iq":
            return
        iq_type = el.get("type")
        if iq_type in ("result", "error"):
            pending = self._pending.pop(el.get("id") or "", None)
            if pending is None:
                self.unsolicited.append(el.get("id") or "")
                del self.unsolicited[:-100]
                self.logger.debug("unsolicited IQ %s %s from %s", iq_type, el.get("id"), el.get("from"))
                return
            future, _call = pending
            if not future.done():
                future.set_result(el)
            return
        payload = el[0] if len(el) else None
        if payload is not None and payload.tag == q("jingle", "jingle"):
            call = self._call_for(payload.get("sid"), to)
            if call is None or (call.client_jid is not None and el.get("from") != call.client_jid):
                conn.send(iq_error(el, "item-not-found", extra=element(q("jingle_errors", "unknown-session"))))
                return
            call.enqueue(call._on_jingle, conn, el, payload)
        elif payload is not None and payload.tag == q("genesys", "genesys-webrtc"):
            try:
                rpc = json.loads(payload.text or "")
                sid = rpc["params"]["sessionId"]
                method = rpc["method"]
            except (ValueError, KeyError, TypeError):
                conn.send(iq_error(el, "bad-request", error_type="modify", text="invalid JSON-RPC"))
                return
            call = self._call_for(sid, to)
            if call is None or (call.client_jid is not None and el.get("from") != call.client_jid):
                conn.send(iq_error(el, "item-not-found", text=f"unknown session {sid}"))
                return
            call.enqueue(call._on_rpc, conn, el, method, rpc.get("params") or {})
        elif payload is not None and payload.tag == q("ping", "ping") and iq_type == "get":
            conn.send(iq_result(el))
        else:
            conn.send(iq_error(el, "service-unavailable"))


class EmulatedCall:
    """One conversation with the emulated far end (gateway + aiortc party).

    Created by :meth:`Emulator.inbound_call <purecloud_webrtc.emulator.Emulator.inbound_call>`
    or by ``POST /api/v2/conversations/calls``; never directly.

    :ivar conversation_id: the conversation id (``inin-cid``).
    :ivar session_id: the propose id, which is also the Jingle ``sid``.
    :ivar direction: ``"inbound"`` or ``"outbound"``.
    :ivar address: the far end's address (caller number, or what was dialled).
    :ivar user: the emulated user the call is for.
    :ivar gateway_jid: the full JID the gateway speaks from.
    :ivar tone_hz: frequency of the tone the far end plays.
    :ivar trickle: whether the gateway trickles its candidates (else inline in session-initiate).
    :ivar sdp_over_xmpp: whether the call negotiates with JSON-RPC (§5) instead of Jingle.
    """

    def __init__(
        self,
        gateway: Gateway,
        user: EmulatedUser,
        *,
        direction: str,
        address: str,
        tone_hz: float,
        trickle: bool,
        auto_answer: bool,
        sdp_over_xmpp: bool,
        alert_timeout: Optional[float],
    ) -> None:
        self._gateway = gateway
        self._state_obj = gateway.state
        self._log = gateway.logger
        self.user = user
        self.conversation_id = str(uuid.uuid4())
        self.session_id = str(uuid.uuid4())
        self.persistent_cid = str(uuid.uuid4())
        self.direction = direction
        self.address = address
        self.tone_hz = float(tone_hz)
        self.trickle = trickle
        self.auto_answer = auto_answer
        self.sdp_over_xmpp = sdp_over_xmpp
        self.alert_timeout = alert_timeout
        self.gateway_jid = f"webrtc-{random.randint(1000, 9999)}@{gateway.state.gateway_domain}/{uuid.uuid4()}"
        self.created_at = time.time()
        #: full JID that sent the first proceed (the Jingle peer).
        self.client_jid: Optional[str] = None
        #: full JIDs bound when the propose went out.
        self.proposed_to: list[str] = []
        self._state = "new"
        #: every state entered, in order.
        self.states: list[str] = []
        self.end_reason: Optional[str] = None
        self.terminated_by_client = False
        #: Jingle actions received from the client, in order.
        self.jingle_log: list[str] = []
        #: payloads of the client's session-info (``active``, ``mute``…).
        self.session_info: list[str] = []
        #: JSON-RPC methods received from the client (SDP-over-XMPP mode).
        self.rpc_log: list[str] = []
        #: digits received by REST (``POST .../participants/{id}/digits``), in order.
        self.rest_digits: list[str] = []
        #: digits received as RFC 4733 telephone-events, in order.
        self.rfc4733_digits: list[str] = []
        #: the peer connection's ``connectionState`` changes, in order.
        self.connection_states: list[str] = []
        #: remote candidates refused because of their address.
        self.dropped_candidates: list[str] = []
        self.active_received = False
        self.remote_sdp: Optional[str] = None
        self.local_sdp: Optional[str] = None
        self._participants: list[dict[str, Any]] = self._make_participants()
        self._inbox: "asyncio.Queue[_Work]" = asyncio.Queue()
        self._worker: Optional["asyncio.Task[None]"] = None
        self._alert_timer: Optional[asyncio.TimerHandle] = None
        self._pc: Optional[RTCPeerConnection] = None
        self._tone: Optional["ToneSource"] = None
        self._sink: Optional["BufferSink"] = None
        self._pump: Optional["SinkPump"] = None
        self._media_connected = False
        self._accepted = False
        self._buffered: list[tuple[str, Optional[str]]] = []
        self._end_of_candidates = False
        self._eoc_timer: Optional[asyncio.TimerHandle] = None
        #: remote candidates that came after the client's end-of-candidates (applied all the same)
        self.candidates_after_end = 0
        #: ICE restarts this far end made (:meth:`restart_ice`)
        self.restarts = 0
        #: with ``Emulator(cheap_far_ends=True)``: what this far end received (it decodes nothing)
        self.packet_counter: Optional[Any] = None
        self._restart_pending = False
        self._tasks: set["asyncio.Future[Any]"] = set()

    def __repr__(self) -> str:
        return f"<EmulatedCall {self.direction} {self.conversation_id} {self._state}>"

    # -- public, thread-safe -------------------------------------------------

    @property
    def state(self) -> str:
        """Current state (one of :data:`CALL_STATES`)."""
        with self._state_obj.cond:
            return self._state

    @property
    def participants(self) -> list[dict[str, Any]]:
        """The conversation's participants, as the REST API shows them (a copy)."""
        with self._state_obj.cond:
            return copy.deepcopy(self._participants)

    def wait_state(self, state: str, timeout: float = 10) -> None:
        """Block until the call has entered ``state`` (now or earlier).

        :raises ValueError: for an unknown state name.
        :raises TimeoutError: naming the state the call is in instead.
        """
        if state not in CALL_STATES:
            raise ValueError(f"unknown call state {state!r}; one of {', '.join(CALL_STATES)}")
        self._gateway.check_not_loop("wait_state")
        self._state_obj.wait_until(
            lambda: state in self.states,
            timeout,
            lambda: f"call {self.conversation_id} did not reach {state!r} within {timeout}s "
            f"(state {self._state!r}, history {self.states})",
        )

    def hangup(self, reason: str = "success", timeout: float = 10) -> None:
        """The far end hangs up: Jingle ``session-terminate`` (or ``retract`` before session-initiate).

        :param reason: the Jingle reason condition (see :data:`JINGLE_REASONS`).
        :raises ValueError: for an unknown reason.
        """
        if reason not in JINGLE_REASONS:
            raise ValueError(f"unknown Jingle reason {reason!r}; one of {', '.join(sorted(JINGLE_REASONS))}")
        self._run(self._hangup, reason, timeout=timeout, what="hangup")

    def restart_ice(self, timeout: float = 10) -> None:
        """The far end restarts ICE on a live Jingle call (XEP-0176): a ``transport-info`` with new ICE
        credentials and DTLS fingerprint, then its new candidates. aiortc cannot restart ICE on a live
        connection, so the far end's media starts over on a new peer connection (new tone track, new
        :meth:`heard_frequency` buffer); the client's ``transport-info`` with its own new credentials
        completes it.

        :raises EmulatorError: in SDP-over-XMPP mode, with a libwebrtc far end, or before the call is accepted.
        """
        self._run(self._restart_ice, timeout=timeout, what="ICE restart")

    async def _restart_ice(self) -> None:
        if self.sdp_over_xmpp or self._gateway.remote_party is not None:
            raise EmulatorError("restart_ice() needs a Jingle call with the aiortc far end")
        if self._state not in ("accepted", "connected") or self._pc is None:
            raise EmulatorError(f"restart_ice() needs an accepted call, this one is {self._state}")
        pump, self._pump = self._pump, None
        if pump is not None:
            await pump.stop()
        if self._eoc_timer is not None:
            self._eoc_timer.cancel()
            self._eoc_timer = None
        old, self._pc = self._pc, None
        await old.close()
        self._media_connected = False
        self._end_of_candidates = False
        sdp = await self._start_media()
        self.local_sdp = sdp
        self._restart_pending = True
        self.restarts += 1
        sdp_mod = _sdp_helpers()
        stripped, candidates = sdp_mod.split_candidates(sdp)
        for content in sdp_mod.sdp_to_jingle(stripped, "initiator", include_candidates=False):
            transport = content.find(q("ice_udp", "transport"))
            if content.tag != q("jingle", "content") or transport is None:
                continue
            for child in [c for c in content if c is not transport]:
                content.remove(child)
            info = self._jingle("transport-info")
            info.append(content)
            self._spawn(self._gateway.send_iq(self, info))
        self._trickle(sdp, candidates)

    def retract(self, timeout: float = 10) -> None:
        """The caller hangs up before the call was answered: ``<retract/>`` to the user's resources.

        :raises EmulatorError: once session-initiate has been sent (use :meth:`hangup`).
        """
        self._run(self._retract_cmd, timeout=timeout, what="retract")

    def answer_from_other_client(self, timeout: float = 10) -> None:
        """Another device of the same user answers: its ``<accept/>`` fans out to the user's bare JID.

        The gateway stops waiting for ``proceed`` (state ``answered_elsewhere``).
        """
        self._run(self._answer_elsewhere, timeout=timeout, what="answer_from_other_client")

    def wait_for_audio(self, timeout: float = 10, min_seconds: float = 1.0) -> None:
        """Block until the far end has received at least ``min_seconds`` of audio.

        :raises TimeoutError: naming how much audio arrived.
        """
        self._gateway.check_not_loop("wait_for_audio")
        deadline = time.monotonic() + timeout
        heard = 0.0
        while True:
            heard = self.seconds_heard()
            if heard >= min_seconds:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"call {self.conversation_id}: far end heard {heard:.2f}s of audio, not {min_seconds}s, "
                    f"within {timeout}s (state {self.state!r})"
                )
            time.sleep(0.05)

    def seconds_heard(self) -> float:
        """Seconds of audio the far end has received so far (any thread)."""
        sink = self._sink
        return 0.0 if sink is None else float(sink.total_seconds)

    def send_dtmf(self, digits: str, duration: float = 0.1, gap: float = 0.07, *, method: str = "inband") -> float:
        """The far end presses ``digits``; returns the seconds they take.

        :param method: ``"inband"`` (tone pairs over its tone) or ``"rfc4733"`` (telephone-event packets;
            needs the client to have accepted telephone-event).
        """
        if method == "rfc4733":
            sender = getattr(self, "_te_sender", None)
            if sender is None:
                raise EmulatorError("telephone-event was not negotiated for this call")
            return float(sender.send(digits, duration, gap))
        track = getattr(self, "_dtmf_track", None)
        if track is None:
            raise EmulatorError("the call has no media yet")
        return float(track.send(digits, duration, gap))

    def _setup_rfc4733(self, answer: str) -> None:
        """When the client accepted telephone-event: send and receive RFC 4733 events (loop thread)."""
        from ..media.rfc4733 import TelephoneEventSender, attach_receiver, telephone_event_of

        negotiated = telephone_event_of(answer)
        if negotiated is None or not isinstance(self._pc, RTCPeerConnection):
            return  # the libwebrtc far end handles telephone-event itself
        sender = next((t.sender for t in self._pc.getTransceivers() if t.kind == "audio"), None)
        if sender is not None:
            te = TelephoneEventSender(sender, *negotiated)
            if te.install():
                self._te_sender = te
        attach_receiver(self._pc, negotiated[0], self.rfc4733_digits.append)

    def heard_dtmf(self, seconds: float = 30.0) -> str:
        """DTMF digits found (Goertzel) in the last ``seconds`` of what the far end heard."""
        from ..media.dtmf import detect_digits

        sink = self._sink
        if sink is None:
            return ""
        return detect_digits(sink.samples(last_seconds=seconds))

    def heard_samples(self, seconds: float = 1.0) -> "np.ndarray":
        """The last ``seconds`` of what the far end heard (int16, 48 kHz mono; empty before media)."""
        import numpy as np

        sink = self._sink
        return np.zeros(0, dtype=np.int16) if sink is None else sink.samples(last_seconds=seconds)

    def heard_frequency(self, seconds: float = 1.0) -> float:
        """Dominant frequency (Hz) of the last ``seconds`` of what the far end heard (0.0 if nothing)."""
        sink = self._sink
        return 0.0 if sink is None else float(sink.dominant_frequency(last_seconds=seconds))

    def set_tone(self, frequency: Optional[float] = None, amplitude: Optional[float] = None) -> None:
        """Change the far end's tone while the call runs (any thread; the next 20 ms frame uses it).

        Before media starts, ``frequency`` only changes :attr:`tone_hz` for the tone to come.
        """
        tone = self._tone
        if frequency is not None:
            self.tone_hz = float(frequency)
            if tone is not None:
                tone.frequency = float(frequency)
        if amplitude is not None and tone is not None:
            tone.amplitude = float(amplitude)

    def pause_media(self, paused: bool = True, timeout: float = 10) -> None:
        """Stop (or resume) the far end's RTP while the call stays up: a media outage for the SDK to notice.

        :raises EmulatorError: with the libwebrtc far end, or before media started.
        """
        def apply() -> None:
            pc = self._pc
            if pc is None or self._dtmf_track is None:
                raise EmulatorError(f"call {self.conversation_id} has no aiortc media to pause")
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    transceiver.sender.replaceTrack(None if paused else self._dtmf_track)

        self._gateway.call_on_loop(apply, timeout)

    # -- internals: plumbing -------------------------------------------------

    def _run(self, fn: Callable[..., Awaitable[Any]], *args: Any, timeout: float, what: str) -> Any:
        self._gateway.check_not_loop(what)
        done: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        try:
            self._gateway.loop.call_soon_threadsafe(self._inbox.put_nowait, (fn, args, done))
        except RuntimeError as exc:  # the loop is closed
            raise EmulatorError(f"{what}: the emulator is stopped") from exc
        try:
            return done.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            raise TimeoutError(f"{what} on call {self.conversation_id} did not finish within {timeout}s") from exc

    def enqueue(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Queue work for the call's worker (loop thread)."""
        self._inbox.put_nowait((fn, args, None))

    def start(self) -> None:
        """Start the call's worker (loop thread)."""
        self._worker = asyncio.ensure_future(self._work())

    def stop_worker(self) -> None:
        """Stop the call's worker once nothing more can happen to it (loop thread)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()

    async def _work(self) -> None:
        while True:
            fn, args, done = await self._inbox.get()
            try:
                result = await fn(*args)
            except asyncio.CancelledError:
                if done is not None and not done.done():
                    done.set_exception(EmulatorError("emulator stopped"))
                raise
            except Exception as exc:
                if done is not None:
                    done.set_exception(exc)
                else:
                    self._log.exception("call %s: error in %s", self.conversation_id, getattr(fn, "__name__", fn))
            else:
                if done is not None and not done.done():
                    done.set_result(result)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set_state(self, state: str) -> None:
        with self._state_obj.cond:
            self._state = state
            self.states.append(state)
            if state in ("accepted", "connected"):
                for p in self._participants:
                    if p["state"] != "disconnected":
                        p["state"] = "connected"
            elif state == "answered_elsewhere":
                self._agent()["state"] = "connected"
            elif state in _FINAL:
                end = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
                for p in self._participants:
                    if p["state"] != "disconnected":
                        p["state"] = "disconnected"
                        p["endTime"] = end
            self._state_obj.cond.notify_all()
        self._log.info("call %s (%s): %s", self.conversation_id, self.direction, state)
        self.publish_update()

    def publish_update(self) -> None:
        """Publish the conversation on ``v2.users.{id}.conversations`` to subscribed clients (loop thread)."""
        with self._state_obj.cond:
            body = {
                "id": self.conversation_id,
                "participants": [
                    {"id": p["id"], "purpose": p["purpose"], "state": p["state"], "muted": p["muted"],
                     "held": p["held"], "address": p.get("address"), "userId": (p.get("user") or {}).get("id")}
                    for p in self._participants
                ],
            }
        self._gateway.router.publish(self.user, f"v2.users.{self.user.id}.conversations", body)

    def _make_participants(self) -> list[dict[str, Any]]:
        start = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.created_at))
        remote = {
            "id": str(uuid.uuid4()),
            "purpose": "customer" if self.direction == "inbound" else "external",
            "state": "connected" if self.direction == "inbound" else "dialing",
            "direction": self.direction,
            "address": self.address,
            "name": "Emulated caller" if self.direction == "inbound" else self.address,
            "startTime": start,
            "muted": False,
            "held": False,
        }
        agent = {
            "id": str(uuid.uuid4()),
            "purpose": "agent" if self.direction == "inbound" else "user",
            "state": "alerting",
            "direction": self.direction,
            "address": f"sip:{self.user.local}@{self.user.domain}",
            "name": self.user.name,
            "user": {"id": self.user.id, "name": self.user.name, "selfUri": f"/api/v2/users/{self.user.id}"},
            "startTime": start,
            "muted": False,
            "held": False,
        }
        return [remote, agent]

    def _agent(self) -> dict[str, Any]:
        return self._participants[1]

    def participant(self, participant_id: str) -> Optional[dict[str, Any]]:
        """The live participant dict with ``participant_id`` (loop thread; mutate under the state lock)."""
        return next((p for p in self._participants if p["id"] == participant_id), None)

    def _jingle(self, action: str, **attrs: Any) -> Element:
        return element(q("jingle", "jingle"), {"action": action, "sid": self.session_id, **attrs})

    def _message(self, to: str, payload: Element) -> Element:
        msg = element(q("client", "message"), {"from": self.gateway_jid, "to": to})
        msg.append(payload)
        return msg

    # -- XEP-0353 ------------------------------------------------------------

    async def propose(self) -> None:
        """Send the propose to the user's bare JID (fan-out) and arm the alert timer."""
        attrs: dict[str, Any] = {
            "id": self.session_id,
            "inin-cid": self.conversation_id,
            "inin-autoanswer": "true" if self.auto_answer else "false",
            "inin-persistent-cid": self.persistent_cid,
        }
        if self.sdp_over_xmpp:
            attrs["inin-sdp-over-xmpp"] = "true"
        propose = element(q("jmi", "propose"), attrs)
        sub(propose, q("rtp", "description"), media="audio")
        self.proposed_to = [c.full_jid for c in self._gateway.router.bound(self.user) if c.full_jid]
        self._set_state("proposed")
        self._gateway.router.deliver(self._message(self.user.jid, propose))
        if self.alert_timeout is not None:
            self._alert_timer = self._gateway.loop.call_later(
                self.alert_timeout, lambda: self.enqueue(self._alert_expired)
            )

    async def _alert_expired(self) -> None:
        if self._state == "proposed":
            self._log.info("call %s: not answered within %ss; retracting", self.conversation_id, self.alert_timeout)
            self._send_retract()
            self.end_reason = "timeout"
            self._set_state("retracted")

    def _cancel_alert(self) -> None:
        if self._alert_timer is not None:
            self._alert_timer.cancel()
            self._alert_timer = None

    def _send_retract(self) -> None:
        self._cancel_alert()
        self._gateway.router.deliver(self._message(self.user.jid, element(q("jmi", "retract"), id=self.session_id)))

    async def _on_jmi(self, sender: str, name: str) -> None:
        if name == "proceed":
            if self._state != "proposed":
                self._log.info(
                    "call %s: %s from %s ignored in state %s", self.conversation_id, name, sender, self._state
                )
                return
            self._cancel_alert()
            self.client_jid = sender
            self._set_state("proceeding")
            await self._initiate()
        elif name == "reject":
            if self._state in ("proposed", "proceeding"):
                self._cancel_alert()
                self.end_reason = "decline"
                self.terminated_by_client = True
                self._set_state("ended")
        else:
            self._log.debug("call %s: %s from %s ignored", self.conversation_id, name, sender)

    async def _retract_cmd(self) -> None:
        if self._state in _FINAL:
            return
        if self._state not in ("proposed", "proceeding", "answered_elsewhere"):
            raise EmulatorError(f"cannot retract call {self.conversation_id} in state {self._state!r}; use hangup()")
        self._send_retract()
        self.end_reason = "retracted"
        self._set_state("retracted")

    async def _answer_elsewhere(self) -> None:
        if self._state != "proposed":
            raise EmulatorError(f"call {self.conversation_id} is {self._state!r}, not 'proposed'")
        self._cancel_alert()
        other = f"{self.user.jid}/other-device-1"
        msg = element(q("client", "message"), {"from": other, "to": self.user.jid})
        sub(msg, q("jmi", "accept"), id=self.session_id)
        self._gateway.router.deliver(msg)
        self._set_state("answered_elsewhere")

    async def _hangup(self, reason: str = "success") -> None:
        """Far-end hang-up from any state (loop thread, in the inbox)."""
        if self._state in _FINAL:
            return
        if self._state in ("new", "proposed", "proceeding"):
            self._send_retract()
            self.end_reason = reason
            self._set_state("retracted")
            return
        if self._state == "answered_elsewhere":
            self.end_reason = reason
            self._set_state("ended")
            return
        if self.sdp_over_xmpp:
            self._send_rpc("terminate", {"reason": reason})
        else:
            jingle = self._jingle("session-terminate")
            sub(sub(jingle, q("jingle", "reason")), q("jingle", reason))
            self._spawn(self._gateway.send_iq(self, jingle))
        self.end_reason = reason
        self._set_state("ended")
        await self._close_media()

    # -- Jingle as initiator ---------------------------------------------------

    async def _start_media(self) -> str:
        media = _media()
        if self._gateway.remote_party is not None:
            return await self._start_libwebrtc_media()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._pc = pc
        cheap = self._gateway.cheap_far_ends
        if cheap:
            from .cheap import PacketCounter, PreEncodedToneTrack

            pc.addTrack(PreEncodedToneTrack(self.tone_hz))
            self.packet_counter = PacketCounter()
        else:
            self._tone = media.ToneSource(frequency=self.tone_hz)
            from ..media.dtmf import DtmfOverlayTrack

            self._dtmf_track = DtmfOverlayTrack(self._tone.create_track())
            pc.addTrack(self._dtmf_track)
            self._sink = media.BufferSink()

        @pc.on("track")
        def on_track(track: Any) -> None:
            if cheap and track.kind == "audio" and self.packet_counter is not None:
                receiver = next((r for r in pc.getReceivers() if r.track is track), None)
                self.packet_counter.attach(receiver)
                return
            if track.kind == "audio" and self._pump is None and self._sink is not None:
                self._pump = media.SinkPump(track, self._sink)
                self._pump.start()

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            with self._state_obj.cond:
                self.connection_states.append(state)
            self._log.debug("call %s: peer connection %s", self.conversation_id, state)
            if state == "connected":
                self._media_connected = True
                self.enqueue(self._check_connected)
            elif state == "failed":
                self.enqueue(self._media_failed)

        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        # The gateway offers telephone-event beside the voice codecs (docs/protocol.rst §4.2); aiortc does not.
        from ..media.rfc4733 import offer_telephone_event

        sdp = offer_telephone_event(pc.localDescription.sdp)
        self.local_sdp = sdp
        return sdp

    async def _start_libwebrtc_media(self) -> str:
        """The far end on libwebrtc (a Node process) instead of aiortc; see :mod:`.libwebrtc_party`."""
        from .libwebrtc_party import LibwebrtcPeer

        def on_state(state: str) -> None:
            with self._state_obj.cond:
                self.connection_states.append(state)
            if state == "connected":
                self._media_connected = True
                self.enqueue(self._check_connected)
            elif state == "failed":
                self.enqueue(self._media_failed)

        self._sink = _media().BufferSink()
        peer = LibwebrtcPeer(self._gateway.remote_party, tone_hz=self.tone_hz, sink=self._sink,
                             on_state=on_state, logger=self._log)
        self._pc = peer  # type: ignore[assignment]  # duck-typed: the calls made on _pc below
        self.local_sdp = await peer.create_offer()
        return self.local_sdp

    async def _media_failed(self) -> None:
        if self._state in ("initiated", "accepted", "connected"):
            self._log.warning("call %s: media failed; terminating", self.conversation_id)
            await self._hangup("failed-transport")

    async def _check_connected(self) -> None:
        if self._state == "accepted" and self._media_connected and self.active_received:
            self._set_state("connected")

    async def _initiate(self) -> None:
        sdp_mod = _sdp_helpers()
        try:
            sdp = await self._start_media()
        except Exception:  # the far end cannot take the call: the caller gives up
            self._log.exception("call %s: could not create the offer", self.conversation_id)
            self._send_retract()
            self.end_reason = "media-error"
            self._set_state("retracted")
            await self._close_media()
            return
        if self._state != "proceeding":  # hung up meanwhile
            await self._close_media()
            return
        stripped, candidates = sdp_mod.split_candidates(sdp)
        if self.sdp_over_xmpp:
            self._send_rpc(
                "offer",
                {"conversationId": self.conversation_id, "sdp": stripped if self.trickle else sdp},
            )
            self._set_state("initiated")
            if self.trickle:
                # The service's form only (docs/protocol.rst §5): no end-of-candidates fragment, which has
                # no m= line and which a client that parses the m= line (the official one) cannot read.
                for mid, cand in candidates:
                    self._send_rpc("iceCandidate", {"sdp": f"m={mid} 9 RTP/AVP 0\r\na={cand}\r\n"})
            return
        jingle = self._jingle("session-initiate", initiator=self.gateway_jid)
        for child in sdp_mod.sdp_to_jingle(sdp, "initiator", include_candidates=not self.trickle):
            jingle.append(child)
        reply_future = self._gateway.send_iq(self, jingle)
        self._set_state("initiated")
        # Waiting here would block the inbox (and every hang-up) on a client
        # that never answers; the reply is awaited beside it instead.
        self._spawn(self._after_initiate(reply_future, sdp, candidates))

    async def _after_initiate(
        self, reply_future: "asyncio.Future[Element]", sdp: str, candidates: list[tuple[str, str]]
    ) -> None:
        try:
            reply: Optional[Element] = await asyncio.wait_for(reply_future, 10.0)
        except asyncio.TimeoutError:
            self._log.warning("call %s: no reply to session-initiate within 10 s", self.conversation_id)
            reply = None
        self.enqueue(self._initiate_answered, reply, sdp, candidates)

    async def _initiate_answered(self, reply: Optional[Element], sdp: str, candidates: list[tuple[str, str]]) -> None:
        if self._state not in ("initiated", "accepted", "connected"):
            return
        if reply is not None and reply.get("type") == "error":
            error = reply.find(q("client", "error"))
            condition = split(error[0].tag)[1] if error is not None and len(error) else "error"
            self._log.warning("call %s: client refused session-initiate (%s)", self.conversation_id, condition)
            self.end_reason = f"session-initiate-error:{condition}"
            self._set_state("ended")
            await self._close_media()
            return
        if self.trickle:
            self._trickle(sdp, candidates)

    def _trickle(self, sdp: str, candidates: list[tuple[str, str]]) -> None:
        """Our candidates, one ``transport-info`` each, then the end of candidates."""
        sdp_mod = _sdp_helpers()
        ufrags = ufrags_by_mid(sdp)
        for mid, cand in candidates:
            info = self._jingle("transport-info")
            info.append(sdp_mod.transport_info_content(mid, ufrags.get(mid, ""), cand, creator="initiator"))
            self._spawn(self._gateway.send_iq(self, info))
        mids = list(ufrags) or [mid for mid, _ in candidates]
        if mids:
            info = self._jingle("transport-info")
            info.append(
                sdp_mod.transport_info_content(
                    mids[0], ufrags.get(mids[0], ""), gathering_complete=True, creator="initiator"
                )
            )
            self._spawn(self._gateway.send_iq(self, info))

    async def _on_jingle(self, conn: XmppConnection, iq: Element, jingle: Element) -> None:
        action = jingle.get("action") or ""
        self.jingle_log.append(action)
        sdp_mod = _sdp_helpers()
        if self._state in _FINAL or self._state == "answered_elsewhere":
            if action == "session-terminate":
                conn.send(iq_result(iq))
            else:
                conn.send(iq_error(iq, "item-not-found", extra=element(q("jingle_errors", "unknown-session"))))
            return
        if action not in _JINGLE_ACTIONS:
            conn.send(iq_error(iq, "bad-request", error_type="modify", text=f"unknown Jingle action {action!r}"))
            return
        if action == "session-initiate":  # the gateway is always the initiator (§4)
            conn.send(iq_error(iq, "unexpected-request", extra=element(q("jingle_errors", "out-of-order"))))
            return
        if self._state in ("proposed", "proceeding") and action != "session-terminate":
            out_of_order = element(q("jingle_errors", "out-of-order"))
            conn.send(iq_error(iq, "unexpected-request", error_type="wait", extra=out_of_order))
            return
        if action == "session-accept":
            if self._accepted:
                conn.send(iq_error(iq, "unexpected-request", extra=element(q("jingle_errors", "out-of-order"))))
                return
            try:
                answer = sdp_mod.jingle_to_sdp(jingle, "responder")
            except Exception as exc:  # a bad answer is the client's error, reported on the wire
                self._log.warning("call %s: session-accept rejected: %s", self.conversation_id, exc)
                conn.send(iq_error(iq, "bad-request", error_type="modify", text=f"cannot apply answer: {exc}"))
                return
            await self._apply_answer(conn, iq, answer)
        elif action == "transport-info":
            try:
                entries = sdp_mod.parse_transport_info(jingle)
                creds = sdp_mod.transport_credentials(jingle)
            except Exception as exc:
                conn.send(iq_error(iq, "bad-request", error_type="modify", text=str(exc)))
                return
            conn.send(iq_result(iq))
            if creds is not None and self._restart_pending and self._pc is not None:
                # The client's half of our ICE restart: its new credentials (and fingerprint) complete the
                # new connection's description.
                answer = sdp_mod.with_credentials(self.remote_sdp or "", creds)
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                self.remote_sdp = answer
                self._restart_pending = False
                self._setup_rfc4733(answer)
            for mid, _ufrag, cand in entries:
                if self._accepted:
                    await self._add_candidate(mid, cand)
                else:
                    self._buffered.append((mid, cand))  # §10.6: may precede session-accept
        elif action == "session-info":
            conn.send(iq_result(iq))
            for child in jingle:
                name = split(child.tag)[1]
                self.session_info.append(name)
                if name == "active":
                    self.active_received = True
            await self._check_connected()
        elif action == "session-terminate":
            conn.send(iq_result(iq))
            reason = jingle.find(q("jingle", "reason"))
            condition = None
            if reason is not None:
                condition = next((split(c.tag)[1] for c in reason if split(c.tag)[1] != "text"), None)
            self.end_reason = condition or "success"
            self.terminated_by_client = True
            self._set_state("ended")
            await self._close_media()
        else:
            conn.send(iq_result(iq))

    async def _add_candidate(self, mid: str, cand: Optional[str]) -> None:
        if self._pc is None:
            return
        if cand is None:
            # aioice takes no candidate after end-of-candidates, and a client may send one (a late
            # interface): the end is passed on once no candidate has come for EOC_GRACE seconds.
            self._end_of_candidates = True
            self._schedule_end_of_candidates()
            return
        text = cand[len("a="):] if cand.startswith("a=") else cand
        text = text[len("candidate:"):] if text.startswith("candidate:") else text
        try:
            candidate = candidate_from_sdp(text)
        except (AssertionError, ValueError, IndexError) as exc:
            self._log.warning("call %s: bad candidate %r: %s", self.conversation_id, cand, exc)
            return
        if candidate.ip not in ALLOWED_MEDIA_ADDRESSES:
            self.dropped_candidates.append(cand)
            self._log.info(
                "call %s: candidate %s dropped (emulator talks to 127.0.0.1 only)", self.conversation_id, candidate.ip
            )
            return
        candidate.sdpMid = mid
        await self._pc.addIceCandidate(candidate)
        if self._end_of_candidates:
            self.candidates_after_end += 1
            self._schedule_end_of_candidates()

    EOC_GRACE = 1.0

    def _schedule_end_of_candidates(self) -> None:
        if self._eoc_timer is not None:
            self._eoc_timer.cancel()
        self._eoc_timer = asyncio.get_running_loop().call_later(
            self.EOC_GRACE, lambda: self.enqueue(self._pass_end_of_candidates))

    async def _pass_end_of_candidates(self) -> None:
        self._eoc_timer = None
        if self._pc is not None:
            await self._pc.addIceCandidate(None)

    # -- SDP over XMPP (§5) ------------------------------------------------------

    def _send_rpc(self, method: str, params: dict[str, Any]) -> None:
        body = {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": method,
                "params": {"sessionId": self.session_id, **params}}  # fmt: skip
        payload = element(q("genesys", "genesys-webrtc"), text=json.dumps(body))
        # §5: the client sends no result for these.
        self._gateway.send_iq(self, payload, expect_result=False)

    async def _apply_answer(self, conn: XmppConnection, iq: Element, answer: str) -> None:
        """The client's answer (Jingle session-accept or JSON-RPC answer): apply, acknowledge, then the
        candidates that came before it (loop thread)."""
        try:
            answer, dropped = filter_sdp_candidates(answer)
            self.dropped_candidates.extend(dropped)
            assert self._pc is not None
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except Exception as exc:  # a bad answer is the client's error, reported on the wire
            self._log.warning("call %s: answer rejected: %s", self.conversation_id, exc)
            conn.send(iq_error(iq, "bad-request", error_type="modify", text=f"cannot apply answer: {exc}"))
            return
        self.remote_sdp = answer
        self._accepted = True
        self._setup_rfc4733(answer)
        conn.send(iq_result(iq))
        self._set_state("accepted")
        buffered, self._buffered = self._buffered, []
        for mid, cand in buffered:
            await self._add_candidate(mid, cand)
        await self._check_connected()

    async def _on_rpc(self, conn: XmppConnection, iq: Element, method: str, params: dict[str, Any]) -> None:
        self.rpc_log.append(method)
        if self._state in _FINAL:
            conn.send(iq_error(iq, "item-not-found", text="session ended"))
            return
        if method == "answer":
            await self._apply_answer(conn, iq, str(params.get("sdp") or ""))
        elif method == "iceCandidate":
            conn.send(iq_result(iq))
            mid, cand = "", None
            for line in str(params.get("sdp", "")).splitlines():
                if line.startswith("m="):
                    mid = line[2:].split()[0]
                elif line.startswith("a=candidate:"):
                    cand = line[2:]
            if "a=end-of-candidates" in str(params.get("sdp", "")):
                entry: tuple[str, Optional[str]] = (mid, None)
            elif cand is not None:
                entry = (mid, cand)
            else:
                return
            if self._accepted:
                await self._add_candidate(*entry)
            else:
                self._buffered.append(entry)
        elif method == "info":
            conn.send(iq_result(iq))
            if params.get("status") == "active":
                self.session_info.append("active")
                self.active_received = True
                await self._check_connected()
        elif method == "terminate":
            conn.send(iq_result(iq))
            self.end_reason = str(params.get("reason") or "success")
            self.terminated_by_client = True
            self._set_state("ended")
            await self._close_media()
        else:
            conn.send(iq_result(iq))

    # -- teardown ------------------------------------------------------------------

    async def _close_media(self) -> None:
        if self._eoc_timer is not None:
            self._eoc_timer.cancel()
            self._eoc_timer = None
        pump, self._pump = self._pump, None
        if pump is not None:
            try:
                await pump.stop()
            except Exception:  # teardown goes on whatever one part says
                self._log.debug("call %s: sink pump stop failed", self.conversation_id, exc_info=True)
        pc, self._pc = self._pc, None
        if pc is not None:
            await pc.close()
        tone, self._tone = self._tone, None
        if tone is not None:
            tone.close()

    async def end_for_shutdown(self, timeout: float = 2.0) -> None:
        """Hang up with reason ``gone`` (retract if still ringing) through the inbox (emulator stop; loop thread)."""
        if self._state in _FINAL or self._worker is None or self._worker.done():
            return
        done: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        self._inbox.put_nowait((self._hangup, ("gone",), done))
        try:
            await asyncio.wait_for(asyncio.wrap_future(done), timeout)
        except (asyncio.TimeoutError, EmulatorError):
            self._log.warning("call %s: could not be hung up cleanly at stop", self.conversation_id)

    async def shutdown(self) -> None:
        """Stop everything of this call (emulator stop; loop thread)."""
        self._cancel_alert()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
        while not self._inbox.empty():
            _fn, _args, done = self._inbox.get_nowait()
            if done is not None and not done.done():
                done.set_exception(EmulatorError("emulator stopped"))
        for task in list(self._tasks):
            task.cancel()
        await self._close_media()
        if self._sink is not None:
            self._sink.close()  # stops taking frames; what was heard stays readable
