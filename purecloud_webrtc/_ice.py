"""ICE servers: turning XEP-0215 answers into RTCIceServer-like dicts.

Restricting host candidates (``ice_host_addresses``) is a hook into aioice and lives in
:mod:`purecloud_webrtc._internals` with the others; it is re-exported here for the callers.
"""

from __future__ import annotations

from typing import Sequence

from ._internals import release_host_addresses, restrict_host_addresses

__all__ = ["restrict_host_addresses", "release_host_addresses", "ice_servers_from_services"]


def ice_servers_from_services(turn: Sequence[dict], stun: Sequence[dict]) -> list[dict]:
    """Map XEP-0215 ``<service/>`` attribute dicts to RTCIceServer-like dicts.

    Follows docs/protocol.rst §2.8: ``{type}:{host}[:{port}]``, with
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
