"""The IQ router: Jingle actions to their session (or the protocol's answer), connection transfers, JSON-RPC to the RPC router.

A part of :class:`~purecloud_webrtc._core.Core` (a mixin): the state it uses lives on the core,
which owns all protocol state on its one loop thread; every method runs on that thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from . import _xml as X
from ._xml import NS, Element, element, q
from .errors import SignalingError
from .jingle.messages import unknown_session_error
from .jingle.rpc import parse_rpc
from .jingle.session import JingleSession
from .xmpp.stream import error_reply, result_reply

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core  # noqa: F401
    from ._pending import _Pending
    from .sdk import PureCloudWebrtcSdk  # noqa: F401


__all__ = ["JingleRouter"]


class JingleRouter:
    """The IQ router: Jingle actions to their session (or the protocol's answer), connection transfers, JSON-RPC to the RPC router (mixed into ``Core``)."""

    def _on_iq(self, el: Element) -> bool:
        rpc = el.find(q("genesys", "genesys-webrtc"))
        if rpc is not None:
            # §5: the client never answers these IQs; bad ones are reported, not answered.
            if el.get("type") == "set":
                try:
                    message = parse_rpc(rpc)
                except ValueError as exc:
                    self.report_error(SignalingError(str(exc)), {"stanza": X.to_string(el)[:500]})
                    return True
                self._on_rpc(el, message)
            return True
        jingle = el.find(q("jingle", "jingle"))
        if jingle is None:
            if el.get("type") == "set" and el.find(q("cxfr", "query")) is not None:
                # Connection transfer (XEP-0051 as Hawk uses it for socket_closing): SC answers nothing
                # and reconnects at once (docs/protocol.rst §2.6).
                self.force_reconnect("connection transfer requested by the server")
                return True
            return False
        if el.get("type") != "set":
            self.send(error_reply(el, "bad-request", "modify", text="Jingle is carried by IQ set"))
            return True
        action = jingle.get("action") or ""
        sid = jingle.get("sid") or ""
        if not action or not sid:
            self.send(error_reply(el, "bad-request", "modify", text="jingle without action or sid"))
            return True
        session = self.sessions.get(sid)
        frm = el.get("from") or ""
        if action == "session-initiate":
            entry = self._find_pending(sid)
            if session is not None and not session.ended:
                expected = session.peer
            elif entry is not None and entry.proceeded:
                expected = entry.info.from_jid
            else:
                expected = None
            if expected is None or frm != expected:
                # Only the full JID we proceeded to may start the session we proceeded: a session-initiate
                # from anybody else, or without our proceed, would otherwise be answered with the microphone.
                self.send(unknown_session_error(el))
                self._refused(f"refused a session-initiate for {sid} from {frm!r}: "
                              + ("no proceed was sent for it" if expected is None else "not the proceeded peer"),
                              frm, sid)
                return True
            if sid in self.sdp_mode_sids:
                # This call negotiates with JSON-RPC: the Jingle twin is ignored (SC 19.2.2, §4.1).
                self.send(result_reply(el))
                self.trace("debug", f"ignored Jingle session-initiate for SDP-over-XMPP session {sid}")
                return True
            if session is not None:
                self.send(error_reply(el, "unexpected-request", "wait",
                                      app=element(q("jingle_errors", "out-of-order"))))
                return True
            if self._live_sessions() >= self.limits.max_sessions:
                self.send(error_reply(el, "resource-constraint", "wait", text="too many live calls"))
                self.report_error(SignalingError(
                    f"session {sid} refused: {self._live_sessions()} calls are live (Limits.max_sessions)"),
                    {"session_id": sid})
                return True
            assert entry is not None
            self._drop_pending(entry, handed=True)
            session = JingleSession(self, sid, frm, entry.info.conversation_id)
            self.sessions[sid] = session
            self.loop.create_task(self._initiate(session, el, jingle, entry))
            return True
        if session is None or frm != session.peer or session.ended:
            if action == "session-terminate" and (session is None or session.ended):
                self.send(result_reply(el))  # stanza 12: terminate for an unknown sid is acknowledged
            else:
                # A live session's stanzas come from its peer only: anybody else could end or steer it.
                self.send(unknown_session_error(el))
                if session is not None:
                    self._refused(f"refused Jingle {action} for {sid} from {frm!r}, not the session's peer",
                                  frm, sid)
            return True
        if action == "transport-info":
            self.send(result_reply(el))
            self.loop.create_task(session.on_transport_info(jingle))
        elif action == "session-terminate":
            self.send(result_reply(el))
            self.loop.create_task(session.on_terminate(jingle))
        elif action == "session-info":
            payload = list(jingle)
            known = {"active", "hold", "unhold", "mute", "unmute", "ringing"}
            if not payload or all(X.split(p.tag) in [(NS["rtp_info"], k) for k in known] for p in payload):
                self.send(result_reply(el))
            else:
                self.send(error_reply(el, "feature-not-implemented", "modify",
                                      app=element(q("jingle_errors", "unsupported-info"))))
        elif action == "session-accept":
            self.send(error_reply(el, "unexpected-request", "wait", app=element(q("jingle_errors", "out-of-order"))))
        else:
            self.send(error_reply(el, "feature-not-implemented", "cancel",
                                  text=f"Jingle action {action} is not supported"))
        return True

    async def _initiate(self, session: JingleSession, iq: Element, jingle: Element, entry: Optional[_Pending]) -> None:
        await self._start_session(session, session.on_initiate(iq, jingle), "session-initiate", entry)
