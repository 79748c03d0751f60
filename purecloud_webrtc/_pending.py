"""XEP-0353 pending sessions: propose, proceed, accept, reject, retract, and the start of a session once its offer is in.

A part of :class:`~purecloud_webrtc._core.Core` (a mixin): the state it uses lives on the core,
which owns all protocol state on its one loop thread; every method runs on that thread.
"""

from __future__ import annotations

import asyncio
import time

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, List, Optional

from . import _xml as X
from ._trust import classify_peer
from ._xml import Element
from .errors import (
    ConnectionFailedError,
    SessionNotFoundError,
    SessionStateError,
    SignalingError,
)
from .events import PendingSession
from .jingle.messages import build_jmi, parse_jmi
from .jingle.session import JingleSession
from .xmpp.stream import Jid

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core  # noqa: F401
    from .sdk import PureCloudWebrtcSdk  # noqa: F401


__all__ = ["PendingSessions", "AcceptOptions"]


@dataclass
class AcceptOptions:
    """What ``accept_pending_session`` asked for, applied when the session-initiate arrives.

    Once ``resolved``, ``source`` and ``sink`` are media objects opened before the proceed went out, and
    ``owns_*`` says whether the call closes them when it ends (everything the SDK made from a spec, and
    objects handed to the call; never the SDK's shared defaults).  ``consumed`` once a session answered with
    them; until then whoever drops the options releases what they own (``Core.release_accept_media``).
    """

    source: Any = None
    sink: Any = None
    auto_start_media: bool = True
    auto_connect_session: Optional[bool] = None
    resolved: bool = False
    owns_source: bool = False
    owns_sink: bool = False
    handed: bool = False
    consumed: bool = False


@dataclass
class _Pending:
    info: PendingSession
    proceeded: bool = False
    options: AcceptOptions = field(default_factory=AcceptOptions)
    aliases: List[str] = field(default_factory=list)
    #: ``time.monotonic()`` after which the proposal is withdrawn locally (its retract may have been lost)
    expires: float = 0.0


