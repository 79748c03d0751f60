"""Prosody on 127.0.0.1 and a plain XMPP client, for the interop tests (docs/protocol.rst §13.4).

The fixture installs nothing: ``scripts/bootstrap.sh`` installs the ``prosody``
package.  It writes a private configuration from ``tests/prosody/prosody.cfg.lua.in``
(free ports, loopback only, our own Lua modules from ``tests/prosody/plugins``),
starts ``prosody -F`` (as the ``prosody`` user when run as root, because Prosody
refuses to run as root), waits until the WebSocket endpoint answers, and registers
users with ``prosodyctl``.  If anything of that fails, the test fails with the
reason and the end of Prosody's log: nothing is skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest
import websocket

from purecloud_webrtc import _xml as X

HERE = Path(__file__).resolve().parent
PROSODY_DIR = HERE.parent / "prosody"
#: The emulated organisation whose domain Prosody serves (JIDs ``{hex}@prosodytest.orgspan.com``).
ORG_NAME = "prosodytest"
DOMAIN = f"{ORG_NAME}.orgspan.com"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProsodyServer:
    """One Prosody process on loopback, restartable, with a private folder.

    :param domain: the one ``VirtualHost`` it serves.
    """

    def __init__(self, domain: str = DOMAIN) -> None:
        self.domain = domain
        prosody = shutil.which("prosody")
        prosodyctl = shutil.which("prosodyctl")
        if prosody is None or prosodyctl is None:
            pytest.fail("Prosody is not installed (no 'prosody'/'prosodyctl' on PATH): "
                        "run `bash scripts/bootstrap.sh` as root, which installs the Debian package 'prosody'",
                        pytrace=False)
        self.prosody = prosody
        self.prosodyctl = prosodyctl
        self.run_as: Optional[str] = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("prosody")
                self.run_as = "prosody"
            except KeyError:
                self.run_as = None  # fall back to run_as_root in the config
        # Not under pytest's tmp folders: those are mode 700 and the prosody user could not enter them.
        self.dir = Path(tempfile.mkdtemp(prefix="pcw-prosody-"))
        self.c2s_port = _free_port()
        self.http_port = _free_port()
        self.process: Optional["subprocess.Popen[bytes]"] = None
        self.config = self.dir / "prosody.cfg.lua"
        self._write_config()

    @property
    def ws_url(self) -> str:
        """The RFC 7395 endpoint, ``ws://127.0.0.1:PORT/xmpp-websocket``."""
        return f"ws://127.0.0.1:{self.http_port}/xmpp-websocket"

    def _write_config(self) -> None:
        plugins = self.dir / "plugins"
        shutil.copytree(PROSODY_DIR / "plugins", plugins)
        (self.dir / "data").mkdir()
        text = (PROSODY_DIR / "prosody.cfg.lua.in").read_text()
        for key, value in {
            "@DIR@": str(self.dir),
            "@PLUGINS@": str(plugins),
            "@C2S_PORT@": str(self.c2s_port),
            "@HTTP_PORT@": str(self.http_port),
            "@DOMAIN@": self.domain,
            "@RUN_AS_ROOT@": "run_as_root = true" if os.geteuid() == 0 and self.run_as is None else "",
        }.items():
            text = text.replace(key, value)
        self.config.write_text(text)
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def log_tail(self, lines: int = 30) -> str:
        """The end of Prosody's log (for failure messages)."""
        try:
            return "\n".join((self.dir / "prosody.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def _command(self, *args: str) -> List[str]:
        if self.run_as is not None:
            return ["runuser", "-u", self.run_as, "--", *args]
        return list(args)

    def start(self, timeout: float = 15.0) -> None:
        """Start Prosody and wait until its WebSocket endpoint answers an HTTP request.

        :raises pytest.fail.Exception: with the reason and the log when it does not come up.
        """
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = subprocess.Popen(
            self._command(self.prosody, "-F", "--config", str(self.config)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                out = self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
                pytest.fail(f"Prosody exited at start with code {self.process.returncode}:\n{out}\n"
                            f"log:\n{self.log_tail()}", pytrace=False)
            if self._answers():
                return
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"Prosody did not serve {self.ws_url} within {timeout} s; log:\n{self.log_tail()}",
                            pytrace=False)
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=1) as sock:
                sock.sendall(b"GET /xmpp-websocket HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/")
        except OSError:
            return False

    def kill(self) -> None:
        """Kill Prosody at once (SIGKILL: no stream close, sockets just die)."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        """Stop Prosody politely (SIGTERM), killing it if it lingers."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
        if proc.stdout is not None:
            proc.stdout.close()

    def register(self, local: str, password: str) -> str:
        """Create (or reset) account ``local@domain`` with ``password`` using ``prosodyctl``; returns the JID."""
        result = subprocess.run(
            [self.prosodyctl, "--config", str(self.config), "register", local, self.domain, password],
            capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            pytest.fail(f"prosodyctl register {local} {self.domain} failed ({result.returncode}): "
                        f"{result.stdout}{result.stderr}", pytrace=False)
        return f"{local}@{self.domain}"

    def cleanup(self) -> None:
        # SIGKILL: a polite stop costs Prosody ~2 s (it lingers for its connections) and the
        # folder is thrown away anyway.
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RawXmppClient:
    """A deliberately plain, synchronous XMPP client (websocket-client + our XML helpers).

    It plays "someone else on the server" in the tests: it sends hand-written stanzas and
    collects every stanza it receives, so a test can assert exactly what Prosody routed.
    """

    def __init__(self, url: str, jid: str, password: str, resource: str = "raw") -> None:
        self.jid = jid
        self.ws = websocket.create_connection(url, subprotocols=["xmpp"], timeout=10)
        self.received: List[X.Element] = []
        domain = jid.split("@", 1)[1]
        self._open(domain)
        import base64

        payload = base64.b64encode(f"\0{jid}\0{password}".encode()).decode()
        self.send_raw(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>")
        answer = self._next()
        assert X.split(answer.tag)[1] == "success", X.to_string(answer)
        self._open(domain)
        self.send_raw(f"<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                      f"<resource>{resource}</resource></bind></iq>")
        bound = self.expect(lambda el: el.get("id") == "bind1")
        self.full_jid = X.child_text(bound.find(X.q("bind", "bind")), "bind", "jid")

    def _open(self, domain: str) -> None:
        self.send_raw(f"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='{domain}' version='1.0'/>")
        assert X.split(self._next().tag)[1] == "open"
        assert X.split(self._next().tag)[1] == "features"

    def _next(self, timeout: float = 10.0) -> X.Element:
        self.ws.settimeout(timeout)
        return X.parse(self.ws.recv())

    def send_raw(self, text: str) -> None:
        self.ws.send(text)

    def expect(self, predicate: Callable[[X.Element], bool], timeout: float = 10.0) -> X.Element:
        """The first stanza (already received or arriving within ``timeout``) that matches."""
        for el in self.received:
            if predicate(el):
                self.received.remove(el)
                return el
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching stanza within {timeout} s; got "
                                     f"{[X.to_string(e)[:200] for e in self.received]}")
            try:
                el = self._next(left)
            except websocket.WebSocketTimeoutException:
                continue
            if predicate(el):
                return el
            self.received.append(el)

    def drain(self, seconds: float) -> List[X.Element]:
        """Everything that arrives within ``seconds`` (and what was kept before)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.received.append(self._next(max(0.01, deadline - time.monotonic())))
            except websocket.WebSocketTimeoutException:
                break
        out, self.received = self.received, []
        return out

    def close(self) -> None:
        try:
            self.send_raw("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        except Exception:
            pass
        self.ws.close()
