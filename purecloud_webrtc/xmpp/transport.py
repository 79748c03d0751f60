"""The WebSocket transport: one named thread per connection that only moves frames.

websocket-client's blocking socket lives on a thread of its own
(``pcw-ws-N``).  The thread connects, then reads frames and hands each text
frame to the core loop with ``loop.call_soon_threadsafe``; it never parses or
decides anything.  Sending happens on the caller's thread (the core loop),
under websocket-client's own send lock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
import threading
from typing import Callable, Dict, Optional

import websocket

from ..errors import ConnectionFailedError, TlsError

__all__ = ["WebSocketTransport"]

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class WebSocketTransport:
    """A client WebSocket with subprotocol ``xmpp`` whose frames are delivered to an asyncio loop.

    :param url: ``ws://`` or ``wss://`` URL.
    :param loop: the core loop that receives frames.
    :param on_frame: called on ``loop`` with each text frame.
    :param on_closed: called on ``loop`` once, with a reason, when the socket is gone.
    """

    def __init__(
        self,
        url: str,
        loop: asyncio.AbstractEventLoop,
        on_frame: Callable[[str], None],
        on_closed: Callable[[str], None],
        *,
        connect_timeout: float = 10.0,
        max_frame_bytes: int = 1 << 20,
        sslopt: Optional[Dict[str, object]] = None,
        on_oversized: Optional[Callable[[int], None]] = None,
    ) -> None:
        self.url = url
        self._loop = loop
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._connect_timeout = connect_timeout
        self._max_frame_bytes = max_frame_bytes
        self._sslopt = sslopt
        self._on_oversized = on_oversized
        self._ws: Optional[websocket.WebSocket] = None
        self._opened: Optional[asyncio.Future[None]] = None
        self._closing = False
        self._closed_reported = False
        self.thread = threading.Thread(target=self._run, name=f"pcw-ws-{next(_ids)}", daemon=True)

    async def open(self) -> None:
        """Connect (on the transport thread) and return once the WebSocket is open.

        :raises ConnectionFailedError: when the host cannot be reached or refuses the upgrade.
        """
        self._opened = self._loop.create_future()
        self.thread.start()
        await self._opened

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: the SDK is gone, nobody is listening

    def _set_opened(self, error: Optional[BaseException]) -> None:
        if self._opened is None or self._opened.done():
            return
        if error is None:
            self._opened.set_result(None)
        else:
            self._opened.set_exception(error)

    def _report_closed(self, reason: str) -> None:
        if not self._closed_reported:
            self._closed_reported = True
            self._on_closed(reason)

    def _run(self) -> None:
        try:
            ws = websocket.create_connection(
                self.url,
                subprotocols=["xmpp"],
                timeout=self._connect_timeout,
                enable_multithread=True,
                # Our own bytes.decode() rejects invalid UTF-8 at C speed; websocket-client checks it in pure
                # Python, which holds the GIL for seconds on a hostile 1 MiB frame and starves the audio.
                skip_utf8_validation=True,
                sslopt=self._sslopt,
            )
        except ssl.SSLError as exc:
            error = TlsError(f"TLS failed for the streaming WebSocket {self.url}: {exc}", url=self.url)
            self._post(self._set_opened, error)
            return
        except Exception as exc:  # any failure to connect is reported to the waiting coroutine
            error = ConnectionFailedError(f"cannot open the streaming WebSocket {self.url}: {exc}", url=self.url)
            self._post(self._set_opened, error)
            return
        ws.settimeout(None)
        self._ws = ws
        if self._closing:
            self._shutdown(ws)
        self._post(self._set_opened, None)
        reason = "closed"
        try:
            while True:
                opcode, data = ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    if len(data) > self._max_frame_bytes:
                        log.warning("dropping an oversized frame (%d bytes)", len(data))
                        if self._on_oversized is not None:
                            self._post(self._on_oversized, len(data))
                        continue
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError:
                        log.warning("dropping a frame that is not UTF-8")
                        continue
                    self._post(self._on_frame, text)
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    reason = "closed by server"
                    break
                elif opcode == websocket.ABNF.OPCODE_BINARY:
                    log.warning("ignoring a binary WebSocket frame (%d bytes)", len(data))
        except websocket.WebSocketConnectionClosedException:
            reason = "closed by server" if not self._closing else "closed"
        except (OSError, websocket.WebSocketException) as exc:
            reason = "closed" if self._closing else f"socket error: {exc}"
        finally:
            try:
                ws.close(timeout=0.2)
            except Exception:  # the socket is already broken; nothing more to do
                pass
            finally:
                ws.shutdown()  # always release the file descriptor
            self._post(self._report_closed, reason)

    def send(self, text: str) -> None:
        """Send one text frame.

        :raises ConnectionFailedError: when the socket is not open.
        """
        ws = self._ws
        if ws is None or not ws.connected:
            raise ConnectionFailedError("the streaming WebSocket is not connected", url=self.url)
        try:
            ws.send(text)
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionFailedError(f"sending on the streaming WebSocket failed: {exc}", url=self.url) from exc

    @staticmethod
    def _shutdown(ws: websocket.WebSocket) -> None:
        sock = ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close the socket without a closing handshake; the reader thread then ends.

        Safe from any thread and more than once.
        """
        self._closing = True
        ws = self._ws
        if ws is not None:
            self._shutdown(ws)

    def join(self, timeout: float = 2.0) -> None:
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)
