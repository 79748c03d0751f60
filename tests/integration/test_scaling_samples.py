"""Many agents, many processes: samples/multi_agent.py and the Celery worker sample with a real Redis.

Redis (Debian's redis-server, installed by scripts/bootstrap.sh) is started here on 127.0.0.1 with a
free port, no persistence, and stopped afterwards.  The Celery workers are real ``celery worker``
processes (prefork pool, one pool process each), one per emulated user, each on its own queue.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

from helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
CELERY_DIR = ROOT / "samples" / "celery_worker"
TOL = 5.0


@pytest.mark.timeout(90)
def test_multi_agent_sample():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GENESYS_ACCESS_TOKEN", None)
    proc = subprocess.run([sys.executable, "samples/multi_agent.py", "--agents", "3", "--seconds", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=80, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if ": conversation " in line]
    assert len(lines) == 3, proc.stdout
    jids = {line.split("(")[-1] for line in proc.stdout.splitlines() if "connected as" in line}
    assert len(jids) == 3  # three users, three streaming connections
    for number, line in enumerate(lines, start=1):
        # Each agent hears its own caller and its caller hears that agent: no call crossed.
        assert line.startswith(f"agent {number}: ")
        found = re.search(r"we hear ([0-9.]+) Hz \(caller played ([0-9.]+)\), "
                          r"caller hears ([0-9.]+) Hz \(we played ([0-9.]+)\)", line)
        assert found, line
        heard, played, caller_heard, we_played = (float(x) for x in found.groups())
        assert abs(heard - played) <= TOL and played == 900.0 + 100.0 * number, line
        assert abs(caller_heard - we_played) <= TOL and we_played == 400.0 + 100.0 * number, line
    assert proc.stdout.rstrip().endswith("3 agents, 3 calls, all answered by their own agent")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (no persistence), stopped after the module."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server):
        pytest.fail("redis-server is not installed (scripts/bootstrap.sh installs Debian's redis-server)")
    workdir = tempfile.mkdtemp(prefix="pcw-redis-")
    for _ in range(3):  # a port picked free can be taken before redis binds it: try another
        port = _free_port()
        proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                 "--appendonly", "no", "--dir", workdir, "--daemonize", "no"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            output = proc.communicate(timeout=10)[0] if proc.poll() is not None else "(still running)"
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
            if "Address already in use" in output:
                continue
            pytest.fail(f"redis-server did not start on 127.0.0.1:{port}: {output}")
        break
    else:
        pytest.fail("redis-server: no free port after 3 tries")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


class Worker:
    """A ``celery worker`` process for one agent (its own user, its own queue)."""

    def __init__(self, name: str, env: Dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "w")
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork", "--concurrency", "1",
             "-Q", name, "-n", f"{name}@localhost", "--without-heartbeat", "--without-gossip", "--without-mingle",
             "--loglevel", "INFO"],
            cwd=CELERY_DIR, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"worker {self.name} did not stop on SIGTERM:\n{self.output}") from None
        finally:
            self._log.close()
        return rc


@pytest.mark.timeout(240)
def test_celery_workers_one_sdk_per_process_per_user(emulator, redis_url, tmp_path):
    from celery import Celery

    bob = emulator.add_user("Bob")
    users = {"agent1": emulator.user, "agent2": bob}
    common = {"CELERY_BROKER_URL": redis_url, "GENESYS_API_BASE_URL": emulator.api_base_url,
              "GENESYS_STREAMING_BASE_URL": emulator.streaming_base_url,
              "GENESYS_ICE_HOST_ADDRESSES": "127.0.0.1", "GENESYS_DRAIN_SECONDS": "1"}
    workers = [Worker(name, dict(common, GENESYS_ACCESS_TOKEN=user.access_token,
                                 GENESYS_SOURCE=f"tone:{tone}"), tmp_path / f"{name}.log")
               for (name, user), tone in zip(users.items(), (620, 740))]
    client = Celery("client", broker=redis_url, backend=redis_url)
    client.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    try:
        for worker, user in zip(workers, users.values()):
            wait_until(lambda w=worker: "SDK connected" in w.output or w.proc.poll() is not None, 90,
                       f"worker {worker.name} to connect its SDK")
            assert worker.proc.poll() is None, worker.output
            emulator.wait_for_connection(user, timeout=10)
        # Both agents place a call at once, each from its own process and user.
        pending = [client.send_task("tasks.place_call", args=("+13175550123", 1.5), queue=w.name) for w in workers]
        results = [p.get(timeout=90) for p in pending]
        assert {r["user_id"] for r in results} == {emulator.user.id, bob.id}
        assert results[0]["pid"] != results[1]["pid"]
        for result, tone in zip(results, (620, 740)):
            call = emulator.call_by_conversation(result["conversation_id"])
            assert call.user.id == result["user_id"]
            assert result["frames_received"] > 25  # the worker received audio
            assert abs(call.heard_frequency(seconds=1.0) - tone) <= TOL  # the far end heard that worker
            call.wait_state("ended", timeout=15)
        # A call left up when a worker is told to stop: the worker drains it (hangs up) before exiting.
        held = client.send_task("tasks.place_call", args=("+13175550199", 0.5, False), queue="agent2").get(timeout=90)
        held_call = emulator.call_by_conversation(held["conversation_id"])
        assert held_call.state == "connected"
        live = client.send_task("tasks.live_sessions", queue="agent2").get(timeout=30)
        assert [(s["conversation_id"], s["state"]) for s in live] == [(held["conversation_id"], "active")]
    finally:
        codes = [w.stop() for w in workers]
    outputs = [w.output for w in workers]
    assert codes == [0, 0], outputs
    held_call.wait_state("ended", timeout=5)
    assert any(m == "PATCH" and held["conversation_id"] in p for m, p, s in emulator.rest_log)  # hung up by REST
    assert "drained (1 call(s) hung up) and closed the SDK" in outputs[1], outputs[1]
    assert "drained (0 call(s) hung up) and closed the SDK" in outputs[0], outputs[0]
