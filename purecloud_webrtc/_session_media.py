"""A call's media: its aiortc peer connection and everything that carries audio (core loop only).

:class:`SessionMedia` owns the peer connection (built with an explicit ICE configuration: aiortc would
add a public STUN server otherwise, docs/protocol.rst §13.1), the live audio of the call
(:class:`~purecloud_webrtc.media.live.CallMedia`: source/sink swaps, mute, levels, recording), the in-band
DTMF track, the RFC 4733 sender and receiver, the receive pump with its DTMF detector, and the quality
path (our jitter buffer and the statistics).  Signalling (:class:`~purecloud_webrtc.jingle.session.
JingleSession`, Jingle or JSON-RPC) drives it: apply an offer, answer, add a remote candidate, close.
It reports ICE state changes and the remote track back to the session.
"""

from __future__ import annotations

import collections
import fractions
import functools
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

import av
import numpy as np

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

if TYPE_CHECKING:  # pragma: no cover
    from ._negotiation import AnswerPlan
    from .jingle.session import JingleSession
    from .media.live import CallMedia
    from .media.sinks import AudioSink, SinkPump
    from .media.sources import AudioSource

__all__ = ["SessionMedia", "only_sha256"]

log = logging.getLogger(__name__)


def only_sha256(sdp: str) -> str:
    """``sdp`` with only its sha-256 fingerprint: aiortc offers sha-256/384/512, browsers and the gateway one
    (docs/protocol.rst §9)."""
    lines = sdp.split("\r\n")
    if any(line.startswith("a=fingerprint:sha-256 ") for line in lines):
        lines = [line for line in lines if not line.startswith("a=fingerprint:") or line.startswith("a=fingerprint:sha-256 ")]
    return "\r\n".join(lines)


class _ConnectionTrack(MediaStreamTrack):
    """What one peer connection sends: the call's track, read through.

    aiortc's sender stops its track when the connection closes or its transport dies; this stops only
    here, so the call's own track (with its source, DTMF and mute) can go on in the next connection after
    an ICE restart (:meth:`SessionMedia.restart`).

    When Opus is negotiated (:meth:`encode_opus`) it also encodes, with libopus directly, and hands aiortc
    ready packets: aiortc then only packetizes them, where it would otherwise resample and encode every
    20 ms frame through PyAV on its default thread pool (a submit, a thread wake-up and a loop wake-up per
    frame: about a fifth of a call's CPU, docs/threading.rst).
    """

    kind = "audio"

    def __init__(self, track: MediaStreamTrack) -> None:
        super().__init__()
        self.track = track
        self._encoder: Any = None
        self._packets = _PacketCache()
        self._pending = np.zeros(0, dtype=np.int16)
        self._pts = 0

    def encode_opus(self, on: bool = True) -> bool:
        """Encode Opus here from now on (``on``), or hand aiortc PCM again; ``False`` without libopus."""
        from .media import _opus

        if not on or not _opus.available():
            encoder, self._encoder = self._encoder, None
            if encoder is not None:
                encoder.close()
            return False
        if self._encoder is None:
            self._encoder = _opus.Encoder(channels=1, bitrate=_OPUS_BITRATE)
            self._packets = _PacketCache()
        return True

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        encoder = self._encoder
        if encoder is None:
            return await self.track.recv()
        pcm = getattr(self.track, "pcm_rate", None) == 48000
        while self._pending.size < _OPUS_FRAME:
            if pcm:
                samples = await self.track.recv_pcm()
            else:
                frame = await self.track.recv()
                samples = frame.to_ndarray().reshape(-1)  # the call's track sends s16 mono 48 kHz
            self._pending = samples if not self._pending.size else np.concatenate((self._pending, samples))
        chunk, self._pending = self._pending[:_OPUS_FRAME], self._pending[_OPUS_FRAME:]
        packet = av.Packet(self._packets.encode(encoder, chunk))
        packet.pts = self._pts
        packet.time_base = _OPUS_TIME_BASE
        self._pts += _OPUS_FRAME
        return packet

    def stop(self) -> None:
        super().stop()
        self.encode_opus(False)


