"""The trust boundary: who may ring, talk to or end a call, and how much a peer can make us hold.

Pure code (no I/O, no aiortc): the core asks it before it acts on a stanza.

* **Who may propose.** Softphone calls are offered by the service's XMPP-SIP gateway
  ("gjoll", ``docs/protocol.rst`` *Trust*).  By default a propose is a softphone call only
  when its ``from`` is a full JID whose domain has a label starting with ``gjoll`` and is
  not the user's own organisation domain (nor a sibling of it, ``*.orgspan.com``), where
  every colleague's JID lives.  The official client matches ``.*@.*gjoll.*`` on the whole
  JID, so a colleague who binds the resource ``gjoll`` would pass it; we look at the
  domain only.  Other session types (``acd-*``, ``screenrecording-*``, ``livemonitor-*``,
  ``conference.*``) are not softphone calls.
* **Who may talk inside a session** is decided by the core: the full JID the SDK
  proceeded to, for a session id it proceeded.
* **Bounds** (:class:`Limits`) on everything a peer can make us hold.
* **Remote ICE candidates** (:class:`CandidateFilter`): never a packet to a multicast,
  broadcast, unspecified, link-local or reserved address, to a host name (resolving an
  mDNS name sends multicast), to loopback unless we gather on loopback ourselves, or to
  anything the relay policy excludes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Pattern, Sequence, Tuple, Union

__all__ = [
    "Limits",
    "TrustedPeers",
    "classify_peer",
    "is_service_gateway",
    "CandidateFilter",
]

#: What ``trusted_peers=`` accepts: ``None`` (the service's gateways), a regular expression
#: (matched against the whole full JID, case-insensitive), or ``fn(jid) -> bool``.
TrustedPeersSpec = Union[None, str, "Pattern[str]", Callable[[str], bool]]


@dataclass(frozen=True)
class Limits:
    """Bounds on what the service (or a peer pretending to be it) can make one SDK hold.

    Reaching a bound is an ``error`` event (:class:`~purecloud_webrtc.SignalingError`) and a
    refusal; nothing grows without limit.

    :ivar max_pending_sessions: proposals waiting for an answer at once (more are ignored).
    :ivar max_sessions: live calls at once (a further offer is refused; each holds a UDP socket).
    :ivar max_remote_candidates: remote ICE candidates used per session (the rest are dropped).
    :ivar max_early_candidates: SDP-over-XMPP candidates kept per session before its offer.
    :ivar max_early_candidate_sessions: sessions whose early candidates are kept at once.
    :ivar early_candidate_ttl: seconds early candidates are kept (PROTOCOL §5: 60 s).
    :ivar max_remembered_offers: JSON-RPC offer ids remembered to drop repeated reinvites.
    :ivar duplicate_offer_ttl: seconds an offer id is remembered (the service: 3 minutes).
    :ivar max_sdp_mode_sessions: session ids remembered as negotiating with JSON-RPC.
    """

    max_pending_sessions: int = 32
    max_sessions: int = 64
    max_remote_candidates: int = 32
    max_early_candidates: int = 32
    max_early_candidate_sessions: int = 10
    early_candidate_ttl: float = 60.0
    max_remembered_offers: int = 256
    duplicate_offer_ttl: float = 180.0
    max_sdp_mode_sessions: int = 256

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, not {value!r}")


def _split_jid(jid: str) -> Tuple[str, str, str]:
    rest, _, resource = jid.partition("/")
    local, at, domain = rest.rpartition("@")
    if not at:
        local, domain = "", rest
    return local, domain.lower(), resource


def classify_peer(jid: str) -> str:
    """The kind of session a JID offers, as the official client classifies it (gateway first).

    ``"softphone"`` (the gateway), ``"acd"``, ``"screenrecording"``, ``"livemonitor"``,
    ``"conference"`` or ``"other"``.
    """
    local, domain, _ = _split_jid(jid or "")
    if any(label.startswith("gjoll") for label in domain.split(".")):
        return "softphone"
    lowered = local.lower()
    for prefix in ("acd", "screenrecording", "livemonitor"):
        if lowered.startswith(prefix + "-"):
            return prefix
    if domain.startswith("conference."):
        return "conference"
    return "other"


def _parent(domain: str) -> Optional[str]:
    labels = domain.split(".")
    return ".".join(labels[1:]) if len(labels) >= 3 else None


def is_service_gateway(jid: str, own_domain: Optional[str]) -> bool:
    """``True`` when ``jid`` is a full JID of the service's softphone gateway (the default trust rule)."""
    if not isinstance(jid, str) or not jid:
        return False
    local, domain, resource = _split_jid(jid)
    if not local or not resource or not domain:
        return False
    if classify_peer(jid) != "softphone":
        return False
    if own_domain:
        own = own_domain.lower()
        # Colleagues live in the organisation's domain (and other organisations beside it).
        if domain == own or domain.endswith("." + own) or (_parent(own) is not None and _parent(domain) == _parent(own)):
            return False
    return True


