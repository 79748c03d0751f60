"""Blocking style: wait for calls and answer each one; hang up after a while.

    python samples/answer_calls.py                 # against the emulator (it rings twice)
    python samples/answer_calls.py --token TOKEN   # against your org: call your WebRTC phone

With no sound card the SDK falls back to silence/no playback with a warning; pass
--wav to send a file and --record to keep what the caller said.
"""

from __future__ import annotations

import time

import purecloud_webrtc as pcw
from _common import connect, parser


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2, help="how many calls to answer before exiting")
    p.add_argument("--seconds", type=float, default=3.0, help="how long to stay on each call")
    p.add_argument("--wav", help="WAV file to play to the caller (default: microphone)")
    p.add_argument("--record", help="WAV file to record the caller into (default: speaker)")
    args = p.parse_args()
    with connect(args) as (sdk, emulator):
        with sdk.event_queue(["pendingSession"]) as ringing:
            for n in range(args.calls):
                if emulator is not None:
                    emulator.inbound_call()
                pending = ringing.get(timeout=None if emulator is None else 15).value
                print(f"ringing: {pending.address} (conversation {pending.conversation_id})")
                with sdk.expect_event("sessionStarted", timeout=15) as started:
                    sdk.accept_pending_session(pending.id, source=args.wav,
                                               sink=args.record and f"{n}-{args.record}")
                session = started.value
                print(f"answered: session {session.id}")
                # Stay on the call for --seconds once its media is up (setting it up takes longer on a busy
                # machine; counting from the answer would shorten the call).
                deadline = time.monotonic() + 15
                while session.connection_state != "connected" and not session.ended and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(args.seconds)
                print(f"received {session.frames_received} audio frames; hanging up")
                with sdk.expect_event("sessionEnded", timeout=15):
                    sdk.end_session(id=session.id)


if __name__ == "__main__":
    main()