class _PacketCache:
    """Digital silence encoded once: the settled packet of a silent frame is sent again, not re-encoded.

    A call sends digital silence more often than one would think: muted, on hold, a bot between two
    prompts, a source that ended.  Once three frames in a row are silent and the encoder has made the very
    same packet for such a frame twice in a row, that packet is sent for every further silent frame without
    running the encoder.  When sound comes back, the encoder first encodes the two silent frames before it
    (output dropped) so that it goes on from what the far end heard.

    Only silence: replaying packets of other repeating audio (a tone) was tried and measured.  Even packets
    the encoder had made twice in a row decoded 10-15 dB further from the input than a fresh encoding, and
    the first version shifted a 740 Hz tone to 711 Hz: Opus carries state from frame to frame that a loop of
    packets does not reproduce.
    """

    def __init__(self) -> None:
        self._silent_run = 0
        self._packet: Optional[bytes] = None
        self._settled = False
        self._skipped = False
        self._silence = np.zeros(_OPUS_FRAME, dtype=np.int16)
        #: frames sent from the cache / encoded (the tests read them)
        self.hits = 0
        self.encoded = 0

    def encode(self, encoder: Any, samples: np.ndarray) -> bytes:
        silent = not samples.any()
        self._silent_run = self._silent_run + 1 if silent else 0
        if self._silent_run >= 3 and self._settled:
            self._skipped = True
            self.hits += 1
            assert self._packet is not None
            return self._packet
        if self._skipped:
            encoder.encode(self._silence)
            encoder.encode(self._silence)
            self._skipped = False
        packet: bytes = encoder.encode(samples)
        self.encoded += 1
        if self._silent_run >= 3:
            self._settled = packet == self._packet
            self._packet = packet
        else:
            self._settled, self._packet = False, None
        return packet


_OPUS_FRAME = 960  # 20 ms at 48 kHz
_OPUS_TIME_BASE = fractions.Fraction(1, 48000)
_OPUS_BITRATE = 32000  # libopus' VoIP sweet spot for one mono voice


