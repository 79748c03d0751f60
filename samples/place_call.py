"""Place a call, let the SDK auto-answer it, talk for a few seconds, hang up.

    python samples/place_call.py                         # against the emulator
    python samples/place_call.py --token TOKEN +13175550123
"""

from __future__ import annotations

import time

from _common import connect, parser
from purecloud_webrtc.media import BufferSink, ToneSource


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("number", nargs="?", default="+13175550123", help="phone number to call")
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    # Outbound calls are proposed with autoAnswer; the SDK accepts them with its default media.
    with connect(args, default_source=ToneSource(440.0), default_sink=BufferSink()) as (sdk, emulator):
        with sdk.expect_event("sessionStarted", timeout=20) as started:
            conversation_id = sdk.start_softphone_session(phone_number=args.number)
            print(f"placed: conversation {conversation_id}")
        session = started.value
        # The pending session and the REST answer are correlated by conversation id.
        assert session.conversation_id == conversation_id
        time.sleep(args.seconds)
        print(f"the other side sounds like {session.sink.dominant_frequency():.0f} Hz")
        sdk.end_session(conversation_id=conversation_id)
        print("hung up")


if __name__ == "__main__":
    main()
