"""The Flask and Django samples run as real servers on 127.0.0.1 against the emulator, driven over HTTP.

Each sample is started as a subprocess (its own SDK in its own process, as in production), told where the
emulator is through its environment; the test places a call over HTTP, sees it live in the sessions
endpoint, checks the audio with the emulator (the far end hears the app's 660 Hz tone; the app receives
frames), hangs up over HTTP and stops the server with SIGTERM, which must close the SDK.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
import requests

from helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
TOL = 5.0


class ServerProcess:
    """A sample server as a subprocess; its output is collected on a thread so the pipe never fills."""

    def __init__(self, args: List[str], env: Dict[str, str], cwd: Path = ROOT) -> None:
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **env)
        self.proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, name="test-sample-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, prefix: str, timeout: float = 60) -> str:
        def find() -> Optional[str]:
            # "in", not startswith: another thread's output may begin the same line.
            if self.proc.poll() is not None and not any(prefix in line for line in self.lines):
                raise AssertionError(f"the sample exited ({self.proc.returncode}):\n{self.output}")
            return next((line.strip() for line in self.lines if prefix in line), None)
        return wait_until(find, timeout, f"{prefix!r} from the sample")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the sample did not stop on SIGTERM:\n{self.output}") from None
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return rc


def listening_url(line: str) -> str:
    """The URL in the sample's "listening on" line (other threads' output may share the line: the test merges
    stderr into stdout, and the SDK logs events from its own thread)."""
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    assert match, line
    return match.group(0)


def emulator_env(emulator: Any) -> Dict[str, str]:
    return {"GENESYS_ACCESS_TOKEN": emulator.access_token, "GENESYS_API_BASE_URL": emulator.api_base_url,
            "GENESYS_STREAMING_BASE_URL": emulator.streaming_base_url,
            # No GENESYS_ICE_HOST_ADDRESSES: loopback service URLs mean loopback ICE (before, a 201 and a call
            # that silently never appeared).
            "GENESYS_SOURCE": "tone:660"}


def drive_one_call(base: str, emulator: Any) -> str:
    """Place a call over HTTP, check it is live with audio both ways, hang up over HTTP."""
    response = requests.post(f"{base}/calls", json={"phone_number": "+13175550123"}, timeout=30)
    assert response.status_code == 201, response.text
    conversation_id = response.json()["conversation_id"]
    call = emulator.call_by_conversation(conversation_id)
    call.wait_state("connected", timeout=20)

    def live() -> Any:
        listed = requests.get(f"{base}/sessions", timeout=10).json()
        return listed if listed and listed[0]["connection_state"] == "connected" and \
            listed[0]["frames_received"] > 25 else None

    listed = wait_until(live, 20, "a connected session with audio in GET /sessions")
    assert [(s["conversation_id"], s["state"], s["muted"]) for s in listed] == [(conversation_id, "active", False)]
    if "worker" in response.json():  # the Flask sample says which process placed and holds the call
        assert listed[0]["worker"] == response.json()["worker"]
    call.wait_for_audio(timeout=15, min_seconds=1.0)
    assert abs(call.heard_frequency(seconds=1.0) - 660.0) <= TOL
    assert requests.delete(f"{base}/calls/{conversation_id}", timeout=30).status_code == 204
    assert requests.get(f"{base}/sessions", timeout=10).json() == []
    call.wait_state("ended", timeout=15)
    assert requests.delete(f"{base}/calls/{conversation_id}", timeout=30).status_code == 404
    bad = requests.post(f"{base}/calls", json={}, timeout=10)
    assert bad.status_code == 400
    if "worker" in response.json():  # the Flask sample answers errors in JSON
        assert bad.json()["message"] == "phone_number is required", bad.text
    return conversation_id


def check_framework_sample(server: "ServerProcess", emulator: Any, started_marker: str) -> None:
    """Drive one call through a web sample, then check its SDK events reached the framework, in order."""
    try:
        base = listening_url(server.wait_for_line("listening on "))
        conversation_id = drive_one_call(base, emulator)
    finally:
        rc = server.stop()
    out = server.output
    assert rc == 0, out
    started = out.index(started_marker)
    assert out.index("sdk event ready") < out.index("sdk event pendingSession") < started
    assert started < out.index("sdk event change:connectionState") < out.index("sdk event sessionEnded")
    assert conversation_id in out
    assert out.rstrip().endswith("sdk closed"), out


@pytest.mark.timeout(120)
def test_flask_sample(emulator):
    # SDK events reach Flask's logger through the app's blinker signal.
    server = ServerProcess(["samples/flask_app/app.py"], emulator_env(emulator))
    check_framework_sample(server, emulator, "sdk event sessionStarted")


@pytest.mark.timeout(120)
def test_django_sample(emulator):
    # SDK events reach Django's logging through the app's Django signal.
    server = ServerProcess(["manage.py", "serve"], emulator_env(emulator), cwd=ROOT / "samples" / "django_app")
    check_framework_sample(server, emulator, "softphone: sdk event sessionStarted")


@pytest.mark.timeout(120)
def test_aiohttp_sample_on_the_asyncio_twin(emulator):
    server = ServerProcess(["samples/aiohttp_app.py"], emulator_env(emulator))
    try:
        base = listening_url(server.wait_for_line("listening on "))
        conversation_id = drive_one_call(base, emulator)
    finally:
        rc = server.stop()
    out = server.output
    assert rc == 0, out
    started = out.index("sdk event sessionStarted")
    assert out.index("sdk event ready") < out.index("sdk event pendingSession") < started
    assert started < out.index("sdk event sessionEnded")
    assert conversation_id in out
    assert out.rstrip().endswith("sdk closed"), out


def in_pair(call: Callable[[int], None], first: int, second: int) -> None:
    """Run ``call(first)`` and ``call(second)`` at once; re-raise what either raised."""
    errors: List[BaseException] = []

    def run(arg: int) -> None:
        try:
            call(arg)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(arg,)) for arg in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]


@pytest.mark.timeout(180)
def test_flask_sample_under_gunicorn_with_two_workers_answers_each_call_in_its_worker(emulator):
    """Two gunicorn workers, one user: each worker's SDK answers the calls that worker placed (before, whichever
    won the race did: ``GET /sessions`` showed half the calls and ``DELETE`` answered 404 for some)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(emulator_env(emulator), GENESYS_SOURCE="silence")
    server = ServerProcess(["-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "--chdir",
                            str(ROOT / "samples" / "flask_app"), "--graceful-timeout", "20", "app:create_app()"], env)
    base = f"http://127.0.0.1:{port}"
    try:
        def both_workers_up() -> bool:
            try:
                requests.get(f"{base}/sessions", timeout=5)
            except requests.ConnectionError:
                return False
            return len(emulator.connected_resources()) >= 2

        wait_until(both_workers_up, 90, "two gunicorn workers with connected SDKs")
        # The kernel hands each connection to whichever worker accepts first, and an idle worker may win every
        # time: POST in concurrent pairs (a busy worker leaves the next connection to the other) until both
        # workers have placed calls.
        placed: Dict[str, int] = {}

        def post(n: int) -> None:
            response = requests.post(f"{base}/calls", json={"phone_number": f"+13175550{n:03d}"}, timeout=30)
            assert response.status_code == 201, response.text
            placed[response.json()["conversation_id"]] = response.json()["worker"]

        n = 0
        while len(placed) < 6 or len(set(placed.values())) < 2:
            assert n < 40, f"one worker served every POST: {placed}"
            in_pair(post, n, n + 1)
            n += 2
        for cid in placed:
            emulator.call_by_conversation(cid).wait_state("connected", timeout=30)
        seen: Dict[int, set] = {}

        def everything_seen() -> bool:
            for item in requests.get(f"{base}/sessions", timeout=10).json():
                seen.setdefault(item["worker"], set()).add(item["conversation_id"])
            return set().union(*seen.values()) >= set(placed) if seen else False

        wait_until(everything_seen, 30, "every call in some worker's GET /sessions")
        for cid, worker in placed.items():
            assert cid in seen[worker], f"{cid} placed by {worker} is not live there: {seen}"
            assert all(cid not in cids for pid, cids in seen.items() if pid != worker), seen
        # A DELETE that reaches the other worker gets a JSON 404 naming the call.
        for cid in placed:
            outcomes: List[int] = []

            def delete(arg: int) -> None:
                if arg:  # keeps one worker busy, so the DELETE may land on the other one
                    requests.get(f"{base}/sessions", timeout=30).raise_for_status()
                    return
                response = requests.delete(f"{base}/calls/{cid}", timeout=30)
                assert response.status_code in (204, 404), response.text
                if response.status_code == 404:
                    assert cid in response.json()["message"], response.text
                outcomes.append(response.status_code)

            while 204 not in outcomes:
                assert len(outcomes) < 40, f"no worker ended {cid}: {outcomes}"
                in_pair(delete, 0, 1)
            emulator.call_by_conversation(cid).wait_state("ended", timeout=15)
    finally:
        rc = server.stop()
    assert rc == 0, server.output
