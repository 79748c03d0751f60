"""``python -m purecloud_webrtc.emulator``: run an emulator until Ctrl-C.

Prints the base URLs, the access token and the user, then serves.  With
``--inbound-call-every N`` it places an inbound call to the default user every
N seconds while one of its clients is connected.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Optional, Sequence


__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m purecloud_webrtc.emulator",
        description="Emulate Genesys Cloud (REST, streaming, WebRTC gateway) on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument("--token", default="emulator-token", help="access token of the user (default: %(default)s)")
    parser.add_argument("--org", default="acmecorp", help="organisation name (default: %(default)s)")
    parser.add_argument(
        "--inbound-call-every", type=float, default=None, metavar="N",
        help="place an inbound call every N seconds while the user is connected",
    )  # fmt: skip
    parser.add_argument("--tone", type=float, default=440.0, metavar="HZ", help="tone the far end plays (default: 440)")
    parser.add_argument("--alert-timeout", type=float, default=None, metavar="S", help="retract unanswered calls after S seconds")
    parser.add_argument("--auto-answer", action="store_true", help="inbound calls carry inin-autoanswer=\"true\"")
    parser.add_argument("--inline-candidates", action="store_true", help="put candidates in session-initiate (no trickle)")
    parser.add_argument("--no-stun", action="store_true",
                        help="run no STUN responder and advertise none over XEP-0215 (default: one on 127.0.0.1)")
    parser.add_argument("--stun-port", type=int, default=0, metavar="PORT",
                        help="UDP port of the STUN responder (default: a free one)")
    parser.add_argument("--turn", action="append", default=[], metavar="URL",
                        help="also advertise this TURN server over XEP-0215 (e.g. turn:127.0.0.1:3478?transport=udp; "
                             "repeatable; the emulator runs no TURN server itself)")
    parser.add_argument("--turn-username", default=None, help="username advertised with --turn")
    parser.add_argument("--turn-password", default=None, help="password advertised with --turn")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v: info logs, -vv: wire dumps")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the emulator from the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.inbound_call_every is not None and args.inbound_call_every <= 0:
        print("--inbound-call-every must be positive", file=sys.stderr)
        return 2
    from .._extras import MissingExtraError, require

    try:
        require("emulator", "the emulator")
    except MissingExtraError as exc:
        print(f"purecloud-webrtc-emulator: {exc}", file=sys.stderr)
        return 1
    from .server import Emulator

    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    turn = [{"urls": url, "username": args.turn_username, "credential": args.turn_password} for url in args.turn]
    emulator = Emulator(
        port=args.port,
        ice_servers=turn,
        stun=not args.no_stun,
        stun_port=args.stun_port,
        access_token=args.token,
        org_name=args.org,
        tone_hz=args.tone,
        alert_timeout=args.alert_timeout,
        trickle_candidates=not args.inline_candidates,
    )
    try:
        emulator.start()
    except Exception as exc:
        print(f"cannot start the emulator: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        user = emulator.user
        # Exactly what api_base_url / streaming_base_url (and --api-base-url / --streaming-base-url) take.
        print(f"REST API:      {emulator.api_base_url}   (api_base_url; it serves /api/v2/...)")
        print(f"Streaming:     {emulator.streaming_base_url}   (streaming_base_url; /stream/channels/{{channelId}})")
        print(f"Access token:  {emulator.access_token}")
        print(f"User:          {user.name} id={user.id} jid={user.jid}")
        print(f"ICE servers:   {', '.join(s['urls'] for s in emulator.ice_servers) or 'none'}   (XEP-0215)")
        print("Serving until Ctrl-C.", flush=True)
        while not stop.wait(args.inbound_call_every or 3600):
            if args.inbound_call_every and emulator.connected_resources():
                call = emulator.inbound_call(auto_answer=args.auto_answer)
                print(f"inbound call {call.conversation_id} proposed to {', '.join(call.proposed_to)}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        emulator.stop()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
