"""The public session object handed to ``sessionStarted`` callbacks.

A :class:`Session` is a thin, thread-safe view of one call: its attributes are
snapshots written by the core loop; its methods (``accept``, ``end``) block the
calling thread until the core has done the work.  Session events
(``terminated``, ``change:connectionState``, ``change:interrupted``,
``change:active``, ``endOfCandidates``) are delivered on the SDK's events
thread, like SDK events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .events import SESSION_EVENTS, Emitter

if TYPE_CHECKING:  # pragma: no cover
    from .jingle.session import JingleSession
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
        return self._core_session.conversation_id

    conversationId = conversation_id  # noqa: N815 - the seed's spelling

    @property
    def peer(self) -> str:
        """Full JID of the remote Jingle party (the gateway)."""
        return self._core_session.peer

    @property
    def state(self) -> str:
        """``starting`` → ``pending`` (offer applied) → ``active`` (accepted) → ``ended``."""
        return self._core_session.state

    @property
    def connection_state(self) -> str:
        """``new``, ``connecting``, ``connected``, ``interrupted``, ``disconnected`` or ``failed``."""
        return self._core_session.connection_state

    connectionState = connection_state  # noqa: N815

    @property
    def interrupted(self) -> bool:
        return self._core_session.interrupted

    @property
    def active(self) -> bool:
        return self._core_session.state == "active"

    @property
    def ended(self) -> bool:
        return self._core_session.ended

    @property
    def end_reason(self) -> Optional[str]:
        """The XEP-0166 reason condition once the session ended."""
        return self._core_session.end_reason

    @property
    def source(self) -> Any:
        """The :class:`~purecloud_webrtc.media.AudioSource` we send, if any."""
        return self._core_session.source

    @property
    def sink(self) -> Any:
        """The :class:`~purecloud_webrtc.media.AudioSink` the remote audio is played into, if any."""
        return self._core_session.sink

    @property
    def peer_connection(self) -> Any:
        """The aiortc ``RTCPeerConnection`` (advanced use: it belongs to the core thread)."""
        return self._core_session.pc

    @property
    def frames_received(self) -> int:
        """Remote audio frames delivered to the sink so far."""
        pump = self._core_session.pump
        return pump.frames if pump is not None else 0

    @property
    def local_sdp(self) -> Optional[str]:
        return self._core_session.local_sdp

    @property
    def remote_sdp(self) -> Optional[str]:
        return self._core_session.remote_sdp

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

    def end(self, reason: str = "success", timeout: Optional[float] = None) -> None:
        """Hang up this session (same as ``sdk.end_session(id=session.id)``)."""
        self._sdk.end_session(id=self.id, timeout=timeout)

    def __repr__(self) -> str:
        return (f"<Session {self.id} conversation={self.conversation_id} state={self.state} "
                f"connection={self.connection_state}>")
