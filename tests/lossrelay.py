"""A UDP relay on 127.0.0.1 that loses, delays and reorders RTP between two WebRTC parties.

Each party is told that the other lives at one of the relay's two ports (its
ICE candidates are rewritten by :meth:`LossRelay.rewrite`), so every packet
between them crosses the relay.  STUN (ICE checks) and DTLS pass untouched;
RTP packets (SRTP keeps the RTP header in clear) can be dropped at random with
probability ``loss`` and delayed by a uniform random ``0..jitter`` seconds
(which reorders them, as real jitter does).  RTCP passes untouched.

Used by the tests (``tests/test_jitter.py``) and the benchmarks
(``benchmarks/``).  Network rule: it binds and sends to 127.0.0.1 only, and it
stops after ``max_seconds`` at the latest.
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["LossRelay", "DirectionStats", "is_rtp"]

LOOPBACK = "127.0.0.1"


def is_rtp(data: bytes) -> bool:
    """RTP (not RTCP, STUN or DTLS), by RFC 7983 demultiplexing and RFC 5761 payload types."""
    return len(data) >= 12 and 128 <= data[0] <= 191 and not (192 <= data[1] <= 223)


@dataclass
class DirectionStats:
    """Packets seen in one direction."""

    forwarded: int = 0
    rtp: int = 0
    dropped: int = 0
    delayed: int = 0


class LossRelay:
    """Relay between party A and party B.

    :param loss: probability of dropping an RTP packet (per direction in ``impaired``).
    :param jitter: maximal extra delay of an RTP packet, seconds (uniform).
    :param impaired: which directions are impaired: ``"a->b"`` and/or ``"b->a"``.
    :param seed: random seed (reproducible runs).
    :param max_seconds: the relay thread stops by itself after this long.
    """

    def __init__(self, loss: float = 0.0, jitter: float = 0.0, impaired: Tuple[str, ...] = ("a->b", "b->a"),
                 seed: int = 0, max_seconds: float = 900.0) -> None:
        self.loss = loss
        self.jitter = jitter
        self.impaired = set(impaired)
        self._rng = random.Random(seed)
        self.sock_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for sock in (self.sock_a, self.sock_b):
            sock.bind((LOOPBACK, 0))
            sock.setblocking(False)
        #: where A and B really are (learned from their candidates).
        self.real_a: Optional[Tuple[str, int]] = None
        self.real_b: Optional[Tuple[str, int]] = None
        self.stats: Dict[str, DirectionStats] = {"a->b": DirectionStats(), "b->a": DirectionStats()}
        self._queue: List[Tuple[float, int, str, bytes]] = []
        self._counter = 0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._thread = threading.Thread(target=self._run, name="test-loss-relay", daemon=True)
        self._thread.start()

    @property
    def port_a(self) -> int:
        """The port A must believe B is at."""
        return self.sock_a.getsockname()[1]

    @property
    def port_b(self) -> int:
        """The port B must believe A is at."""
        return self.sock_b.getsockname()[1]

    def rewrite(self, candidate: Any, seen_by: str) -> Any:
        """Rewrite an aiortc ``RTCIceCandidate`` of the *other* party as seen by ``seen_by`` (``"a"``/``"b"``).

        Only 127.0.0.1 UDP candidates are relayed; anything else is returned unchanged (and stays unusable
        in the tests' network namespace).
        """
        if candidate is None or getattr(candidate, "ip", None) != LOOPBACK or candidate.protocol.lower() != "udp":
            return candidate
        if seen_by == "a":
            self.real_b = (candidate.ip, candidate.port)
            candidate.port = self.port_a
        else:
            self.real_a = (candidate.ip, candidate.port)
            candidate.port = self.port_b
        return candidate

    def rewrite_sdp(self, sdp: str, seen_by: str) -> str:
        """Rewrite every 127.0.0.1 UDP ``a=candidate`` line of ``sdp`` (the other party's) for ``seen_by``."""
        from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

        out = []
        for line in sdp.split("\r\n"):
            if line.startswith("a=candidate:"):
                cand = candidate_from_sdp(line[len("a="):].split(":", 1)[1])
                if cand.ip == LOOPBACK and cand.protocol.lower() == "udp":
                    line = "a=candidate:" + candidate_to_sdp(self.rewrite(cand, seen_by))
                else:
                    continue  # nothing but loopback may be a target
            out.append(line)
        return "\r\n".join(out)

    def _impair(self, direction: str, data: bytes, now: float) -> Optional[float]:
        """When to send ``data`` (``None``: drop it)."""
        stats = self.stats[direction]
        if not is_rtp(data):
            return now
        stats.rtp += 1
        if direction not in self.impaired:
            return now
        if self.loss and self._rng.random() < self.loss:
            stats.dropped += 1
            return None
        if self.jitter:
            stats.delayed += 1
            return now + self._rng.uniform(0.0, self.jitter)
        return now

    def _run(self) -> None:
        socks = [self.sock_a, self.sock_b]
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            timeout = 0.05
            if self._queue:
                timeout = max(0.0, min(timeout, self._queue[0][0] - time.monotonic()))
            try:
                readable, _, _ = select.select(socks, [], [], timeout)
            except (OSError, ValueError):
                return
            now = time.monotonic()
            for sock in readable:
                for _ in range(64):
                    try:
                        data, _addr = sock.recvfrom(65536)
                    except (BlockingIOError, OSError):
                        break
                    direction = "a->b" if sock is self.sock_a else "b->a"
                    when = self._impair(direction, data, now)
                    if when is None:
                        continue
                    self._counter += 1
                    heapq.heappush(self._queue, (when, self._counter, direction, data))
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, direction, data = heapq.heappop(self._queue)
                self._send(direction, data)

    def _send(self, direction: str, data: bytes) -> None:
        if direction == "a->b":
            sock, target = self.sock_b, self.real_b
        else:
            sock, target = self.sock_a, self.real_a
        if target is None or target[0] != LOOPBACK:
            return
        try:
            sock.sendto(data, target)
            self.stats[direction].forwarded += 1
        except OSError:
            pass

    def close(self) -> None:
        """Stop the thread and close the sockets."""
        self._stop.set()
        self._thread.join(2.0)
        for sock in (self.sock_a, self.sock_b):
            sock.close()

    def __enter__(self) -> "LossRelay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
