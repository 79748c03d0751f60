"""samples/pipecat_bot.py runs as a user runs it, against the emulator, and does what it says."""

from __future__ import annotations

import re

import pytest

from helpers import run_python as run

pytest.importorskip("pipecat.frames.frames", reason="the Pipecat lane (make test-pipecat) runs these")
pytestmark = pytest.mark.pipecat


def test_the_bot_sample_greets_echoes_an_octave_up_plays_a_tone_on_1_and_hangs_up_on_hash():
    proc = run(["samples/pipecat_bot.py"])
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "bot: greeted the caller" in out
    echo = re.search(r"caller: plays 440 Hz and hears ([0-9]+) Hz", out)
    assert echo and abs(int(echo.group(1)) - 880) <= 15, out
    tone = re.search(r"caller: pressed 1 and hears ([0-9]+) Hz", out)
    assert tone and abs(int(tone.group(1)) - 1000) <= 10, out
    assert "bot: the caller pressed #" in out and "bot: goodbye; hanging up" in out
    assert "bot: the call ended" in out and "caller: the call is ended" in out
    assert "Error writing" not in proc.stderr, proc.stderr
