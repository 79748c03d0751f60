"""Callback style: register handlers and let the SDK drive; Ctrl-C (or --seconds) to stop.

    python samples/callbacks.py
"""

from __future__ import annotations

import threading

from _common import connect, parser
from purecloud_webrtc.media import NullSink, ToneSource


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0, help="run this long (0 = until Ctrl-C)")
    args = p.parse_args()
    stop = threading.Event()
    with connect(args) as (sdk, emulator):

        @sdk.on("pendingSession")
        def ringing(pending):
            print(f"pendingSession {pending.id} from {pending.address}")
            # Callbacks may issue commands; they run on the SDK's events thread.
            sdk.accept_pending_session(pending.id, source=ToneSource(600), sink=NullSink())

        @sdk.on("sessionStarted")
        def started(session):
            print(f"sessionStarted {session.id}")
            session.on("change:connectionState", lambda s, state: print(f"  {s.id[:8]}: {state}"))
            session.on("terminated", lambda s, reason: print(f"  {s.id[:8]}: terminated ({reason})"))

        sdk.on("sessionEnded", lambda session, reason: print(f"sessionEnded {session.id}: {reason}"))
        sdk.on("cancelPendingSession", lambda sid: print(f"cancelPendingSession {sid}"))

        if emulator is not None:
            call = emulator.inbound_call()
            # The caller hangs up after three seconds.
            threading.Timer(3.0, call.hangup).start()
        try:
            stop.wait(args.seconds or None)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
