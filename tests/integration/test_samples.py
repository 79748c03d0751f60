"""The samples and the demo run as a user runs them, against the emulator, and do what they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_python as run

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_the_frequencies_of_both_calls():
    proc = run(["-m", "purecloud_webrtc.demo", "--seconds", "1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("demo: inbound call:") and "audio flowed both ways" in last
    pairs = re.findall(r"heard ([0-9.]+) Hz \((?:remote|SDK) played ([0-9.]+)\)", last)
    assert len(pairs) == 4, last  # both directions of both calls
    for heard, played in pairs:
        assert abs(float(heard) - float(played)) <= 5.0, last
    for event in ("event pendingSession", "event sessionStarted", "connectionState=connected", "event sessionEnded"):
        assert event in proc.stdout


def test_answer_calls_sample():
    proc = run(["samples/answer_calls.py", "--calls", "2", "--seconds", "1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("answered: session") == 2
    received = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("received ")]
    assert len(received) == 2 and min(received) > 20


def test_place_call_sample():
    proc = run(["samples/place_call.py", "--seconds", "1.5"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "placed: conversation" in proc.stdout and "hung up" in proc.stdout
    heard = [line for line in proc.stdout.splitlines() if "sounds like" in line]
    assert heard and "440 Hz" in heard[0]


def test_callbacks_sample():
    proc = run(["samples/callbacks.py", "--seconds", "5"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.index("pendingSession") < out.index("sessionStarted") < out.index("terminated (success)")
    assert "sessionEnded" in out and ": connected" in out


def test_repl_walkthrough_sample():
    proc = run(["samples/repl_walkthrough.py"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("we hear"))
    assert line == "we hear 440 Hz; they hear 880 Hz"


def test_emulator_command_line_starts_and_stops():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "purecloud_webrtc.emulator", "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        first = proc.stdout.readline()
        assert "127.0.0.1" in first, first
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()


@pytest.mark.parametrize("stun", [True, False])
def test_emulator_command_line_advertises_stun_and_turn(stun):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["--port", "0", "--turn", "turn:127.0.0.1:3478?transport=udp", "--turn-username", "u",
            "--turn-password", "p"] + ([] if stun else ["--no-stun"])
    proc = subprocess.Popen([sys.executable, "-m", "purecloud_webrtc.emulator", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        lines = []
        while not lines or not lines[-1].startswith("Serving"):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        servers = next(line for line in lines if line.startswith("ICE servers:"))
        assert ("stun:127.0.0.1:" in servers) is stun, servers
        assert "turn:127.0.0.1:3478?transport=udp" in servers, servers
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()
