"""XEP-0353 (Jingle Message Initiation) and Jingle IQ builders/parsers, as Genesys profiles them.

Pure functions: no I/O.  docs/protocol.rst §3 (namespace ``urn:xmpp:jingle-message:0``;
``proceed`` to the proposer, ``accept`` to our own bare JID) and §4.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from .. import _xml as X
from .._xml import NS, Element, element, q

__all__ = [
    "JMI_ACTIONS",
    "JmiMessage",
    "parse_jmi",
    "build_jmi",
    "jingle_iq",
    "parse_reason",
    "unknown_session_error",
    "REASONS",
]

JMI_ACTIONS = ("propose", "proceed", "accept", "retract", "reject")

#: XEP-0166 §7.4 reason conditions.
REASONS = frozenset({
    "alternative-session", "busy", "cancel", "connectivity-error", "decline", "expired", "failed-application",
    "failed-transport", "general-error", "gone", "incompatible-parameters", "media-error", "security-error",
    "success", "timeout", "unsupported-applications", "unsupported-transports",
})


@dataclass(frozen=True)
class JmiMessage:
    """One XEP-0353 message.

    :ivar action: ``propose``, ``proceed``, ``accept``, ``retract`` or ``reject``.
    :ivar id: the proposal (and future Jingle session) id.
    :ivar from_jid: the message's ``from``.
    :ivar attrs: the action element's other attributes (``inin-cid``, ``inin-autoanswer``...).
    """

    action: str
    id: str
    from_jid: str
    to_jid: str = ""
    attrs: Dict[str, str] = field(default_factory=dict)

    @property
    def conversation_id(self) -> Optional[str]:
        return self.attrs.get("inin-cid") or None

    @property
    def auto_answer(self) -> bool:
        # A string compare: "false" must not be truthy (docs/protocol.rst §8 #6).
        return (self.attrs.get("inin-autoanswer") or "").strip().lower() == "true"

    @property
    def sdp_over_xmpp(self) -> bool:
        return (self.attrs.get("inin-sdp-over-xmpp") or "").strip().lower() == "true"


def parse_jmi(message: Element) -> Optional[JmiMessage]:
    """The XEP-0353 payload of ``message``, or ``None`` when it has none.

    :raises ValueError: for a JMI element without ``id``.
    """
    for child in message:
        ns, local = X.split(child.tag)
        if ns == NS["jmi"] and local in JMI_ACTIONS:
            sid = child.get("id")
            if not sid:
                raise ValueError(f"XEP-0353 <{local}/> without an id")
            attrs = {k: v for k, v in child.attrib.items() if k != "id"}
            return JmiMessage(local, sid, message.get("from") or "", message.get("to") or "", attrs)
    return None


def build_jmi(action: str, sid: str, to: str, **attrs: Optional[str]) -> Element:
    """``<message to><{action} xmlns=jingle-message:0 id/></message>`` (no ``type``, docs/protocol.rst §10.5)."""
    if action not in JMI_ACTIONS:
        raise ValueError(f"unknown XEP-0353 action {action!r}")
    payload = element(q("jmi", action), {"id": sid, **attrs})
    if action == "propose":
        X.sub(payload, q("rtp", "description"), {"media": "audio"})
    return element(q("client", "message"), {"to": to, "id": str(uuid.uuid4())}, payload)


def jingle_iq(to: str, action: str, sid: str, *children: Element, **attrs: Optional[str]) -> Element:
    """A Jingle IQ set: ``<iq type=set to><jingle xmlns=jingle:1 action sid>children</jingle></iq>``."""
    jingle = element(q("jingle", "jingle"), {"action": action, "sid": sid, **attrs}, *children)
    return element(q("client", "iq"), {"type": "set", "to": to, "id": str(uuid.uuid4())}, jingle)


def reason_element(condition: str, text: Optional[str] = None) -> Element:
    """``<reason><{condition}/>[<text/>]</reason>`` in the Jingle namespace."""
    reason = element(q("jingle", "reason"), None, element(q("jingle", condition)))
    if text:
        X.sub(reason, q("jingle", "text"), text=text)
    return reason


def parse_reason(jingle: Element) -> Tuple[str, Optional[str]]:
    """``(condition, text)`` of a jingle's ``<reason/>``; ``("success", None)`` when absent."""
    reason = jingle.find(q("jingle", "reason"))
    if reason is None:
        return "success", None
    condition = None
    text = None
    for child in reason:
        ns, local = X.split(child.tag)
        if local == "text":
            text = (child.text or "").strip() or None
        elif ns == NS["jingle"] and condition is None:
            condition = local
    return condition or "success", text


def unknown_session_error(iq: Element) -> Element:
    """The reply for Jingle about an unknown sid: ``item-not-found`` + ``<unknown-session/>`` (XEP-0166)."""
    from ..xmpp.stream import error_reply

    return error_reply(iq, "item-not-found", "cancel", app=element(q("jingle_errors", "unknown-session")))
