"""An attacker on the service: another JID that sends proposes, Jingle and JSON-RPC to a user's clients.

``emu.intruder()`` is a colleague in the same organisation (a second user of the
emulator); ``emu.intruder(jid=...)`` speaks as any JID at all (another gateway
resource, an ``acd-`` or conference JID, the call's own gateway JID) as if the
service had routed it.  Everything the SDK sends back to that JID is recorded, so
a test can assert the exact refusal.  Offers are real aiortc offers on
127.0.0.1: if an SDK were fooled into answering, media could really flow, so a
test that checks it did not is a test that can fail.

All methods are for threads other than the emulator's loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Iterable, Optional

from .._xml import Element, element, parse, q, sub, to_string
from ._state import EmulatedUser
from .streaming import bare

if TYPE_CHECKING:  # pragma: no cover
    from .server import Emulator

__all__ = ["Intruder"]


class Intruder:
    """A JID that is not the user's call peer, sending to ``target``'s clients.

    :ivar jid: the full JID it speaks as (stamped as ``from`` on everything it sends).
    :ivar target: the user it attacks.
    """

    def __init__(self, emulator: "Emulator", jid: str, target: EmulatedUser) -> None:
        self._emulator = emulator
        self.jid = jid
        self.target = target
        self._inbox: list[str] = []
        self._cond = threading.Condition()
        self._pcs: list[Any] = []

    def __repr__(self) -> str:
        return f"<Intruder {self.jid} -> {self.target.jid}>"

    # -- what the SDK sent back -------------------------------------------------------

    def _record(self, el: Element) -> None:
        with self._cond:
            self._inbox.append(to_string(el))
            self._cond.notify_all()

    def matches(self, to: str) -> bool:
        """Whether a stanza addressed ``to`` is for this intruder."""
        return to == self.jid or ("/" not in self.jid and bare(to) == self.jid)

    @property
    def received(self) -> list[str]:
        """Every stanza the user's clients sent to this JID, as XML text, oldest first."""
        with self._cond:
            return list(self._inbox)

    def wait_for_reply(self, iq_id: str, timeout: float = 10.0) -> str:
        """The reply to our IQ ``iq_id``.

        :raises TimeoutError: when none came within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for text in self._inbox:
                    if f'id="{iq_id}"' in text:
                        return text
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply to {iq_id} within {timeout} s")
                self._cond.wait(left)

    # -- sending ---------------------------------------------------------------------

    def send(self, stanza: "Element | str", to: Optional[str] = None) -> int:
        """Send one stanza as this JID (``from`` stamped) to ``to`` (default: the target's bare JID, which
        fans out to all its clients); returns how many connections got it."""
        el = parse(stanza) if isinstance(stanza, str) else stanza
        el.set("from", self.jid)
        el.set("to", to or el.get("to") or self.target.jid)
        router = self._emulator._router_or_fail()
        return int(self._emulator._on_loop(lambda: router.deliver(el)))

    def client_jid(self) -> str:
        """The full JID of the target's first bound client (where IQs go).

        :raises RuntimeError: when the target has no client connected.
        """
        resources = self._emulator.connected_resources(self.target)
        if not resources:
            raise RuntimeError(f"{self.target.jid} has no client connected")
        return resources[0]

    def _iq(self, payload: Element, to: Optional[str]) -> str:
        iq_id = f"intruder-{uuid.uuid4()}"
        iq = element(q("client", "iq"), {"type": "set", "id": iq_id}, payload)
        self.send(iq, to or self.client_jid())
        return iq_id

    def propose(self, sid: Optional[str] = None, *, auto_answer: bool = True, sdp_over_xmpp: bool = False,
                conversation_id: Optional[str] = None) -> str:
        """An XEP-0353 propose to the target's bare JID (auto-answer on by default: the eavesdropper's wish)."""
        sid = sid or str(uuid.uuid4())
        attrs = {"id": sid, "inin-cid": conversation_id or str(uuid.uuid4()),
                 "inin-autoanswer": "true" if auto_answer else "false"}
        if sdp_over_xmpp:
            attrs["inin-sdp-over-xmpp"] = "true"
        propose = element(q("jmi", "propose"), attrs)
        sub(propose, q("rtp", "description"), media="audio")
        self.send(element(q("client", "message"), None, propose))
        return sid

    def jmi(self, action: str, sid: str) -> None:
        """An XEP-0353 ``retract``, ``accept``, ``reject`` or ``proceed`` about ``sid``."""
        self.send(element(q("client", "message"), None, element(q("jmi", action), {"id": sid})))

    def jingle(self, action: str, sid: str, *children: Element, to: Optional[str] = None) -> str:
        """A Jingle IQ set; returns its IQ id (see :meth:`wait_for_reply`)."""
        attrs = {"action": action, "sid": sid}
        if action == "session-initiate":
            attrs["initiator"] = self.jid
        return self._iq(element(q("jingle", "jingle"), attrs, *children), to)

    def rpc(self, method: str, params: dict, *, rpc_id: Optional[str] = None, to: Optional[str] = None) -> str:
        """A ``genesys-webrtc`` JSON-RPC IQ set; returns its IQ id."""
        body = {"jsonrpc": "2.0", "id": rpc_id or str(uuid.uuid4()), "method": method, "params": params}
        return self._iq(element(q("genesys", "genesys-webrtc"), text=json.dumps(body)), to)

    def offer_sdp(self) -> str:
        """A real aiortc offer (sendrecv audio, candidates on 127.0.0.1 inline); the peer is kept open."""
        from aiortc import RTCConfiguration, RTCPeerConnection

        async def make() -> str:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            self._pcs.append(pc)
            pc.addTransceiver("audio", direction="sendrecv")
            await pc.setLocalDescription(await pc.createOffer())
            return str(pc.localDescription.sdp)

        loop = self._emulator._loop_or_fail()
        return str(asyncio.run_coroutine_threadsafe(make(), loop).result(10.0))

    def session_initiate(self, sid: str, *, sdp: Optional[str] = None, to: Optional[str] = None) -> str:
        """A Jingle session-initiate carrying ``sdp`` (default: a real offer, :meth:`offer_sdp`); returns its IQ id."""
        from ..jingle.sdp import sdp_to_jingle

        contents = sdp_to_jingle(sdp or self.offer_sdp(), "initiator", include_candidates=True)
        return self.jingle("session-initiate", sid, *contents, to=to)

    def rpc_offer(self, sid: str, *, sdp: Optional[str] = None, reinvite: bool = False,
                  to: Optional[str] = None) -> str:
        """A JSON-RPC ``offer`` carrying ``sdp`` (default: a real offer); returns its IQ id."""
        params: dict[str, Any] = {"sessionId": sid, "conversationId": str(uuid.uuid4()),
                                  "sdp": sdp or self.offer_sdp()}
        if reinvite:
            params["reinvite"] = True
        return self.rpc("offer", params, to=to)

    def terminate(self, sid: str, *, mode: str = "jingle", reason: str = "success", to: Optional[str] = None) -> str:
        """End ``sid`` as this JID: Jingle ``session-terminate`` or JSON-RPC ``terminate``."""
        if mode == "rpc":
            return self.rpc("terminate", {"sessionId": sid, "reason": reason}, to=to)
        reason_el = element(q("jingle", "reason"), None, element(q("jingle", reason)))
        return self.jingle("session-terminate", sid, reason_el, to=to)

    def candidates(self, sid: str, candidates: Iterable[str], *, mode: str = "jingle", mid: str = "0",
                   ufrag: str = "x", to: Optional[str] = None, per_stanza: int = 50) -> list[str]:
        """Send remote candidates (``candidate:...`` lines) about ``sid``; returns the IQ ids.

        Jingle mode packs up to ``per_stanza`` candidates in one ``transport-info``; JSON-RPC sends one
        ``iceCandidate`` each, in the service's ``m={mid} 9 RTP/AVP 0`` form.
        """
        from ..jingle.sdp import transport_info_content

        ids = []
        batch: list[str] = []
        items = list(candidates)
        if mode == "rpc":
            for cand in items:
                ids.append(self.rpc("iceCandidate",
                                    {"sessionId": sid, "sdp": f"m={mid} 9 RTP/AVP 0\r\na={cand}\r\n"}, to=to))
            return ids
        for i, cand in enumerate(items):
            batch.append(cand)
            if len(batch) == per_stanza or i == len(items) - 1:
                content = None
                for one in batch:
                    piece = transport_info_content(mid, ufrag, one, creator="initiator")
                    if content is None:
                        content = piece
                    else:
                        transport = piece.find(q("ice_udp", "transport"))
                        target = content.find(q("ice_udp", "transport"))
                        assert transport is not None and target is not None
                        for child in list(transport):
                            target.append(child)
                assert content is not None
                ids.append(self.jingle("transport-info", sid, content, to=to))
                batch = []
        return ids

    def close(self) -> None:
        """Close the peers behind the offers made (also done by ``Emulator.stop()``)."""
        pcs, self._pcs = self._pcs, []
        if not pcs:
            return

        async def close_all() -> None:
            for pc in pcs:
                await pc.close()

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self._emulator._loop_or_fail()).result(10.0)
        except Exception:  # the emulator is stopping anyway
            pass

    def ice_states(self) -> list[str]:
        """The ICE connection state of each offer's peer (``"new"`` while nobody answered it)."""
        return [pc.iceConnectionState for pc in self._pcs]
