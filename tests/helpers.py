"""Small helpers shared by the test modules (import as ``from helpers import wait_until``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


def run_python(args: Any, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    """Run ``python ARGS`` from the repository root as a user would (no token: the bundled emulator)."""
    env = dict(os.environ)
    env.pop("GENESYS_ACCESS_TOKEN", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy (returns its value) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def answer_call(sdk: Any, emulator: Any, tone: float = 440.0, sdk_tone: float = 880.0, **accept: Any) -> Any:
    """Ring ``sdk`` from ``emulator`` (far end playing ``tone``), answer with ``sdk_tone`` into a BufferSink,
    and wait until the call is connected; returns ``(session, call)``."""
    from purecloud_webrtc.media import BufferSink, ToneSource

    with sdk.expect_event("pendingSession") as ev:
        call = emulator.inbound_call(tone_hz=tone)
    with sdk.expect_event("sessionStarted") as started:
        accept.setdefault("source", ToneSource(sdk_tone))
        accept.setdefault("sink", BufferSink())
        sdk.accept_pending_session(ev.value.id, **accept)
    call.wait_state("connected", timeout=15)
    return started.value, call


#: Remote candidate hosts the SDK must never send to (with a loopback-only ice_host_addresses), and why.
HOSTILE_CANDIDATE_HOSTS = {
    "224.0.0.251": "multicast address",
    "239.255.255.250": "multicast address",
    "255.255.255.255": "broadcast address",
    "0.0.0.0": "unspecified address",
    "0.1.2.3": "'this network' address",
    "169.254.169.254": "link-local address",
    "169.254.1.1": "link-local address",
    "240.0.0.1": "reserved address",
    "fe80::1": "link-local address",
    "::": "unspecified address",
    "ff02::1": "multicast address",
    "::ffff:169.254.169.254": "link-local address",
    "10.1.2.3": "not loopback (ice_host_addresses is loopback only)",
    "192.0.2.10": "not loopback (ice_host_addresses is loopback only)",
    "attacker.example": "host name (not resolved)",
    "4f1c2e3a-0000-4000-8000-000000000000.local": "host name (not resolved)",
}