class SessionMedia:
    """The media of one session.

    :param session: the signalling session that drives it.
    :param on_ice_state: called with aiortc's ICE connection state on every change.
    """

    def __init__(self, session: "JingleSession", on_ice_state: Callable[[str], None]) -> None:
        from ._session_quality import SessionQuality

        self.session = session
        self.core = session.core
        self._on_ice_state = on_ice_state
        self.pc: Optional[RTCPeerConnection] = None
        self.remote_track: Any = None
        self.source: Optional["AudioSource"] = None
        self.sink: Optional["AudioSink"] = None
        self.owns_source = True
        self.owns_sink = True
        self.pump: Optional["SinkPump"] = None
        #: live source/sink swaps, mute, levels, recording (once answered)
        self.live: Optional["CallMedia"] = None
        self.dtmf_track: Any = None
        #: RFC 4733 sender, when telephone-event was negotiated
        self.te_sender: Any = None
        #: our jitter buffer, get_stats(), the stats event
        self.quality = SessionQuality(session)
        #: what the current peer connection sends (see _ConnectionTrack)
        self.conn_track: Optional[_ConnectionTrack] = None
        #: the offer as aiortc was given it (only the section we take) and what we decided about it
        self.offer: Optional[str] = None
        self.plan: Optional["AnswerPlan"] = None

    def _configuration(self) -> RTCConfiguration:
        core = self.core
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                   for s in core.ice_servers]
        policy = RTCIceTransportPolicy.RELAY if core.ice_transport_policy == "relay" else RTCIceTransportPolicy.ALL
        # Always an explicit list: with None aiortc would add a public STUN server (docs/protocol.rst §13.1).
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

    # -- negotiation ---------------------------------------------------------------------------

    async def apply_offer(self, offer: str) -> None:
        """A new peer connection with the remote offer applied (its candidates screened before).

        :raises Exception: whatever aiortc raises for an offer it cannot use (the peer is closed then).
        """
        from ._negotiation import plan_offer

        # What we take of the offer (one audio section, our codec order) is decided before aiortc sees it.
        self.offer, self.plan = plan_offer(offer, self.core.options.codec_preferences)
        self.pc = RTCPeerConnection(self._configuration())
        self._wire(self.pc)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=self.offer, type="offer"))
        except BaseException:
            await self.pc.close()
            raise

    async def renegotiate(self, offer: str) -> str:
        """Apply a re-offer on the same peer connection; returns our new local SDP.

        :raises NegotiationError: when the re-offer has no usable audio, or moves it to another section.
        """
        from ._negotiation import NegotiationError, plan_offer, shape_answer
        from .media.rfc4733 import answer_telephone_event

        assert self.pc is not None and self.plan is not None
        prepared, plan = plan_offer(offer, self.core.options.codec_preferences)
        if (plan.index, plan.mid) != (self.plan.index, self.plan.mid):
            raise NegotiationError(f"the re-offer moves the call's audio from section {self.plan.mid!r} to "
                                   f"{plan.mid!r}; a new session is needed for that")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=prepared, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.offer, self.plan = prepared, plan
        self._choose_encoder()
        local = self.quality.munge_answer(only_sha256(self.pc.localDescription.sdp))
        return shape_answer(answer_telephone_event(local, prepared), plan)

    async def restart(self, offer: str) -> str:
        """Re-establish the call's media on a new peer connection for ``offer`` (the remote description after
        an ICE restart: aiortc 1.16 cannot restart ICE on a live connection). Everything of the call stays:
        the sending track with its source, DTMF and RFC 4733 sending, the sink with its pump, recording and
        levels, the DTLS certificate (so our fingerprint stays true). Returns our new local SDP.

        :raises NegotiationError: when the new offer has no usable audio, or moves it to another section.
        """
        from . import _internals
        from ._negotiation import NegotiationError, plan_offer, shape_answer

        assert self.pc is not None and self.plan is not None
        prepared, plan = plan_offer(offer, self.core.options.codec_preferences)
        if (plan.index, plan.mid) != (self.plan.index, self.plan.mid):
            raise NegotiationError(f"the restart moves the call's audio from section {self.plan.mid!r} to "
                                   f"{plan.mid!r}")
        old = self.pc
        pc = RTCPeerConnection(self._configuration())
        _internals.reuse_certificate(pc, old)
        # From here on the old connection's events are not the call's (see _wire): closing it is no hang-up.
        self.pc = pc
        self._wire(pc)
        pump, self.pump = self.pump, None
        if pump is not None:
            await pump.stop()
        if self.te_sender is not None:
            self.te_sender.uninstall()
            self.te_sender = None
        self.remote_track = None
        await old.close()  # stops its _ConnectionTrack only: the call's track goes on in `pc`
        await pc.setRemoteDescription(RTCSessionDescription(sdp=prepared, type="offer"))
        if self.dtmf_track is not None:
            self.conn_track = _ConnectionTrack(self.dtmf_track)
            pc.addTrack(self.conn_track)
        await pc.setLocalDescription(await pc.createAnswer())
        self.offer, self.plan = prepared, plan
        self._choose_encoder()
        local = self.quality.munge_answer(only_sha256(pc.localDescription.sdp))
        return shape_answer(self._setup_rfc4733(local, prepared), plan)

    async def answer(self, source: Optional["AudioSource"], sink: Optional["AudioSink"], owns_source: bool,
                     owns_sink: bool, remote_sdp: str) -> str:
        """Start our audio (``source``; ``None``: receive only) and playout into ``sink``; returns our answer.

        :raises Exception: what aiortc raises when it cannot answer.
        """
        from ._negotiation import shape_answer
        from .media.live import CallMedia

        assert self.pc is not None
        session = self.session
        self.source, self.sink = source, sink
        self.owns_source, self.owns_sink = owns_source, owns_sink
        self.live = CallMedia(lambda name, *args: session.public._emit(name, session.public, *args),
                              session.public._has_listeners, getattr(self.core.options, "mic_processing", None),
                              getattr(self.core.options, "voice_activity", None))
        session.answered.set()
        self.live.set_sink(sink)
        # One stable sending track whose inner source can be swapped live (no renegotiation).
        send_track = self.live.start(source)
        if source is not None:
            from .media.dtmf import DtmfOverlayTrack

            # In-band DTMF rides on top of whatever is sent (aiortc has no RFC 4733 sender).
            self.dtmf_track = DtmfOverlayTrack(send_track)
            # addTrack (not replaceTrack) makes the transceiver sendrecv (docs/protocol.rst §10.8).
            self.conn_track = _ConnectionTrack(self.dtmf_track)
            self.pc.addTrack(self.conn_track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._choose_encoder()
        local = self.quality.munge_answer(only_sha256(self.pc.localDescription.sdp))
        local = self._setup_rfc4733(local, self.offer or remote_sdp)
        return shape_answer(local, self.plan) if self.plan is not None else local

    def _choose_encoder(self) -> None:
        """Encode Opus ourselves when aiortc's sender will send Opus (its first negotiated codec)."""
        if self.conn_track is None or self.pc is None:
            return
        from . import _internals

        sender = next((t for t in self.pc.getTransceivers() if t.kind == "audio"), None)
        codecs = _internals.transceiver_codecs(sender) if sender is not None else []
        opus = bool(codecs) and codecs[0].mimeType.lower() == "audio/opus"
        self.conn_track.encode_opus(opus)

    def _setup_rfc4733(self, answer: str, remote_sdp: str) -> str:
        """Accept the offer's telephone-event in our answer and hook RFC 4733 send/receive (media.rfc4733)."""
        from .media.rfc4733 import TelephoneEventSender, answer_telephone_event, attach_receiver, telephone_event_of

        session = self.session
        answer = answer_telephone_event(answer, remote_sdp)
        negotiated = telephone_event_of(answer)
        if negotiated is None or self.pc is None:
            return answer
        sender = next((t.sender for t in self.pc.getTransceivers() if t.kind == "audio"), None)
        if sender is not None and sender.track is not None:
            te = TelephoneEventSender(sender, *negotiated)
            if te.install():
                self.te_sender = te
            else:
                self.core.trace("warning", f"session {session.sid}: RFC 4733 sending is not available with this "
                                "aiortc; DTMF is sent in-band", {"session_id": session.sid, "hook": "rfc4733_send"})
        if not attach_receiver(self.pc, negotiated[0], lambda d: session.public._emit("dtmf", session.public, d)):
            self.core.trace("warning", f"session {session.sid}: RFC 4733 receiving is not available with this "
                            "aiortc; only in-band DTMF is detected", {"session_id": session.sid,
                                                                       "hook": "rfc4733_receive"})
        return answer

    async def add_candidate(self, candidate: Optional[str], *, mid: Optional[str] = None) -> None:
        """Hand one remote candidate (already admitted by the trust filter) to ICE; ``None`` ends them.

        Without a mid the candidate belongs to the first (bundled) m-line.
        """
        if self.pc is None:
            return
        if candidate is None:
            await self.pc.addIceCandidate(None)
            return
        text = candidate[len("candidate:"):] if candidate.startswith("candidate:") else candidate
        ice = candidate_from_sdp(text)
        if mid is None:
            ice.sdpMLineIndex = 0
        else:
            ice.sdpMid = mid
        await self.pc.addIceCandidate(ice)

    def activity(self) -> int:
        """A counter that moves while remote media arrives: packets into our jitter buffer, or (with aiortc's
        own receive path, which only yields frames when packets come) the frames played."""
        packets = getattr(self.remote_track, "packets", None)
        if isinstance(packets, int):
            return packets
        return self.pump.frames if self.pump is not None else 0

    # -- playout -------------------------------------------------------------------------------

    def start_pump(self) -> None:
        """Play the remote track into the sink (through the DTMF detector) once both exist."""
        from .media.dtmf import DtmfDetectorSink
        from .media.sinks import SinkPump

        session = self.session
        if self.pump is None and self.sink is not None and self.remote_track is not None:
            target = self.live.router if self.live is not None else self.sink
            public = session.public
            # In-band detection is per-frame work: only while someone listens (RFC 4733 events cost nothing).
            detector = DtmfDetectorSink(lambda digit: public._emit("dtmf", public, digit), target,
                                        wanted=lambda: public._has_listeners("dtmf"))
            self.pump = SinkPump(self.remote_track, detector)
            self.pump.start()

    def _wire(self, pc: RTCPeerConnection) -> None:
        session = self.session

        @pc.on("track")
        def on_track(track: Any) -> None:
            if pc is not self.pc:
                return
            if track.kind == "audio" and self.remote_track is None:
                self.remote_track = self.quality.wrap_track(pc, track)
                if session.state == "active":
                    self.start_pump()

        @pc.on("iceconnectionstatechange")
        def on_ice_state() -> None:
            if pc is self.pc:  # a connection replaced by restart() says nothing about the call
                self._on_ice_state(pc.iceConnectionState)

        @pc.on("connectionstatechange")
        def on_connection_state() -> None:
            # DTLS closed by the far end (its hang-up that never reached us) or failed: the media is gone
            # even while ICE still looks connected.
            if pc is self.pc and pc.connectionState in ("closed", "failed"):
                self._on_ice_state(pc.connectionState)

    # -- end -----------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the pump, close the peer connection, release what the session owns (closed off the loop)."""
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
        if self.dtmf_track is not None:
            self.dtmf_track.stop()  # the call's sending chain (DTMF overlay, live track, source's track)
        closers = []
        if self.live is not None:
            recorder = await self.live.close()
            if recorder is not None:
                closers.append(recorder.close)
            closers.extend(functools.partial(self.core.close_owned, s) for s in self.live.retired_sources)
            closers.extend(functools.partial(self.core.close_owned, s) for s in self.live.retired_sinks)
        if self.source is not None and self.owns_source:
            closers.append(functools.partial(self.core.close_owned, self.source))
        if self.sink is not None and self.owns_sink:
            closers.append(functools.partial(self.core.close_owned, self.sink))
        for close in closers:
            try:
                await self.core.run_blocking(close)
            except Exception:
                log.warning("closing media of session %s failed", self.session.sid, exc_info=True)