class PendingSessions:
    """XEP-0353 pending sessions: propose, proceed, accept, reject, retract, and the start of a session once its offer is in (mixed into ``Core``)."""

    def _find_pending(self, sid: str) -> Optional[_Pending]:
        return self.pending.get(sid)

    def _drop_pending(self, entry: _Pending, *, handed: bool = False) -> None:
        """Forget ``entry``; ``handed``: a session takes over its accept options (else they are released
        unless a re-proposal adopted them)."""
        for key in [entry.info.id, *entry.aliases]:
            self.pending.pop(key, None)
        if handed:
            entry.options.handed = True
        elif entry.options.resolved:
            self.loop.call_soon(self._release_if_unused, entry.options)

    def _release_if_unused(self, options: AcceptOptions) -> None:
        if not options.handed and not any(e.options is options for e in self.pending.values()):
            self.release_accept_media(options)

    def release_all_pending(self) -> None:
        """Forget every pending session (close, disconnect without survivability), releasing their media."""
        entries = {id(e): e for e in self.pending.values()}.values()
        self.pending.clear()
        for entry in entries:
            if entry.options.resolved and not entry.options.handed:
                self.release_accept_media(entry.options)

    def _on_message(self, el: Element) -> None:
        try:
            jmi = parse_jmi(el)
        except ValueError as exc:
            self.report_error(SignalingError(str(exc)), {"stanza": X.to_string(el)[:500]})
            return
        if jmi is None:
            self._on_pubsub(el)
            return
        own = self.full_jid
        frm = jmi.from_jid
        if frm and frm == own:
            return  # our own bare-JID fan-out echo (docs/protocol.rst §3.3)
        if jmi.action == "propose":
            self._on_propose(jmi)
            return
        entry = self._find_pending(jmi.id)
        if entry is None:
            return
        if jmi.action == "retract":
            # Only the proposer can withdraw its proposal: anybody else could stop a call ringing.
            if frm != entry.info.from_jid:
                self._refused(f"ignored a retract of {jmi.id} from {frm!r}, not its proposer", frm, jmi.id)
                return
            self._drop_pending(entry)
            self.trace("info", f"pending session {entry.info.id} retracted", {"id": entry.info.id})
            self.sdk._emit("cancelPendingSession", entry.info.id)
        elif jmi.action in ("accept", "reject") and jmi.id not in self.sessions:
            # Another device of this user took or declined the call (its bare-JID fan-out); a reject may
            # also come from the proposer itself (docs/protocol.rst §3.3, §3.4).  Nobody else may stop it ringing.
            if not (self._from_own_account(frm) or (jmi.action == "reject" and frm == entry.info.from_jid)):
                self._refused(f"ignored an {jmi.action} of {jmi.id} from {frm!r}, not one of this user's clients",
                              frm, jmi.id)
                return
            self._drop_pending(entry)
            self.trace("info", f"pending session {entry.info.id} {jmi.action}ed by another client",
                       {"id": entry.info.id, "from": frm})
            self.sdk._emit("handledPendingSession", entry.info.id)

    def _from_own_account(self, jid: str) -> bool:
        if not jid or self.jid is None:
            return False
        try:
            return Jid.parse(jid).bare == self.jid
        except ValueError:
            return False

    def _refused(self, message: str, frm: str, sid: str) -> None:
        """A stanza from someone not allowed to send it: changes nothing, leaves a ``trace`` event."""
        self.trace("warning", message, {"from": frm, "id": sid, "refused": True})

    def _on_propose(self, jmi: Any) -> None:
        from_jid = jmi.from_jid
        own_domain = self.jid.domain if self.jid is not None else None
        if not self.trusted.allows(from_jid, own_domain):
            # Only the service's gateway rings this softphone: a colleague (or a screen-share, monitor or
            # conference JID) is never offered as a call, never proceeded, never auto-answered.
            kind = classify_peer(from_jid)
            self._refused(f"ignored a proposal {jmi.id} from {from_jid!r} ({kind}): not a trusted softphone peer",
                          from_jid, jmi.id)
            return
        existing = self._find_pending(jmi.id)
        if existing is not None:
            # Same id again (docs/protocol.rst §3.1): answer it again if we already did, stay silent.
            if from_jid == existing.info.from_jid:
                existing.expires = time.monotonic() + self.options.pending_timeout  # still ringing
                if existing.proceeded:
                    self.send(build_jmi("proceed", jmi.id, existing.info.from_jid))
            return
        if jmi.id in self.sessions:
            return
        pending_count = len({id(e) for e in self.pending.values()})
        if pending_count >= self.limits.max_pending_sessions:
            self.report_error(SignalingError(
                f"proposal {jmi.id} ignored: {pending_count} sessions are already pending "
                f"(Limits.max_pending_sessions)"), {"id": jmi.id, "from": from_jid})
            return
        if self._live_sessions() >= self.limits.max_sessions:
            self.report_error(SignalingError(
                f"proposal {jmi.id} ignored: {self._live_sessions()} calls are live (Limits.max_sessions)"),
                {"id": jmi.id, "from": from_jid})
            return
        try:
            address = Jid.parse(from_jid).local if from_jid else ""
        except ValueError:
            address = from_jid
        if jmi.sdp_over_xmpp:
            # Remembered per sid, so a later propose cannot overwrite it (docs/protocol.rst §8 #22).
            self._remember_sdp_mode(jmi.id)
        info = PendingSession(
            id=jmi.id,
            address=address,
            conversation_id=jmi.conversation_id,
            auto_answer=jmi.auto_answer,
            from_jid=from_jid,
            persistent_connection_id=jmi.attrs.get("inin-persistent-cid"),
        )
        if info.conversation_id:
            for other in list(self.pending.values()):
                if other.info.conversation_id == info.conversation_id and other.info.id != info.id:
                    # A re-proposal of the same conversation with a new id: adopt the new id, keep the
                    # conversation id, and keep the user's view (one pending session) unchanged.
                    self._drop_pending(other)
                    entry = _Pending(info, other.proceeded, other.options, [other.info.id, *other.aliases],
                                     time.monotonic() + self.options.pending_timeout)
                    for key in [info.id, *entry.aliases]:
                        self.pending[key] = entry
                    if other.proceeded:
                        self.send(build_jmi("proceed", info.id, from_jid))
                    self.trace("info", f"re-proposal {info.id} of conversation {info.conversation_id}",
                               {"id": info.id, "previous": other.info.id})
                    return
        entry = _Pending(info, expires=time.monotonic() + self.options.pending_timeout)
        self.pending[info.id] = entry
        self._ensure_pending_sweeper()
        self.trace("info", f"pending session {info.id} from {from_jid} (conversation {info.conversation_id}, "
                           f"autoAnswer {info.auto_answer})", {"id": info.id})
        self.sdk._emit("pendingSession", info)
        if info.auto_answer and self.options.auto_answer_outbound_calls:
            self.loop.create_task(self._auto_accept(info))

    # -- outbound calls: answered by the SDK that placed them -----------------------------------

    def remember_placed(self, conversation_id: str, options: AcceptOptions) -> None:
        """``start_softphone_session`` placed ``conversation_id``: answer its proposal with ``options``."""
        now = time.monotonic()
        for cid, (old, expires) in list(self.placed.items()):
            if expires <= now or len(self.placed) >= 256:
                del self.placed[cid]
                self.release_accept_media(old)
        self.placed[conversation_id] = (options, now + self.options.pending_timeout)

    async def _claim_placed(self, conversation_id: Optional[str]) -> Optional[AcceptOptions]:
        """The accept options of a call this SDK placed, or ``None``.  A proposal can overtake the answer of
        the POST that placed it: while a POST is in flight, wait for it (bounded by its request timeout)."""
        deadline = time.monotonic() + self.options.request_timeout
        while True:
            if conversation_id and conversation_id in self.placed:
                return self.placed.pop(conversation_id)[0]
            left = deadline - time.monotonic()
            if self.placing <= 0 or left <= 0:
                return None
            self.placing_changed.clear()
            try:
                await asyncio.wait_for(self.placing_changed.wait(), left)
            except asyncio.TimeoutError:
                return None

    async def _auto_accept(self, info: PendingSession) -> None:
        options = await self._claim_placed(info.conversation_id)
        if options is None and self.options.auto_answer_outbound_calls == "own":
            self.trace("info", f"pending session {info.id}: an outbound call this SDK did not place; left to the "
                               "client that placed it (auto_answer_outbound_calls='own')", {"id": info.id})
            return
        try:
            await self.accept_pending(info.id, options or AcceptOptions())
        except (SessionNotFoundError, SessionStateError):
            if options is not None:
                self.release_accept_media(options)
            # the user (or a retract) got there first
        except Exception as exc:
            if options is not None:
                self.release_accept_media(options)
            self.report_error(exc, {"id": info.id, "action": "auto-answer"})

    async def reject_pending(self, sid: str) -> PendingSession:
        """Forget pending ``sid`` (being declined by the user)."""
        entry = self._find_pending(sid)
        if entry is None:
            raise SessionNotFoundError(
                f"Cannot reject session {sid} because it is not pending or does not exist", session_id=sid)
        self._drop_pending(entry)
        self.trace("info", f"pending session {entry.info.id} rejected", {"id": entry.info.id})
        return entry.info

    async def send_reject(self, info: PendingSession) -> None:
        """XEP-0353 ``reject`` to the proposer and to our own bare JID (docs/protocol.rst §3.4)."""
        for to in (info.from_jid, str(self.jid)):
            try:
                self.send(build_jmi("reject", info.id, to))
            except ConnectionFailedError:
                pass

    # -- expiry and reconcile after a reconnect -------------------------------------------------

    def _ensure_pending_sweeper(self) -> None:
        task = self._pending_sweeper
        if task is None or task.done():
            self._pending_sweeper = self.loop.create_task(self._sweep_pending(), name="pcw-pending-expiry")

    async def _sweep_pending(self) -> None:
        while self.pending and not self.closing:
            await asyncio.sleep(min(1.0, max(0.05, self.options.pending_reconnect_grace / 4)))
            now = time.monotonic()
            for entry in {id(e): e for e in self.pending.values()}.values():
                if entry.expires and now >= entry.expires and entry.info.id not in self.sessions:
                    self._expire_pending(entry)

    def _expire_pending(self, entry: _Pending) -> None:
        self._drop_pending(entry)
        self._expired_pending[entry.info.id] = time.monotonic()
        while len(self._expired_pending) > 256:
            del self._expired_pending[next(iter(self._expired_pending))]
        self.trace("warning", f"pending session {entry.info.id} expired (no news from the service; its retract may "
                              "have been lost)", {"id": entry.info.id})
        self.sdk._emit("cancelPendingSession", entry.info.id)

    def _reconcile_pending(self) -> None:
        """After a reconnect: what we proceeded may have been lost (proceed again); what rang may have been
        retracted while we were away (it expires unless the service proposes it again soon)."""
        grace = time.monotonic() + self.options.pending_reconnect_grace
        for entry in {id(e): e for e in self.pending.values()}.values():
            if entry.proceeded:
                try:
                    self.send(build_jmi("proceed", entry.info.id, entry.info.from_jid))
                    self.trace("info", f"proceed sent again for {entry.info.id} after the reconnect",
                               {"id": entry.info.id})
                except ConnectionFailedError:
                    pass
            entry.expires = min(entry.expires or grace, grace)
        if self.pending:
            self._ensure_pending_sweeper()

    async def accept_pending(self, sid: str, options: AcceptOptions) -> None:
        """Send ``proceed`` for pending session ``sid`` and remember how to answer its session-initiate."""
        entry = self._find_pending(sid)
        if entry is None and sid in self._expired_pending:
            raise SessionStateError(f"pending session {sid} expired: the service did not confirm it was still "
                                    "ringing (see cancelPendingSession)", session_id=sid)
        if entry is None and sid in self.sessions:
            raise SessionStateError(f"pending session {sid} was already accepted (the session is "
                                    f"{self.sessions[sid].state})", session_id=sid)
        if entry is None:
            raise SessionNotFoundError(
                f"Cannot accept session {sid} because it is not pending or does not exist", session_id=sid)
        if entry.proceeded:
            raise SessionStateError(f"pending session {sid} was already accepted", session_id=sid)
        if self.stream is None or self.stream.state != "connected":
            raise ConnectionFailedError("cannot accept a pending session while disconnected")
        # Sources and sinks are opened now, before the proceed: a missing file, an unwritable directory or a
        # busy device is the caller's exception, not a call that rings on unanswered (issue 15).
        entry.proceeded = True  # a second accept meanwhile is "already accepted"
        try:
            if not options.resolved:  # (start_softphone_session opened its media before placing the call)
                options = await self.resolve_accept_media(options)
        except BaseException:
            entry.proceeded = False
            raise
        if self._find_pending(sid) is not entry or self.stream is None or self.stream.state != "connected":
            self.release_accept_media(options)
            entry.proceeded = False
            raise SessionNotFoundError(f"pending session {sid} went away while its media was being opened",
                                       session_id=sid)
        entry.options = options
        try:
            self.send(build_jmi("proceed", entry.info.id, entry.info.from_jid))
        except BaseException:
            entry.proceeded = False
            entry.options = AcceptOptions()
            self.release_accept_media(options)
            raise
        self.trace("info", f"proceed sent for {entry.info.id}", {"id": entry.info.id})

    async def _start_session(self, session: JingleSession, apply: Awaitable[bool], action: str,
                             entry: Optional[_Pending]) -> bool:
        """Apply a new session's offer (``apply``: Jingle or JSON-RPC); then ``sessionStarted`` and the answer,
        or, when the offer cannot be used (reported), forget the session.  Returns whether it started."""
        try:
            ok = await apply
        except Exception as exc:
            ok = False
            self.report_error(exc, {"session_id": session.sid, "action": action})
        if not ok:
            self.sessions.pop(session.sid, None)
            session.discard()
            if entry is not None and entry.options.resolved:
                self.release_accept_media(entry.options)
            return False
        await self._session_started(session, entry)
        return True

    async def _session_started(self, session: JingleSession, entry: Optional[_Pending]) -> None:
        # XEP-0353 accept to our own bare JID only now, so other devices stop ringing (§3.3, SC 11).
        if self.jid is not None:
            try:
                self.send(build_jmi("accept", session.sid, str(self.jid)))
            except ConnectionFailedError:
                pass
        self.trace("info", f"session {session.sid} started", {"id": session.sid})
        self.sdk._emit("sessionStarted", session.public)
        options = entry.options if entry is not None else AcceptOptions()
        session.deferred_options = options  # type: ignore[attr-defined]
        auto = options.auto_connect_session
        if auto is None:
            auto = self.options.auto_connect_sessions
        if auto:
            try:
                if options.resolved:  # opened by accept_pending_session: answer with exactly that
                    await self.accept_session(session, None, None, True)
                else:
                    await self.accept_session(session, options.source, options.sink, options.auto_start_media)
            except Exception as exc:
                self.report_error(exc, {"session_id": session.sid, "action": "accept"})
                if not session.ended:  # never a session stuck unanswered while the caller rings on
                    await session.finish("failed-application", text=str(exc), send=True)
