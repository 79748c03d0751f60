"""A recorder bot: answers each call, plays a prompt, records the caller to a stereo WAV, hangs up.

    python samples/recorder_bot.py                                  # against the emulator (it calls twice)
    python samples/recorder_bot.py --token TOKEN --prompt hello.wav --calls 0   # your org, until Ctrl+C

Each recording is a 48 kHz stereo WAV: the bot (prompt, then silence) on the left channel,
the caller on the right, aligned in time.  The bot hangs up after --seconds, or earlier when
the caller does.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from _common import connect, parser
from purecloud_webrtc.media import NullSink, WavFileSource


def beep_prompt(path: Path) -> None:
    """Write a stand-in prompt: three short 880 Hz beeps (0.9 s)."""
    rate = 16000
    t = np.arange(int(0.9 * rate)) / rate
    envelope = (np.floor(t / 0.15) % 2 == 0).astype(np.float64)
    samples = np.rint(np.sin(2 * math.pi * 880.0 * t) * envelope * 0.3 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--prompt", help="WAV played to each caller (default: three beeps)")
    p.add_argument("--out", default="recordings", help="folder for the recordings (default: ./recordings)")
    p.add_argument("--calls", type=int, default=2, help="calls to take before exiting (0: until Ctrl+C)")
    p.add_argument("--seconds", type=float, default=5.0, help="longest recording per call")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pcw-bot-") as scratch:
        prompt = args.prompt
        if prompt is None:
            prompt = os.path.join(scratch, "beeps.wav")
            beep_prompt(Path(prompt))
        run(args, prompt, out)


def run(args: Any, prompt: str, out: Path) -> None:
    with connect(args) as (sdk, emulator):
        ended = threading.Event()
        sdk.on("sessionEnded", lambda session, reason: ended.set())
        with sdk.event_queue(["pendingSession"]) as ringing:
            taken = 0
            while args.calls == 0 or taken < args.calls:
                if emulator is not None:
                    emulator.inbound_call()  # the emulator's caller plays a 440 Hz tone
                pending = ringing.get(timeout=None if emulator is None else 15).value
                taken += 1
                print(f"call {taken} from {pending.address}: answering")
                ended.clear()
                with sdk.expect_event("sessionStarted", timeout=15) as started:
                    # The prompt plays once; afterwards the SDK sends silence.  The caller is only recorded.
                    sdk.accept_pending_session(pending.id, source=WavFileSource(prompt, loop=False), sink=NullSink())
                session = started.value
                path = out / f"call-{taken}-{session.conversation_id or session.id}.wav"
                session.start_recording(path)  # waits the few ms until the call is answered
                deadline = time.monotonic() + args.seconds
                while time.monotonic() < deadline and not ended.is_set():
                    time.sleep(0.05)
                if not session.ended:
                    sdk.end_session(id=session.id)
                recording = session.stop_recording()
                print(f"call {taken}: recorded {recording.seconds:.1f} s to {recording.path} "
                      f"(left: bot, right: caller); prompt finished: {session.source_ended}")


if __name__ == "__main__":
    main()