class TrustedPeers:
    """Decides which JIDs may offer softphone calls.

    :param spec: ``None`` for the service's gateways (:func:`is_service_gateway`), a regular
        expression matched against the whole full JID (case-insensitive), or a callable.
    :raises ValueError: for anything else, or a regular expression that does not compile.
    """

    def __init__(self, spec: TrustedPeersSpec = None) -> None:
        self.spec = spec
        self._match: Optional[Callable[[str], bool]]
        if spec is None:
            self._match = None
        elif isinstance(spec, str):
            try:
                pattern = re.compile(spec, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"trusted_peers is not a valid regular expression: {exc}") from None
            self._match = lambda jid: pattern.fullmatch(jid) is not None
        elif isinstance(spec, re.Pattern):
            self._match = lambda jid: spec.fullmatch(jid) is not None  # type: ignore[union-attr]
        elif callable(spec):
            self._match = lambda jid: bool(spec(jid))  # type: ignore[operator]
        else:
            raise ValueError("trusted_peers must be None, a regular expression, or a callable fn(jid) -> bool")

    def __repr__(self) -> str:
        return f"TrustedPeers({'service gateways' if self.spec is None else self.spec!r})"

    def allows(self, jid: str, own_domain: Optional[str]) -> bool:
        """Whether ``jid`` may offer a softphone call to a user of ``own_domain``."""
        if not jid:
            return False
        if self._match is None:
            return is_service_gateway(jid, own_domain)
        try:
            return self._match(jid)
        except Exception:  # a user callable that fails trusts nobody
            return False


# -- remote ICE candidates -------------------------------------------------------------------

_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


@dataclass(frozen=True)
class CandidateInfo:
    """The fields of one ``candidate:`` line that the filter looks at."""

    component: int
    protocol: str
    host: str
    port: int
    type: str


def parse_candidate(text: str) -> CandidateInfo:
    """Parse ``[a=]candidate:F C proto prio host port typ T ...``.

    :raises ValueError: for a line that is not a candidate.
    """
    line = text.strip()
    if line.startswith("a="):
        line = line[2:]
    if line.startswith("candidate:"):
        line = line[len("candidate:"):]
    parts = line.split()
    if len(parts) < 8 or parts[6] != "typ":
        raise ValueError(f"not an ICE candidate: {text[:120]!r}")
    try:
        component, port = int(parts[1]), int(parts[5])
    except ValueError:
        raise ValueError(f"not an ICE candidate: {text[:120]!r}") from None
    return CandidateInfo(component, parts[2].lower(), parts[4], port, parts[7].lower())


class CandidateFilter:
    """Says which remote candidates may be handed to the ICE agent.

    :param policy: ``"all"`` or ``"relay"`` (with relay only ``typ relay`` candidates are used).
    :param host_addresses: the SDK's ``ice_host_addresses`` (``None``: aioice's own choice).
    """

    def __init__(self, policy: str = "all", host_addresses: Optional[Sequence[str]] = None) -> None:
        self.policy = policy
        addresses = [ipaddress.ip_address(a) for a in host_addresses] if host_addresses is not None else None
        #: Only loopback remote candidates when we gather on loopback only.
        self.loopback_only = bool(addresses) and all(a.is_loopback for a in addresses)  # type: ignore[union-attr]
        #: Loopback remote candidates only when we gather on loopback ourselves.
        self.allow_loopback = addresses is not None and any(a.is_loopback for a in addresses)
        self.ipv4_only = addresses is not None and bool(addresses) and all(a.version == 4 for a in addresses)

    def verdict(self, candidate: str) -> Optional[str]:
        """``None`` when ``candidate`` may be used, else the reason it is dropped."""
        try:
            info = parse_candidate(candidate)
        except ValueError:
            return "malformed"
        if info.component != 1:
            return "rtcp component (rtcp-mux is always used)"
        if info.protocol != "udp":
            return "not udp"
        if not 0 < info.port < 65536:
            return "bad port"
        try:
            ip = ipaddress.ip_address(info.host)
        except ValueError:
            return "host name (not resolved)"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_unspecified:
            return "unspecified address"
        if ip.is_multicast:
            return "multicast address"
        if ip == _LIMITED_BROADCAST:
            return "broadcast address"
        if ip.is_link_local:
            return "link-local address"
        if isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK:
            return "'this network' address"
        if ip.is_reserved and not ip.is_loopback:  # (::1 sits in IPv6's reserved ::/8)
            return "reserved address"
        if ip.is_loopback and not self.allow_loopback:
            return "loopback address (we do not gather on loopback)"
        if self.loopback_only and not ip.is_loopback:
            return "not loopback (ice_host_addresses is loopback only)"
        if self.ipv4_only and ip.version == 6:
            return "IPv6 (we gather IPv4 only)"
        if self.policy == "relay" and info.type != "relay":
            return "not a relay candidate (relay-only policy)"
        return None

    def filter_sdp(self, sdp: str) -> Tuple[str, List[Tuple[str, str]]]:
        """``sdp`` without the ``a=candidate`` lines that may not be used, and ``[(line, reason)]`` dropped."""
        kept: List[str] = []
        dropped: List[Tuple[str, str]] = []
        for line in sdp.split("\r\n"):
            if line.startswith("a=candidate:"):
                reason = self.verdict(line)
                if reason is not None:
                    dropped.append((line, reason))
                    continue
            kept.append(line)
        return "\r\n".join(kept), dropped


@dataclass
class CandidateCounts:
    """Remote candidates of one session: used, dropped, and why (core loop only)."""

    accepted: int = 0
    dropped: int = 0
    reasons: Optional[Dict[str, int]] = None

    def drop(self, reason: str) -> None:
        self.dropped += 1
        if self.reasons is None:
            self.reasons = {}
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def as_dict(self) -> Dict[str, Any]:
        return {"accepted": self.accepted, "dropped": self.dropped, "reasons": dict(self.reasons or {})}
