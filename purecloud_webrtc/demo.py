"""``python -m purecloud_webrtc.demo``: two real calls against the bundled emulator.

Starts the emulator on 127.0.0.1, connects an SDK, answers an inbound call and
places an outbound call, each with real audio both ways (a different tone on
each side, checked by its frequency), prints every event as it happens and
ends with one ``demo:`` line.  Exits with status 1 if audio did not flow both
ways in both calls.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from typing import Any, List, Optional, Tuple

from . import PureCloudWebrtcSdk
from .media import BufferSink, ToneSource

TOLERANCE_HZ = 5.0


_print_lock = threading.Lock()


def _print(*parts: Any) -> None:
    # Events print from the SDK's events thread, the script from the main thread.
    with _print_lock:
        print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def _hook_events(sdk: PureCloudWebrtcSdk) -> None:
    sdk.on("connected", lambda info: _print("event connected", info))
    sdk.on("ready", lambda: _print("event ready"))
    sdk.on("disconnected", lambda info: _print("event disconnected", info))
    sdk.on("pendingSession", lambda p: _print(
        f"event pendingSession id={p.id} conversation={p.conversation_id} autoAnswer={p.auto_answer}"))
    sdk.on("cancelPendingSession", lambda sid: _print("event cancelPendingSession", sid))
    sdk.on("handledPendingSession", lambda sid: _print("event handledPendingSession", sid))
    sdk.on("error", lambda error, details: _print("event error", repr(error), details))

    @sdk.on("sessionStarted")
    def started(session: Any) -> None:
        _print(f"event sessionStarted id={session.id} conversation={session.conversation_id}")
        session.on("change:connectionState", lambda s, state: _print(f"  session {s.id[:8]} connectionState={state}"))
        session.on("change:active", lambda s, active: _print(f"  session {s.id[:8]} active={active}"))
        session.on("endOfCandidates", lambda s: _print(f"  session {s.id[:8]} endOfCandidates"))
        session.on("terminated", lambda s, reason: _print(f"  session {s.id[:8]} terminated reason={reason}"))

    sdk.on("sessionEnded", lambda session, reason: _print(f"event sessionEnded id={session.id} reason={reason}"))


def _measure(session: Any, call: Any, seconds: float) -> Tuple[float, float]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (session.frames_received < 50 * (seconds + 0.5)):
        time.sleep(0.05)
    call.wait_for_audio(timeout=15, min_seconds=seconds)
    sdk_heard = session.sink.dominant_frequency(last_seconds=seconds) if session.sink else 0.0
    remote_heard = call.heard_frequency(seconds=seconds)
    return sdk_heard, remote_heard


def run(seconds: float = 2.0, verbose: bool = False) -> int:
    from .emulator import Emulator

    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
    results: List[Tuple[str, float, float, float, float]] = []
    with Emulator(tone_hz=523.0) as emulator:
        _print(f"emulator: REST {emulator.api_base_url}, streaming {emulator.streaming_base_url}, "
               f"user {emulator.user.jid}")
        sdk = PureCloudWebrtcSdk(
            emulator.access_token,
            api_base_url=emulator.api_base_url,
            streaming_base_url=emulator.streaming_base_url,
            ice_host_addresses=["127.0.0.1"],
            default_source=ToneSource(784.0),
            default_sink=BufferSink(),
        )
        with sdk:
            _hook_events(sdk)
            sdk.initialize(timeout=20)

            # 1. Inbound: the emulator rings us; we answer with our own tone and a recorder.
            _print("--- inbound call ---")
            with sdk.expect_event("pendingSession", timeout=10) as ev:
                call = emulator.inbound_call(tone_hz=440.0)
            pending = ev.value
            with sdk.expect_event("sessionStarted", timeout=10) as started:
                sdk.accept_pending_session(pending.id, source=ToneSource(660.0), sink=BufferSink())
            session = started.value
            call.wait_state("connected", timeout=15)
            sdk_heard, remote_heard = _measure(session, call, seconds)
            results.append(("inbound", 440.0, sdk_heard, 660.0, remote_heard))
            with sdk.expect_event("sessionEnded", timeout=10):
                sdk.end_session(id=session.id)

            # 2. Outbound: we place a call by REST; the service proposes it with auto-answer; we answer it.
            _print("--- outbound call ---")
            with sdk.expect_event("sessionStarted", timeout=15) as started:
                conversation_id = sdk.start_softphone_session(phone_number="+13175550123")
                _print(f"placed call, conversation {conversation_id}")
            session = started.value
            call = emulator.call_by_conversation(conversation_id)
            call.wait_state("connected", timeout=15)
            sdk_heard, remote_heard = _measure(session, call, seconds)
            results.append(("outbound", call.tone_hz, sdk_heard, 784.0, remote_heard))
            with sdk.expect_event("sessionEnded", timeout=10):
                call.hangup()

    ok = all(abs(a - b) <= TOLERANCE_HZ and abs(c - d) <= TOLERANCE_HZ for _, a, b, c, d in results)
    parts = [f"{name} call: SDK heard {heard:.1f} Hz (remote played {played:.0f}), remote heard {rheard:.1f} Hz "
             f"(SDK played {sent:.0f})" for name, played, heard, sent, rheard in results]
    print("demo: " + "; ".join(parts) + ("; audio flowed both ways" if ok else "; AUDIO CHECK FAILED"), flush=True)
    return 0 if ok and len(results) == 2 else 1


def main(argv: Optional[List[str]] = None) -> int:
    from ._plain import plain

    parser = argparse.ArgumentParser(prog="python -m purecloud_webrtc.demo", description=plain(__doc__.splitlines()[0]))
    parser.add_argument("--seconds", type=float, default=2.0, help="audio measured per call (default 2)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging, wire dumps included")
    args = parser.parse_args(argv)
    try:
        return run(args.seconds, args.verbose)
    except Exception as exc:  # the demo must end with a clear line, not a bare traceback
        logging.getLogger(__name__).debug("demo failed", exc_info=True)
        print(f"demo: FAILED: {type(exc).__name__}: {exc}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
