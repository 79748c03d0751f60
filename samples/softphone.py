"""A terminal softphone: answer and place calls with your microphone and speaker.

    python samples/softphone.py                        # against the emulator (press r to make it ring)
    python samples/softphone.py --token TOKEN          # against your org
    python samples/softphone.py --list-devices
    python samples/softphone.py --input "USB" --output "USB" --buffer-ms 10

Keys: a answer, c call (--number), m mute/unmute, h hang up, i/o next input/output device,
r ring (emulator only), q quit.  The status line shows the live input and output levels.

Without a terminal (or for tests) give the keys as a script:
    --script "ring; answer; wait 2; mute; wait 1; mute; input pcw_mic2; wait 1; hangup; quit"
Commands: ring, answer, call [NUMBER], mute, hangup, input NAME, output NAME, wait SECONDS,
until-silent SECONDS (wait, at most that long, for the silent-microphone warning), quit.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import select
import sys
import threading
import time
from typing import Any, Iterator, List, Optional

import purecloud_webrtc as pcw
from _common import connect, parser
from purecloud_webrtc import media


def bar(dbfs: float, width: int = 20) -> str:
    """A level bar from -60 dBFS (empty) to 0 dBFS (full)."""
    if math.isinf(dbfs):
        return " " * width
    filled = int(round(max(0.0, min(1.0, (dbfs + 60.0) / 60.0)) * width))
    return "#" * filled + " " * (width - filled)


def show_db(dbfs: float) -> str:
    return " -inf" if math.isinf(dbfs) else f"{dbfs:5.1f}"


@contextlib.contextmanager
def raw_terminal() -> Iterator[bool]:
    """Single keys without Enter when stdin is a terminal; yields whether it is one."""
    if not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Softphone:
    """The phone's state and actions; every SDK callback only queues work for the main thread."""

    def __init__(self, sdk: pcw.PureCloudWebrtcSdk, emulator: Optional[Any], args: Any) -> None:
        self.sdk = sdk
        self.emulator = emulator
        self.args = args
        self.interactive = False
        self.pending: Optional[Any] = None
        self.session: Optional[Any] = None
        self.levels: Optional[Any] = None
        self.inputs: List[str] = []
        self.outputs: List[str] = []
        self.lock = threading.Lock()
        self.quit = threading.Event()
        self.silent_warning = threading.Event()
        sdk.on("pendingSession", self.on_pending)
        sdk.on("cancelPendingSession", lambda sid: self.say(f"ringing stopped ({sid})"))
        sdk.on("sessionStarted", self.on_started)
        sdk.on("sessionEnded", self.on_ended)

    # -- output ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        # In a terminal the status line is redrawn in place; clear it before a message.
        prefix = "\r\x1b[K" if self.interactive else ""
        print(prefix + text, flush=True)

    def status(self) -> None:
        levels = self.levels
        if levels is None:
            return
        muted = "MUTED" if levels.muted else "     "
        line = (f"in {show_db(levels.input_dbfs)} dBFS [{bar(levels.input_dbfs)}]  "
                f"out {show_db(levels.output_dbfs)} dBFS [{bar(levels.output_dbfs)}]  {muted}")
        if self.interactive:
            print("\r\x1b[K" + line, end="", flush=True)
        else:
            print("levels: " + line, flush=True)

    # -- events (events thread) --------------------------------------------------------------

    def on_pending(self, pending: Any) -> None:
        if pending.auto_answer:
            # A call we placed: answer it here (not by the SDK's auto-answer) to use our devices.
            self.sdk.accept_pending_session(pending.id, source=self.source(), sink=self.sink())
            return
        self.pending = pending
        self.say(f"RINGING: call from {pending.address} (press a to answer)")

    def on_started(self, session: Any) -> None:
        self.session = session
        session.on("audioLevel", self.on_levels)
        session.on("change:muted", lambda s, muted: self.say("muted" if muted else "unmuted"))
        session.on("silentMicrophone", self.on_silent)
        self.say(f"in call: session {session.id} (conversation {session.conversation_id})")

    def on_silent(self, session: Any, silent: bool) -> None:
        self.say("warning: your microphone sends only silence" if silent else "microphone: sound again")
        if silent:
            self.silent_warning.set()

    def on_levels(self, session: Any, levels: Any) -> None:
        self.levels = levels

    def on_ended(self, session: Any, reason: str) -> None:
        if self.session is session:
            self.session = None
            self.levels = None
        self.say(f"call ended ({reason})")

    # -- actions (main thread) -----------------------------------------------------------------

    def source(self) -> Any:
        if self.args.input is None:
            return None  # the default microphone, or silence with a warning when there is none
        return media.MicrophoneSource(self.args.input, buffer_ms=self.args.buffer_ms)

    def sink(self) -> Any:
        if self.args.output is None:
            return None
        return media.SpeakerSink(self.args.output, buffer_ms=self.args.buffer_ms)

    def ring(self) -> None:
        if self.emulator is None:
            self.say("ring: only against the emulator (call your WebRTC phone from another phone)")
            return
        self.emulator.inbound_call(tone_hz=self.args.far_end_tone)

    def answer(self) -> None:
        deadline = time.monotonic() + (0 if self.interactive else 10)
        while self.pending is None and time.monotonic() < deadline:
            time.sleep(0.05)  # a script may say "answer" before the ringing arrives
        pending = self.pending
        if pending is None:
            self.say("nothing is ringing")
            return
        self.pending = None
        with self.sdk.expect_event("sessionStarted", timeout=20):
            self.sdk.accept_pending_session(pending.id, source=self.source(), sink=self.sink())

    def call(self, number: Optional[str] = None) -> None:
        if self.session is not None:
            self.say("already in a call")
            return
        # The service proposes the placed call with auto-answer; on_pending() answers it.
        with self.sdk.expect_event("sessionStarted", timeout=20):
            conversation = self.sdk.start_softphone_session(phone_number=number or self.args.number)
        self.say(f"calling {number or self.args.number}: conversation {conversation}")

    def mute(self, muted: Optional[bool] = None) -> None:
        session = self.session
        if session is None:
            self.say("not in a call")
            return
        target = (not session.muted) if muted is None else muted
        try:
            self.sdk.set_audio_mute(session, target)
        except pcw.ApiError as exc:
            self.say(f"muted locally, but the service was not told: {exc}")

    def hangup(self) -> None:
        session = self.session
        if session is None:
            self.say("not in a call")
            return
        if self.emulator is not None:
            self.say(f"(the far end heard {self.emulator_heard(session):.0f} Hz)")
        try:
            self.sdk.end_session(id=session.id)
        except pcw.SessionNotFoundError:
            pass  # the other side hung up meanwhile
        # end_session returns once the call has ended; the sessionEnded callback may still be queued.
        if self.session is session:
            self.session = None
            self.levels = None

    def emulator_heard(self, session: Any) -> float:
        call = self.emulator.call_by_conversation(session.conversation_id)
        return float(call.heard_frequency(1.0))

    def switch(self, kind: str, name: Optional[str] = None) -> None:
        session = self.session
        if session is None:
            self.say("not in a call")
            return
        if name is None:
            devices = [d.name for d in media.list_devices() if d.supports(kind)]
            if not devices:
                self.say(f"no {kind} devices")
                return
            current = getattr(session.source if kind == "input" else session.sink, "device", None)
            index = devices.index(current.name) + 1 if current is not None and current.name in devices else 0
            name = devices[index % len(devices)]
        try:
            if kind == "input":
                session.set_source(media.MicrophoneSource(name, buffer_ms=self.args.buffer_ms))
            else:
                session.set_sink(media.SpeakerSink(name, buffer_ms=self.args.buffer_ms))
        except media.AudioDeviceError as exc:
            self.say(f"cannot switch {kind}: {exc}")
            return
        self.say(f"{kind} device: {name}")

    def command(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        name, rest = words[0].lower(), words[1:]
        if name in ("ring", "r"):
            self.ring()
        elif name in ("answer", "a"):
            self.answer()
        elif name in ("call", "c"):
            self.call(rest[0] if rest else None)
        elif name in ("mute", "m"):
            self.mute()
        elif name in ("hangup", "h"):
            self.hangup()
        elif name in ("input", "i"):
            self.switch("input", " ".join(rest) or None)
        elif name in ("output", "o"):
            self.switch("output", " ".join(rest) or None)
        elif name == "wait":
            deadline = time.monotonic() + float(rest[0])
            while time.monotonic() < deadline:
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                self.status()
        elif name == "until-silent":
            # Not a fixed wait: on a busy machine the warning may take longer than its nominal 2 s.
            deadline = time.monotonic() + float(rest[0])
            while not self.silent_warning.wait(min(0.5, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    self.say("no silent-microphone warning came")
                    break
                self.status()
        elif name in ("quit", "q"):
            self.quit.set()
        else:
            self.say(f"unknown command {name!r}")

    def run_script(self, script: str) -> None:
        for line in script.split(";"):
            if self.quit.is_set():
                break
            self.say(f"> {line.strip()}")
            self.command(line)

    def run_keys(self) -> None:
        keys: "queue.Queue[str]" = queue.Queue()
        with raw_terminal() as self.interactive:
            self.say("keys: a answer, c call, m mute, h hang up, i/o switch device, r ring (emulator), q quit")
            while not self.quit.is_set():
                ready, _, _ = select.select([sys.stdin], [], [], 0.2)
                if ready:
                    key = os.read(sys.stdin.fileno(), 1).decode(errors="replace") if self.interactive \
                        else sys.stdin.readline()
                    if key == "":
                        break  # end of input
                    keys.put(key.strip() or key)
                while not keys.empty():
                    try:
                        self.command(keys.get_nowait())
                    except pcw.PureCloudWebrtcError as exc:
                        self.say(f"error: {exc}")
                if self.interactive:
                    self.status()
        print()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--input", help="microphone: index or (part of a) name (default: the system's)")
    p.add_argument("--output", help="speaker: index or (part of a) name (default: the system's)")
    p.add_argument("--buffer-ms", type=float, default=20.0,
                   help="device buffer in ms (smaller: less delay, more CPU; default 20)")
    p.add_argument("--list-devices", action="store_true", help="list sound devices and exit")
    p.add_argument("--number", default="+13175550123", help="number for the call key")
    p.add_argument("--far-end-tone", type=float, default=440.0, help="emulator only: what the caller plays")
    p.add_argument("--script", help="run these ;-separated commands instead of reading keys")
    args = p.parse_args()
    if args.list_devices:
        try:
            for device in media.list_devices():
                print(device.describe())
        except media.AudioDeviceError as exc:
            print(f"no sound devices: {exc}")
        return
    with connect(args, auto_answer_outbound_calls=False) as (sdk, emulator):
        phone = Softphone(sdk, emulator, args)
        if args.script:
            phone.run_script(args.script)
        else:
            phone.run_keys()
        if phone.session is not None:
            phone.hangup()


if __name__ == "__main__":
    main()
