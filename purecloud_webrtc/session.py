"""The public session object handed to ``sessionStarted`` callbacks.

A :class:`Session` is a thin, thread-safe view of one call: its state attributes read one
frozen snapshot (``SessionView``) that the core loop replaces on every change, so they are
consistent with each other without relying on the GIL; its methods (``accept``, ``end``) block the
calling thread until the core has done the work.  Session events
(``terminated``, ``change:connectionState``, ``change:interrupted``,
``change:active``, ``endOfCandidates``) are delivered on the SDK's events
thread, like SDK events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from ._commands import DEFAULT_TIMEOUT, deadline as _deadline, grace as _grace
from .events import SESSION_EVENTS, Emitter

if TYPE_CHECKING:  # pragma: no cover
    from aiortc import RTCPeerConnection

    from .jingle.session import JingleSession
    from .media.live import AudioLevels, Recording
    from .media.sinks import AudioSink
    from .media.sources import AudioSource
    from .quality import CallStats
    from .sdk import PureCloudWebrtcSdk

__all__ = ["Session"]


class Session(Emitter):
    """One softphone call (a Jingle session) of a :class:`~purecloud_webrtc.PureCloudWebrtcSdk`.

    :ivar id: the session id (the ``pendingSession`` id, the Jingle sid).
    :ivar conversation_id: the Public API conversation id, when known.
    """

    _event_table = SESSION_EVENTS

    def __init__(self, sdk: "PureCloudWebrtcSdk", core_session: "JingleSession") -> None:
        self._sdk = sdk
        self._core_session = core_session
        self._init_emitter(sdk._dispatcher)

    # -- read-only state ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._core_session.sid

    sid = id

    @property
    def conversation_id(self) -> Optional[str]:
        return self._core_session.view.conversation_id

    conversationId = conversation_id  # noqa: N815 - the seed's spelling

    @property
    def peer(self) -> str:
        """Full JID of the remote Jingle party (the gateway)."""
        return self._core_session.peer

    @property
    def state(self) -> str:
        """``starting`` → ``pending`` (offer applied) → ``active`` (accepted) → ``ended``."""
        return self._core_session.view.state

    @property
    def connection_state(self) -> str:
        """``new``, ``connecting``, ``connected``, ``interrupted``, ``disconnected`` or ``failed``."""
        return self._core_session.view.connection_state

    connectionState = connection_state  # noqa: N815

    @property
    def interrupted(self) -> bool:
        return self._core_session.view.interrupted

    @property
    def active(self) -> bool:
        return self._core_session.view.state == "active"

    @property
    def ended(self) -> bool:
        return self._core_session.view.state == "ended"

    @property
    def end_reason(self) -> Optional[str]:
        """The XEP-0166 reason condition once the session ended."""
        return self._core_session.view.end_reason

    @property
    def source(self) -> Optional["AudioSource"]:
        """The :class:`~purecloud_webrtc.media.AudioSource` we send, if any."""
        return self._core_session.source

    @property
    def sink(self) -> Optional["AudioSink"]:
        """The :class:`~purecloud_webrtc.media.AudioSink` the remote audio is played into, if any."""
        return self._core_session.sink

    @property
    def peer_connection(self) -> Optional["RTCPeerConnection"]:
        """The aiortc ``RTCPeerConnection`` (advanced use: it belongs to the core thread)."""
        return self._core_session.pc

    @property
    def frames_received(self) -> int:
        """Remote audio frames delivered to the sink so far."""
        pump = self._core_session.pump
        return pump.frames if pump is not None else 0

    @property
    def local_sdp(self) -> Optional[str]:
        return self._core_session.view.local_sdp

    @property
    def remote_sdp(self) -> Optional[str]:
        return self._core_session.view.remote_sdp

    # -- commands -----------------------------------------------------------------------------

    def accept(self, source: Any = None, sink: Any = None, *, auto_start_media: bool = True,
               timeout: Optional[float] = None) -> None:
        """Answer the session (only needed with ``auto_connect_sessions=False``).

        :param source: what to send (see :func:`~purecloud_webrtc.media.resolve_source`); ``None`` uses the
            source given to ``accept_pending_session`` or the SDK's default.
        :param sink: where remote audio goes; ``None`` likewise.
        :param auto_start_media: with ``False`` and no source, answer receive-only.
        :raises SessionStateError: when the session is not waiting for an answer.
        """
        self._sdk._accept_session(self._core_session, source, sink, auto_start_media, timeout)

    def send_dtmf(self, digits: str, *, method: str = "auto", duration: float = 0.1, gap: float = 0.07,
                  timeout: Optional[float] = 15.0) -> str:
        """Send DTMF ``digits`` (``0-9``, ``*``, ``#``, ``A-D``); returns the method used.

        :param method: ``"rfc4733"`` sends telephone-events in the media (when the peer offered
            telephone-event); ``"inband"`` mixes the tone pairs into the audio we send (heard by any peer,
            any codec); ``"rest"`` asks the service to play them (``POST .../participants/{id}/digits``);
            ``"auto"``: RFC 4733 when negotiated, else REST when the session has a conversation id, else in-band.
        :param duration: seconds per digit.
        :param gap: seconds between digits.
        :raises ValueError: for a character that is not a DTMF digit.
        :raises SessionStateError: in-band while the session sends no audio.
        :raises ApiError: when the REST request fails.
        """
        return self._call(lambda c: c.send_dtmf(self._core_session, digits, method, duration, gap, _deadline(timeout)),
                          timeout, "send_dtmf")

    sendDtmf = send_dtmf  # noqa: N815

    def end(self, reason: str = "success", timeout: Optional[float] = None) -> None:
        """Hang up this session (same as ``sdk.end_session(id=session.id)``)."""
        self._sdk.end_session(id=self.id, timeout=timeout)

    def get_stats(self, timeout: Optional[float] = 5.0) -> "CallStats":
        """A :class:`~purecloud_webrtc.quality.CallStats` snapshot taken now: packets, loss, jitter, RTT, codec,
        concealment, jitter-buffer delay and the estimated MOS (any thread but the core's).

        After the call ended it returns the last snapshot, taken while media closed.
        """
        quality = self._core_session.quality
        if self._core_session.ended and quality.last is not None:
            return quality.last  # the final snapshot, also after close()
        return self._call(lambda c: c.get_stats(self._core_session), timeout, "session.get_stats")

    getStats = get_stats  # noqa: N815

    @property
    def remote_candidates(self) -> Dict[str, Any]:
        """Remote ICE candidates of this call: ``{"accepted": n, "dropped": m, "reasons": {reason: count}}``.

        Dropped are candidates the SDK never sends a packet to: multicast, broadcast, unspecified,
        link-local, reserved or host-name addresses, loopback when we do not gather on loopback,
        non-relay ones under the relay policy, and any beyond ``Limits.max_remote_candidates``.
        """
        return self._core_session.candidates.as_dict()

    @property
    def stats(self) -> Optional["CallStats"]:
        """The latest :class:`~purecloud_webrtc.quality.CallStats` (from the ``stats`` event or
        :meth:`get_stats`), or ``None``."""
        return self._core_session.quality.last

    # -- live audio (purecloud_webrtc/_commands.py does the work, on the core loop) ------------------

    def _call(self, make: Any, timeout: Optional[float], what: str) -> Any:
        core = self._sdk._core
        return core.call(lambda: make(core.commands), _grace(timeout or DEFAULT_TIMEOUT), what)

    def set_source(self, source: Any, *, close_previous: bool = True, timeout: Optional[float] = None) -> None:
        """Send ``source`` from now on, without renegotiation (any thread but the core's).

        :param source: as for ``accept_pending_session``: ``None`` (default microphone), a WAV path, an
            :class:`~purecloud_webrtc.media.AudioSource` (``MicrophoneSource("USB")``, ``WavFileSource(p,
            loop=False)``...), an aiortc track or a callable.
        :param close_previous: close the source sent so far (default); with ``False`` keep it open to switch
            back to it later (it is closed when the call ends).
        :raises SessionStateError: the session has ended, is not answered yet, or was answered receive-only.
        :raises AudioDeviceError: the device could not be opened (the call keeps its current source).
        """
        self._call(lambda c: c.set_source(self._core_session, source, close_previous, _deadline(timeout)), timeout,
                   "set_source")

    def set_sink(self, sink: Any, *, close_previous: bool = True, timeout: Optional[float] = None) -> None:
        """Play the remote audio into ``sink`` from now on, e.g. ``SpeakerSink("headset")`` (any thread).

        :param close_previous: close the previous sink (default), or keep it open until the call ends.
        :raises SessionStateError: the session has ended or is not answered yet.
        :raises AudioDeviceError: the device could not be opened (the call keeps its current sink).
        """
        self._call(lambda c: c.set_sink(self._core_session, sink, close_previous, _deadline(timeout)), timeout,
                   "set_sink")

    def set_audio_mute(self, muted: bool, *, rest: bool = True, timeout: Optional[float] = None) -> None:
        """Mute (send silence, no renegotiation) or unmute this call, then tell the service by REST.

        The local change is immediate and emits ``change:muted``; then, when the session has a
        conversation id, ``PATCH conversations/calls/{cid}/participants/{pid}`` ``{"muted": muted}``
        (skip it with ``rest=False``).

        :raises ApiError: the REST update failed; the local mute is in effect anyway.
        """
        self._call(lambda c: c.set_audio_mute(self._core_session, muted, rest, _deadline(timeout)), timeout,
                   "set_audio_mute")

    @property
    def muted(self) -> bool:
        """Whether this call is locally muted."""
        media = self._core_session.media
        return bool(media is not None and media.muted)

    @property
    def audio_levels(self) -> Optional["AudioLevels"]:
        """The latest :class:`~purecloud_webrtc.media.live.AudioLevels` (as in the last ``audioLevel`` event)."""
        media = self._core_session.media
        return None if media is None else media.levels

    @property
    def source_ended(self) -> bool:
        """Whether the current source has ended by itself (a WAV played once); silence is sent meanwhile."""
        media = self._core_session.media
        return bool(media is not None and media.source_ended)

    def start_recording(self, path: Any, *, timeout: Optional[float] = None, mode: int = 0o600) -> None:
        """Record this call to a 48 kHz stereo WAV: our audio (as sent, muted parts silent) left, the remote right.

        Both channels are aligned on the SDK's clock.  One recording at a time; it stops with
        :meth:`stop_recording` or when the call ends.  The file is created readable and writable by its
        owner only (``mode=0o600``, whatever the umask); pass another ``mode`` to share it.

        :raises UsageError: already recording.
        :raises OSError: the file cannot be created.
        """
        self._call(lambda c: c.start_recording(self._core_session, path, mode, _deadline(timeout)), timeout,
                   "start_recording")

    def stop_recording(self, timeout: Optional[float] = None) -> "Recording":
        """Stop recording and finish the file; returns a ``Recording(path, seconds)``.

        :raises UsageError: nothing was recorded.
        """
        core = self._sdk._core
        if not core.thread.is_alive():
            # The SDK was closed: the call ended and its recorder stopped; only the file's figures are left.
            return core.commands.finished_recording(self._core_session)
        return self._call(lambda c: c.stop_recording(self._core_session), timeout, "stop_recording")

    def __repr__(self) -> str:
        return (f"<Session {self.id} conversation={self.conversation_id} state={self.state} "
                f"connection={self.connection_state}>")
