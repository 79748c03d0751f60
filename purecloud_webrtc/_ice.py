"""ICE plumbing: restricting host candidates and turning XEP-0215 answers into ICE servers.

aioice gathers host candidates from every interface but loopback, through the
module-level function ``aioice.ice.get_host_addresses``.  To let an SDK (or the
emulator) keep its candidates on chosen addresses -- for example only
``127.0.0.1`` in tests -- that function is wrapped once, and the wrapper looks
up a restriction registered for the *running event loop*.  Each SDK owns its
own loop thread, so two SDKs (or an SDK and the emulator) in one process can
hold different restrictions without touching each other.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Optional, Sequence

import aioice.ice

__all__ = ["restrict_host_addresses", "release_host_addresses", "ice_servers_from_services"]

_lock = threading.Lock()
_restrictions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, ...]]" = weakref.WeakKeyDictionary()
_original = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    restriction = _restrictions.get(loop) if loop is not None else None
    if restriction is None:
        return _original(use_ipv4, use_ipv6)
    # The caller asked for exact addresses; loopback is allowed here on
    # purpose (aioice itself skips it).
    result = []
    for address in restriction:
        is_v6 = ":" in address
        if (is_v6 and use_ipv6) or (not is_v6 and use_ipv4):
            result.append(address)
    return result


def _install() -> None:
    with _lock:
        if aioice.ice.get_host_addresses is not _get_host_addresses:
            aioice.ice.get_host_addresses = _get_host_addresses


def restrict_host_addresses(loop: asyncio.AbstractEventLoop, addresses: Optional[Sequence[str]]) -> None:
    """Gather host candidates only on ``addresses`` for peer connections run by ``loop``.

    ``None`` removes the restriction (aioice's own choice: every non-loopback interface).
    """
    _install()
    with _lock:
        if addresses is None:
            _restrictions.pop(loop, None)
        else:
            _restrictions[loop] = tuple(addresses)


def release_host_addresses(loop: asyncio.AbstractEventLoop) -> None:
    """Forget the restriction of ``loop`` (called when a loop is closed)."""
    with _lock:
        _restrictions.pop(loop, None)


def ice_servers_from_services(turn: Sequence[dict], stun: Sequence[dict]) -> list[dict]:
    """Map XEP-0215 ``<service/>`` attribute dicts to RTCIceServer-like dicts.

    Follows PROTOCOL.md §2.8: ``{type}:{host}[:{port}]``, with
    ``?transport=X`` on TURN URLs when the transport is given and is not UDP;
    TURN entries carry ``username``/``credential``, STUN entries none.
    """
    servers: list[dict] = []
    for service in list(turn) + list(stun):
        kind = (service.get("type") or "").lower()
        host = service.get("host")
        if kind not in ("turn", "turns", "stun", "stuns") or not host:
            continue
        url = f"{kind}:{host}"
        if service.get("port"):
            url += f":{service['port']}"
        entry: dict = {"urls": url}
        if kind.startswith("turn"):
            transport = (service.get("transport") or "").lower()
            if transport and transport != "udp":
                entry["urls"] = url + f"?transport={transport}"
            if service.get("username") is not None:
                entry["username"] = service.get("username")
            if service.get("password") is not None:
                entry["credential"] = service.get("password")
        servers.append(entry)
    return servers
