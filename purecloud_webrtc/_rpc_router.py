"""SDP over XMPP (docs/protocol.rst §5): the JSON-RPC offer/iceCandidate/terminate router and what it must remember.

A part of :class:`~purecloud_webrtc._core.Core` (a mixin): the state it uses lives on the core,
which owns all protocol state on its one loop thread; every method runs on that thread.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, List, Optional

from ._xml import Element
from .errors import SignalingError
from .jingle.messages import unknown_session_error
from .jingle.rpc import ice_credentials
from .jingle.session import JingleSession, SessionState

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core  # noqa: F401
    from ._pending import _Pending
    from .sdk import PureCloudWebrtcSdk  # noqa: F401


__all__ = ["RpcRouter"]

#: Seconds a session id is remembered as negotiating with JSON-RPC once it has no pending entry or session.
SDP_MODE_TTL = 600.0


class RpcRouter:
    """SDP over XMPP (docs/protocol.rst §5): the JSON-RPC offer/iceCandidate/terminate router and what it must remember (mixed into ``Core``)."""

    def _rpc_peer(self, sid: str) -> Optional[str]:
        """The only JID that may send JSON-RPC about ``sid``: its session's peer, or the peer we proceeded to."""
        session = self.sessions.get(sid)
        if session is not None and not session.ended:
            return session.peer
        entry = self._find_pending(sid)
        if entry is not None and entry.proceeded:
            return entry.info.from_jid
        return None

    def _remember_sdp_mode(self, sid: str) -> None:
        now = time.monotonic()
        self.sdp_mode_sids[sid] = now
        if len(self.sdp_mode_sids) <= self.limits.max_sdp_mode_sessions:
            return
        live = set(self.sessions) | set(self.pending)
        for old in sorted(self.sdp_mode_sids, key=self.sdp_mode_sids.__getitem__):
            if len(self.sdp_mode_sids) <= self.limits.max_sdp_mode_sessions:
                break
            if old not in live or now - self.sdp_mode_sids[old] > SDP_MODE_TTL:
                del self.sdp_mode_sids[old]

    def _remember_offer(self, rpc_id: str, now: float) -> bool:
        """``False`` when this JSON-RPC offer id was seen within ``duplicate_offer_ttl`` (a repeated reinvite)."""
        ttl = self.limits.duplicate_offer_ttl
        for key in [k for k, t in self._seen_offers.items() if now - t >= ttl]:
            del self._seen_offers[key]
        if rpc_id in self._seen_offers:
            return False
        self._seen_offers[rpc_id] = now
        while len(self._seen_offers) > self.limits.max_remembered_offers:
            del self._seen_offers[next(iter(self._seen_offers))]  # the oldest (dicts keep insertion order)
        return True

    def _on_rpc(self, iq: Element, message: Any) -> None:
        sid = message.session_id
        params = message.params
        session = self.sessions.get(sid)
        now = time.monotonic()
        frm = iq.get("from") or ""
        expected = self._rpc_peer(sid)
        if expected is None or frm != expected:
            # Offers, candidates and terminates only from the peer of a session we proceeded; a stranger
            # could otherwise end a live call, replace it, or make us hold sockets for sessions nobody asked for.
            self.send(unknown_session_error(iq))
            self._refused(f"refused JSON-RPC {message.method} for {sid} from {frm!r}: "
                          + ("no proceed was sent for it" if expected is None else "not the session's peer"), frm, sid)
            return
        if message.method == "offer":
            sdp = params.get("sdp")
            if not isinstance(sdp, str) or not sdp:
                self.report_error(SignalingError(f"JSON-RPC offer for {sid} without sdp"), {"session_id": sid})
                return
            if message.id is not None and not self._remember_offer(message.id, now):
                return  # the gateway repeats a reinvite until answered: once is enough (§5, §8 #23)
            self._remember_sdp_mode(sid)
            conversation_id = params.get("conversationId") or None
            if session is not None and not session.ended:
                same_ice = ice_credentials(sdp) == ice_credentials(session.remote_sdp or "")
                if same_ice and not params.get("reinvite"):
                    if conversation_id:
                        session.conversation_id = conversation_id
                    self.loop.create_task(session.on_rpc_renegotiate(sdp))
                    return
                # New ICE credentials or reinvite: a brand-new session replaces this one.
                self.sessions.pop(sid, None)
                self.loop.create_task(session.finish("alternative-session", send=False))
            entry = self._find_pending(sid)
            if session is None and self._live_sessions() >= self.limits.max_sessions:
                self.report_error(SignalingError(
                    f"offer for {sid} refused: {self._live_sessions()} calls are live (Limits.max_sessions)"),
                    {"session_id": sid})
                return
            if entry is not None:
                self._drop_pending(entry, handed=True)
            if conversation_id is None and entry is not None:
                conversation_id = entry.info.conversation_id
            if conversation_id is None and session is not None:
                conversation_id = session.conversation_id
            new = JingleSession(self, sid, frm, conversation_id)
            new.mode = "rpc"
            self.sessions[sid] = new
            self.loop.create_task(self._initiate_rpc(new, sdp, entry))
        elif message.method == "iceCandidate":
            fragment = str(params.get("sdp") or "")
            if session is None or session.state == SessionState.STARTING:
                # Before the offer, or while it is being applied: kept in order and handed to the session
                # when the offer is in (STREAM-207, §5).
                early = self._early_candidates.setdefault(sid, [])
                if len(early) >= self.limits.max_early_candidates:
                    if len(early) == self.limits.max_early_candidates:
                        early.append((now, ""))  # a marker: reported once
                        self.report_error(SignalingError(
                            f"session {sid}: more than {self.limits.max_early_candidates} candidates before its "
                            "offer; the rest are ignored (Limits.max_early_candidates)"), {"session_id": sid})
                    return
                early.append((now, fragment))
                live = sorted(self._early_candidates, key=lambda k: self._early_candidates[k][-1][0])
                for old in live[:-self.limits.max_early_candidate_sessions]:
                    del self._early_candidates[old]
                return
            self.loop.create_task(session.on_rpc_candidate(fragment))
        elif message.method == "terminate":
            if session is not None:
                self.loop.create_task(session.finish(str(params.get("reason") or "success"), send=False))
            else:
                entry = self._find_pending(sid)
                if entry is not None:  # the caller hung up before the offer: stop ringing
                    self._drop_pending(entry)
                    self.sdk._emit("cancelPendingSession", entry.info.id)
        else:
            self.trace("debug", f"JSON-RPC {message.method} for {sid} ignored", {"session_id": sid})

    async def _initiate_rpc(self, session: JingleSession, sdp: str, entry: Optional[_Pending]) -> None:
        def take_early() -> List[str]:
            now = time.monotonic()
            return [fragment for at, fragment in self._early_candidates.pop(session.sid, [])
                    if fragment and now - at <= self.limits.early_candidate_ttl]

        if not await self._start_session(session, session.on_rpc_offer(sdp, take_early), "offer", entry):
            self._early_candidates.pop(session.sid, None)
