"""The ``purecloud-webrtc`` command line, run as a user runs it: a subprocess against the emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)


def run_cli(args: list[str], timeout: float = 45, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m purecloud_webrtc ARGS`` with no token in the environment and stdin closed."""
    env = dict(os.environ)
    env.pop("GENESYS_ACCESS_TOKEN", None)
    env.pop("GENESYS_ENVIRONMENT", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "purecloud_webrtc", *args], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def check_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"^\[(ok|FAIL|warn|skip)\] ", line)]


@pytest.fixture
def emulator() -> Iterator[object]:
    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emu:
        yield emu


def test_help_lists_every_subcommand() -> None:
    proc = run_cli(["--help"])
    assert proc.returncode == 0, proc.stderr
    for command in ("demo", "emulator", "answer", "call", "devices", "doctor"):
        assert re.search(rf"^\s+{command}\s", proc.stdout, re.MULTILINE), proc.stdout


def test_unknown_subcommand_and_bad_option_values_are_usage_errors() -> None:
    proc = run_cli(["dance"])
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
    proc = run_cli(["answer", "--source", "/no/such/prompt.wav"])
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    proc = run_cli([])
    assert proc.returncode == 2


def test_answer_one_call_against_the_emulator() -> None:
    proc = run_cli(["answer", "--calls", "1", "--seconds", "1", "--source", "tone:660", "--sink", "null"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "bundled emulator" in out
    # Events are printed as they happen, in order.
    assert out.index("event pendingSession") < out.index("answered: session") < out.index("event sessionEnded")
    heard = re.search(r"heard: ([0-9.]+) Hz at .*\((\d+) audio frames received\)", out)
    assert heard, out
    assert abs(float(heard.group(1)) - 440.0) <= 5.0 and int(heard.group(2)) > 20
    assert out.strip().splitlines()[-1] == "answer: answered 1 call(s)"


def test_call_reports_the_emulators_tone() -> None:
    proc = run_cli(["call", "+15555550123", "--seconds", "1.5", "--sink", "buffer", "--source", "silence"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "placed: conversation" in out and "hanging up" in out
    final = re.search(r"^call: done; heard ([0-9.]+) Hz$", out, re.MULTILINE)
    assert final, out
    assert abs(float(final.group(1)) - 440.0) <= 5.0


def test_doctor_against_the_emulator_passes() -> None:
    proc = run_cli(["doctor", "--emulator"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = check_lines(proc.stdout)
    assert len(lines) == 7, proc.stdout  # token, REST, streaming, ICE, loopback media, internals, devices
    assert any(line.startswith("[ok] internals (aiortc ") for line in lines), proc.stdout
    assert all(line.startswith(("[ok]", "[warn]")) for line in lines), proc.stdout
    assert any("loopback media test" in line and line.startswith("[ok]") for line in lines)
    assert any("streaming connected" in line for line in lines)
    # Progress: a line announces each check before its result.
    assert proc.stdout.index("... loopback media test") < proc.stdout.index("[ok] loopback media test")


def test_doctor_with_a_bogus_token_says_it_was_rejected(emulator: object) -> None:
    proc = run_cli(["doctor", "--token", "wrong", "--api-base-url", emulator.api_base_url,  # type: ignore[attr-defined]
                    "--streaming-base-url", emulator.streaming_base_url])  # type: ignore[attr-defined]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = check_lines(proc.stdout)
    fail = [line for line in lines if line.startswith("[FAIL]")]
    assert len(fail) == 1 and "token rejected" in fail[0], proc.stdout
    assert "get a new one" in proc.stdout
    assert lines[0].startswith("[ok] access token given (--token")


def test_doctor_without_a_token_fails_with_advice() -> None:
    proc = run_cli(["doctor"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = check_lines(proc.stdout)[0]
    assert first == "[FAIL] no access token"
    assert "GENESYS_ACCESS_TOKEN" in proc.stdout and "--emulator" in proc.stdout


def test_devices_lists_or_says_there_are_none() -> None:
    proc = run_cli(["devices"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^(no audio devices: |\d+ device\(s\): )", proc.stdout, re.MULTILINE), proc.stdout


def test_demo_and_emulator_options_pass_through() -> None:
    for command, option in (("demo", "--seconds"), ("emulator", "--inbound-call-every")):
        proc = run_cli([command, "--help"])
        assert proc.returncode == 0, proc.stderr
        assert option in proc.stdout, proc.stdout
    proc = run_cli(["emulator", "--inbound-call-every", "0"])
    assert proc.returncode == 2
    assert "must be positive" in proc.stderr


def test_answer_records_each_call_to_its_own_wav(tmp_path: Path) -> None:
    from purecloud_webrtc.media import decode_audio_file, dominant_frequency

    target = tmp_path / "caller.wav"
    proc = run_cli(["answer", "--calls", "2", "--seconds", "1", "--source", "silence", "--sink", str(target)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("answered: session") == 2
    for path in (target, tmp_path / "caller-2.wav"):
        samples = decode_audio_file(path)
        assert samples.size > 48000 // 2, path
        assert abs(dominant_frequency(samples[-24000:]) - 440.0) <= 5.0, path


def test_a_missing_microphone_fails_before_any_call() -> None:
    proc = run_cli(["answer", "--calls", "1", "--source", "mic:no-such-device-xyz"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "answer: FAILED" in proc.stdout
    assert "answered" not in proc.stdout and "bundled emulator" not in proc.stdout


def test_doctor_names_a_refused_port_without_library_noise() -> None:
    proc = run_cli(["doctor", "--token", "t", "--api-base-url", "http://127.0.0.1:9",
                    "--streaming-base-url", "ws://127.0.0.1:9"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    # Before: urllib3's "Retrying (Retry(total=...))" lines, and DNS advice for a port nothing listens on.
    assert "nothing listens on 127.0.0.1:9" in out, out
    assert "Retrying" not in out and "DNS" not in out and "HTTPConnectionPool" not in out, out


def test_doctor_explains_a_wrong_api_path(emulator: object) -> None:
    proc = run_cli(["doctor", "--token", emulator.access_token,  # type: ignore[attr-defined]
                    "--api-base-url", emulator.api_base_url + "/genesys",  # type: ignore[attr-defined]
                    "--streaming-base-url", emulator.streaming_base_url])  # type: ignore[attr-defined]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fail = [line for line in check_lines(proc.stdout) if line.startswith("[FAIL]")]
    assert fail and "HTTP 404" in fail[0], proc.stdout
    # Before: "the user needs a WebRTC-capable account" -- wrong for a mistyped URL.
    assert "the API base URL is wrong" in proc.stdout and "WebRTC-capable" not in proc.stdout


def test_help_is_plain_text() -> None:
    for args in (["--help"], ["answer", "--help"], ["call", "--help"], ["doctor", "--help"], ["devices", "--help"],
                 ["demo", "--help"], ["emulator", "--help"]):
        proc = run_cli(args)
        assert proc.returncode == 0, proc.stderr
        assert not re.search(r"``|:(meth|class|mod|func|attr):`", proc.stdout), (args, proc.stdout)


def test_timeouts_are_reported_in_rounded_seconds() -> None:
    import purecloud_webrtc as pcw

    assert str(pcw.OperationTimeoutError("initialize", 29.99598545599997)) == "initialize timed out after 30 s"
    assert str(pcw.OperationTimeoutError("end_session", 2.5)) == "end_session timed out after 2.5 s"
