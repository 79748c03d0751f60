"""The pytest plugin (purecloud_webrtc/pytest_plugin.py), as a user's own suite gets it.

A tiny user test file is run by a separate ``python -m pytest`` in an empty folder (no conftest, no
``-p``): the fixtures must come from the installed ``pytest11`` entry point alone.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

USER_TESTS = '''
def test_inbound_call_with_audio(purecloud_emulator, purecloud_sdk):
    with purecloud_sdk.expect_event("sessionStarted", timeout=20) as started:
        call = purecloud_emulator.inbound_call(auto_answer=True, tone_hz=440)
    session = started.value
    call.wait_for_audio(timeout=15)
    assert session.sink.wait_for_duration(1.0, timeout=15)
    assert abs(session.sink.dominant_frequency(last_seconds=1.0) - 440) < 5
    with purecloud_sdk.expect_event("sessionEnded", timeout=15):
        call.hangup()


def test_two_users(purecloud_emulator, purecloud_sdk_factory):
    bob = purecloud_emulator.add_user("Bob")
    alice_sdk = purecloud_sdk_factory()
    bob_sdk = purecloud_sdk_factory(user=bob)
    assert alice_sdk.user["id"] != bob_sdk.user["id"] == bob.id


def test_a_raising_callback_fails_the_test(purecloud_emulator, purecloud_sdk):
    purecloud_sdk.on("pendingSession", lambda pending: 1 / 0)
    with purecloud_sdk.expect_event("cancelPendingSession", timeout=15):
        call = purecloud_emulator.inbound_call()
        call.retract()
'''


def run_user_suite(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(source))
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=60", *args, "test_user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL)


def test_entry_point_is_registered():
    points = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "purecloud_webrtc"]
    assert [ep.value for ep in points] == ["purecloud_webrtc.pytest_plugin"]


@pytest.mark.timeout(180)
def test_a_user_suite_gets_the_fixtures_from_the_entry_point(tmp_path):
    proc = run_user_suite(tmp_path, USER_TESTS, "-rA")
    out = proc.stdout + proc.stderr
    # All three bodies pass; the third then errors at teardown because its callback raised.
    assert "3 passed, 1 error" in out, out
    assert "SDK callbacks raised" in out and "ZeroDivisionError" in out, out
    assert "ERROR at teardown of test_a_raising_callback_fails_the_test" in out, out
    assert proc.returncode == 1, out


def test_fixtures_are_usable_in_this_suite_too(purecloud_emulator, purecloud_sdk):
    # No clash with tests/conftest.py (emulator, make_sdk): different names, separate instances.
    assert purecloud_sdk.connected
    assert purecloud_sdk.options.api_base_url == purecloud_emulator.api_base_url
    assert purecloud_sdk.options.ice_host_addresses == ["127.0.0.1"]
