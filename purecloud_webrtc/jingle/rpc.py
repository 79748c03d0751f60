"""SDP-over-XMPP: the ``genesys-webrtc`` JSON-RPC 2.0 envelope the service may use instead of Jingle.

docs/protocol.rst §5: chosen by the server per call (``inin-sdp-over-xmpp="true"`` on the propose);
``offer``/``iceCandidate``/``terminate`` come from the server, ``answer``/``iceCandidate``/``info``/
``terminate`` go to it, each as an ``<iq type="set"><genesys-webrtc xmlns="genesys">{JSON}</genesys-webrtc></iq>``.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .._xml import Element, element, q

__all__ = ["RpcMessage", "parse_rpc", "rpc_iq", "parse_candidate_fragment", "ice_credentials"]


@dataclass(frozen=True)
class RpcMessage:
    """One JSON-RPC request: ``id``, ``method`` and ``params`` (``sessionId`` is required)."""

    id: Optional[str]
    method: str
    params: Dict[str, Any]

    @property
    def session_id(self) -> str:
        return str(self.params["sessionId"])


def parse_rpc(payload: Element) -> RpcMessage:
    """Decode the JSON inside ``<genesys-webrtc/>``.

    :raises ValueError: for JSON that is not a JSON-RPC request with a method and ``params.sessionId``.
    """
    try:
        body = json.loads(payload.text or "")
    except ValueError as exc:
        raise ValueError(f"genesys-webrtc payload is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        raise ValueError("genesys-webrtc payload is not a JSON-RPC request (no method)")
    params = body.get("params")
    if not isinstance(params, dict) or not params.get("sessionId"):
        raise ValueError(f"JSON-RPC {body['method']} without params.sessionId")
    rpc_id = body.get("id")
    return RpcMessage(str(rpc_id) if rpc_id is not None else None, body["method"], params)


def rpc_iq(to: str, method: str, params: Dict[str, Any]) -> Element:
    """An IQ set carrying one JSON-RPC request from us."""
    body = {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": method, "params": params}
    payload = element(q("genesys", "genesys-webrtc"), text=json.dumps(body))
    return element(q("client", "iq"), {"type": "set", "to": to, "id": str(uuid.uuid4())}, payload)


def parse_candidate_fragment(fragment: str) -> Tuple[Optional[str], Optional[str]]:
    """``"m={mid} 9 RTP/AVP 0\\r\\na=candidate:…"`` → ``(mid, "candidate:…")``; end of candidates → ``(mid, None)``.

    :raises ValueError: for a fragment with neither a candidate nor ``a=end-of-candidates``.
    """
    mid: Optional[str] = None
    candidate: Optional[str] = None
    end = False
    for line in re.split(r"\r?\n", fragment or ""):
        line = line.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            mid = parts[0] if parts else None
        elif line.startswith("a=candidate:"):
            candidate = line[2:]
        elif line == "a=end-of-candidates":
            end = True
    if candidate is None and not end:
        raise ValueError(f"ICE candidate fragment has no candidate: {fragment!r}")
    return mid, candidate


def ice_credentials(sdp: str) -> Tuple[Optional[str], Optional[str]]:
    """The first ``a=ice-ufrag``/``a=ice-pwd`` of ``sdp`` (a re-offer with other ones is a reinvite, §5)."""
    ufrag = re.search(r"^a=ice-ufrag:(\S+)", sdp, re.M)
    pwd = re.search(r"^a=ice-pwd:(\S+)", sdp, re.M)
    return (ufrag.group(1) if ufrag else None, pwd.group(1) if pwd else None)
