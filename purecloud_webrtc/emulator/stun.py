"""A STUN binding responder on 127.0.0.1 (RFC 8489 §6.3), so clients have a STUN server to discover.

The service always advertises STUN over XEP-0215, and the official client gathers relay candidates only
when it is given none (docs/protocol.rst §2.8). The emulator runs this responder by default and
advertises ``stun:127.0.0.1:{port}``: a client that follows that rule still gets host and
server-reflexive candidates and audio. It answers Binding requests with the source address
(XOR-MAPPED-ADDRESS and FINGERPRINT) and ignores everything else; it binds 127.0.0.1 only, so it only
ever answers loopback.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional, Tuple

from aioice import stun

__all__ = ["StunResponder"]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: "StunResponder") -> None:
        self.owner = owner
        self.transport: Optional[asyncio.DatagramTransport] = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Tuple[Any, ...]) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            self.owner.ignored += 1
            return
        if request.message_method != stun.Method.BINDING or request.message_class != stun.Class.REQUEST:
            self.owner.ignored += 1
            return
        response = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                                transaction_id=request.transaction_id)
        response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1])
        # FINGERPRINT last, over everything before it (aioice 0.12 has no add_fingerprint()).
        response.attributes["FINGERPRINT"] = stun.message_fingerprint(bytes(response))
        self.owner.answered += 1
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


class StunResponder:
    """Answers STUN Binding requests on ``127.0.0.1:port`` (``port=0``: a free one), on the running loop."""

    def __init__(self, port: int = 0, logger: Optional[logging.Logger] = None) -> None:
        self.requested_port = port
        self.port: Optional[int] = None
        self.answered = 0
        self.ignored = 0
        self.logger = logger or logging.getLogger("purecloud_webrtc.emulator")
        self._transport: Optional[asyncio.DatagramTransport] = None

    @property
    def url(self) -> str:
        """``stun:127.0.0.1:{port}``, as XEP-0215 advertises it."""
        return f"stun:127.0.0.1:{self.port}"

    async def start(self) -> "StunResponder":
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                           local_addr=("127.0.0.1", self.requested_port))
        self._transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]
        self.logger.debug("STUN responder on 127.0.0.1:%s", self.port)
        return self

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
