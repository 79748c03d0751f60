"""The audio samples run as a user runs them: the terminal softphone on (virtual) devices, the recorder bot."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np
import pytest

from purecloud_webrtc.media import dominant_frequency, rms_dbfs

from pulse import PulseServer, tone
from helpers import run_python as run

pytestmark = pytest.mark.timeout(150)

# The silent microphone (pcw_mic2 hears nothing) is waited for by event, not by a fixed time: a loaded
# machine may need longer than the detector's nominal 2 s.
SCRIPT = ("ring; answer; wait 1.5; mute; wait 1; mute; input pcw_mic2; until-silent 20; output pcw_speaker2; wait 0.5; "
          "hangup; call; wait 1.5; hangup; quit")


def test_softphone_sample_on_virtual_devices(pulse_server: PulseServer) -> None:
    # The pulse_server fixture points this process's environment, which run() hands down, at the server.
    with pulse_server.play(tone(523.25, 90), "pcw_mic_feed"), \
            pulse_server.record("pcw_speaker.monitor") as speaker:
        proc = run(["samples/softphone.py", "--input", "pcw_mic", "--output", "pcw_speaker", "--buffer-ms", "10",
                    "--script", SCRIPT])
        played = speaker.samples()
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    lines = out.splitlines()
    # Commands and their visible effects, in order.
    expected = ["> ring", "RINGING: call from", "in call: session", "> mute", "muted", "unmuted",
                "input device: pcw_mic2", "warning: your microphone sends only silence",
                "output device: pcw_speaker2", "> hangup", "(the far end heard 0 Hz)", "> call", "in call: session",
                "(the far end heard 523 Hz)", "> quit"]
    position = 0
    for text in expected:
        position = next((i for i in range(position, len(lines)) if lines[i].startswith(text)), -1)
        assert position >= 0, f"{text!r} missing or out of order in:\n{out}"
    levels = [re.match(r"levels: in\s+(\S+) dBFS .* out\s+(\S+) dBFS .*?(MUTED)?\s*$", line)
              for line in lines if line.startswith("levels:")]
    assert levels and all(levels)
    assert any(float(m.group(1)) > -20 and float(m.group(2)) > -30 and not m.group(3) for m in levels)
    assert any(m.group(3) for m in levels)  # shown while muted
    assert dominant_frequency(played[-96000:] if played.size else played) == pytest.approx(440.0, abs=5.0)
    assert "ALSA lib" not in proc.stderr and "jack" not in proc.stderr.lower()


def test_recorder_bot_sample(tmp_path: Path) -> None:
    proc = run(["samples/recorder_bot.py", "--calls", "1", "--seconds", "2.5", "--out", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("call 1: recorded"))
    assert "prompt finished: True" in line
    (path,) = list(tmp_path.glob("call-1-*.wav"))
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 48000)
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert data.shape[0] > 2 * 48000
    bot, caller = data[:, 0], data[:, 1]
    # Left: the prompt's 880 Hz beeps within its first second, silence after it ended.
    assert dominant_frequency(bot[:48000]) == pytest.approx(880.0, abs=5.0)
    assert rms_dbfs(bot[int(1.3 * 48000):]) == float("-inf")
    # Right: the emulator's caller, a 440 Hz tone.
    assert dominant_frequency(caller[-48000:]) == pytest.approx(440.0, abs=5.0)
