"""A fault-injecting TCP proxy on 127.0.0.1, for resilience tests of the SDK and of your application.

Sits between the SDK and the emulator's streaming port and, on command, cuts
every connection, blackholes them (stops forwarding but keeps the sockets open:
a half-open link, no FIN), delays traffic, or refuses new connections.  Runs its
own asyncio loop on a thread; bounded: it only ever forwards between one
listening port and one upstream port on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable, Optional, Set

__all__ = ["FaultProxy"]


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:upstream_port`` and breaks the link on command.

    Point the SDK's ``streaming_base_url`` at :attr:`url` to put it in front of the emulator's
    streaming service::

        with Emulator() as emu, FaultProxy(emu.port) as proxy:
            sdk = PureCloudWebrtcSdk(..., streaming_base_url=proxy.url)
            proxy.blackhole()   # a half-open socket: only pings can tell
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.mode = "pass"  # pass | blackhole | refuse
        self.delay = 0.0
        self.accepted = 0
        #: blackhole_after(): the server-to-client bytes that switch to blackhole once forwarded
        self._trigger: Optional[bytes] = None
        self.triggered = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: Set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._shutdown)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(asyncio.sleep(0.05))
        self._loop.close()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._loop.call_later(0.1, self._loop.stop)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "refuse":
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer, downstream=True),
                             return_exceptions=True)
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    downstream: bool = False) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.mode == "blackhole":
                    continue  # swallowed: the peer never hears of it, and no FIN is sent
                writer.write(data)
                if downstream and self._trigger is not None and self._trigger in data:
                    # Delivered; from now on nothing passes either way (the client's answer is lost).
                    self._trigger = None
                    self.mode = "blackhole"
                    self.triggered.set()
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if self.mode != "blackhole":
                writer.transport.abort()

    def _call(self, fn: Callable[[], None]) -> None:
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def cut(self) -> None:
        """Reset every proxied connection now (both sides see the socket die)."""

        def cut() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

        self._call(cut)

    def blackhole(self) -> None:
        """Stop forwarding, keep sockets open: a half-open link with no FIN."""
        self.mode = "blackhole"

    def blackhole_after(self, needle: str) -> None:
        """Forward until the service sends a frame containing ``needle`` (say ``"<propose"`` or
        ``"session-initiate"``), deliver it, then blackhole: the fault lands exactly between that message
        and the client's answer, which is lost.  :attr:`triggered` is set when it fires.

        (Only the service-to-client direction can be matched: a WebSocket client masks its frames.)
        """
        self.triggered.clear()
        self._trigger = needle.encode()

    def restore(self) -> None:
        """Forward again (new connections); blackholed ones are cut so they cannot linger."""
        if self.mode == "blackhole":
            self.cut()
        self.mode = "pass"
        self.delay = 0.0

    def refuse(self) -> None:
        """Cut existing connections and refuse new ones until :meth:`restore`."""
        self.mode = "refuse"
        self.cut()
