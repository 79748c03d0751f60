"""A far end on Google's libwebrtc instead of aiortc (for interop tests).

With ``Emulator(remote_party=LibwebrtcParty(script=".../node/libwebrtc_party.js"))``
each call's media side is a Node.js process running ``@roamhq/wrtc`` (libwebrtc):
it makes libwebrtc's own full audio offer (Opus with fmtp, RED, G722, PCMU/PCMA,
CN, telephone-event...), plays a tone and streams back what it hears.  The gateway
side (XEP-0353, Jingle) is unchanged: :class:`LibwebrtcPeer` offers the few
``RTCPeerConnection`` methods :class:`~purecloud_webrtc.emulator.party.EmulatedCall`
uses, so the same call code drives either stack.

Network rule: libwebrtc gathers host candidates on every interface, so its offer is
filtered to 127.0.0.1 before it leaves (the SDK then only ever sends there), and
candidates the SDK trickles are filtered the same way by the call.

Threads: everything runs on the emulator's loop; the Node process is a child of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..media import BufferSink

__all__ = ["LibwebrtcParty", "LibwebrtcPeer"]

_RATE = 48000


@dataclass(frozen=True)
class LibwebrtcParty:
    """Where the libwebrtc party lives.

    :param script: path of ``node/libwebrtc_party.js`` (its folder has ``node_modules/@roamhq/wrtc``).
    :param node: the Node.js executable.
    :param timeout: seconds to wait for the offer and each answer.
    """

    script: str
    node: str = "node"
    timeout: float = 20.0


class LibwebrtcPeer:
    """One call's libwebrtc peer in a Node process, shaped like the parts of aiortc's peer the call uses.

    :param party: where the Node script is.
    :param tone_hz: the tone it plays.
    :param sink: where what it hears goes (48 kHz mono int16).
    :param on_state: called with each ``connectionState`` libwebrtc reports.
    :param logger: the emulator logger.
    """

    def __init__(self, party: LibwebrtcParty, *, tone_hz: float, sink: "BufferSink",
                 on_state: Callable[[str], None], logger: logging.Logger) -> None:
        self.party = party
        self.tone_hz = tone_hz
        self.sink = sink
        self.on_state = on_state
        self.log = logger
        self.connectionState = "new"
        self._proc: Optional[asyncio.subprocess.Process] = None
        self._reader: Optional["asyncio.Task[None]"] = None
        self._stderr_reader: Optional["asyncio.Task[None]"] = None
        self._stderr_tail = b""
        self._waiters: Dict[str, "asyncio.Future[Dict[str, Any]]"] = {}
        self._closed = False
        self._mids: list[str] = []

    async def _start(self) -> None:
        node = shutil.which(self.party.node) or self.party.node
        self._proc = await asyncio.create_subprocess_exec(
            node, self.party.script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=16 << 20)
        self._reader = asyncio.ensure_future(self._read())
        self._stderr_reader = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        # Drained all along so Node never blocks on a full pipe; the tail explains a crash.
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            chunk = await self._proc.stderr.read(4096)
            if not chunk:
                return
            self._stderr_tail = (self._stderr_tail + chunk)[-4000:]

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                self.log.warning("libwebrtc party: unparsable line %r", line[:200])
                continue
            kind = event.get("event")
            if kind == "audio":
                pcm = np.frombuffer(base64.b64decode(event["pcm"]), dtype="<i2")
                channels = int(event.get("channels") or 1)
                if channels > 1:
                    pcm = pcm[: pcm.size - pcm.size % channels].reshape(-1, channels).mean(axis=1)
                rate = int(event.get("rate") or _RATE)
                if rate != _RATE and pcm.size:
                    # libwebrtc's sink normally delivers 48 kHz; resample anything else for the analysis.
                    n = int(round(pcm.size * _RATE / rate))
                    pcm = np.interp(np.linspace(0, pcm.size - 1, n), np.arange(pcm.size), pcm)
                self.sink.extend(np.asarray(pcm, dtype=np.int16))
            elif kind == "state":
                self.connectionState = str(event.get("state"))
                self.on_state(self.connectionState)
            else:
                waiter = self._waiters.pop(str(event.get("op") if kind == "error" else kind), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event)
                elif kind == "error":
                    self.log.warning("libwebrtc party: %s failed: %s", event.get("op"), event.get("message"))
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(RuntimeError("the libwebrtc party exited"))
        if not self._closed:
            if self._stderr_reader is not None:
                await asyncio.wait([self._stderr_reader], timeout=2)
            self.log.warning("libwebrtc party exited: %s", self._stderr_tail.decode(errors="replace")[-2000:])

    def _send(self, cmd: Dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def _request(self, cmd: Dict[str, Any], reply: str) -> Dict[str, Any]:
        future: "asyncio.Future[Dict[str, Any]]" = asyncio.get_running_loop().create_future()
        self._waiters[reply] = future
        self._waiters[cmd["op"]] = future  # an "error" event names the op
        self._send(cmd)
        try:
            event = await asyncio.wait_for(future, self.party.timeout)
        finally:
            self._waiters.pop(reply, None)
            self._waiters.pop(cmd["op"], None)
        if event.get("event") == "error":
            raise RuntimeError(f"libwebrtc refused {cmd['op']}: {event.get('message')}")
        return event

    # -- what EmulatedCall uses ------------------------------------------------------

    async def create_offer(self) -> str:
        """Start Node, have libwebrtc make its offer (after ICE gathering); returns it filtered to 127.0.0.1."""
        from .party import filter_sdp_candidates

        await self._start()
        event = await self._request({"op": "offer", "tone_hz": self.tone_hz}, "offer")
        sdp, dropped = filter_sdp_candidates(str(event["sdp"]))
        self._mids = [line[6:].strip() for line in sdp.splitlines() if line.startswith("a=mid:")]
        if dropped:
            self.log.debug("libwebrtc offer: %d candidate(s) not on 127.0.0.1 left out", len(dropped))
        return sdp

    async def setRemoteDescription(self, description: Any) -> None:  # noqa: N802 - aiortc's name
        await self._request({"op": "answer", "sdp": description.sdp}, "answered")

    async def addIceCandidate(self, candidate: Any) -> None:  # noqa: N802 - aiortc's name
        if candidate is None:
            self._send({"op": "candidate", "candidate": None})
            return
        from aiortc.sdp import candidate_to_sdp

        # libwebrtc insists on an m-line index beside the mid.
        mid = candidate.sdpMid
        index = self._mids.index(mid) if mid in self._mids else 0
        self._send({"op": "candidate", "candidate": "candidate:" + candidate_to_sdp(candidate),
                    "mid": mid, "index": index})

    def getTransceivers(self) -> list[Any]:  # noqa: N802 - aiortc's name
        """None to hook into: RTP-level extras (the emulator's RFC 4733 DTMF) are aiortc internals."""
        return []

    async def close(self) -> None:
        """Stop the Node process (politely, then by force)."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            try:
                self._send({"op": "close"})
                assert proc.stdin is not None
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), 5)
            except (asyncio.TimeoutError, BrokenPipeError, ConnectionResetError):
                proc.kill()
                await proc.wait()
        for task in (self._reader, self._stderr_reader):
            if task is not None:
                try:
                    await asyncio.wait_for(task, 2)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    task.cancel()
        # asyncio's Process has no close(); without it the transport is only closed by the
        # garbage collector, after the emulator's loop is gone (ResourceWarning, RuntimeError).
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()
