"""Resilience figures: dead-socket detection, restore-to-connected, audio gap in an outage.

    .venv/bin/python benchmarks/resilience.py            # default SDK settings (takes ~1 min)

Runs on 127.0.0.1 only: the emulator, a fault proxy in front of its streaming port, one SDK.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import purecloud_webrtc as pcw
from purecloud_webrtc.emulator import Emulator, FaultProxy
from purecloud_webrtc.media import BufferSink, ToneSource


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def longest_silence_ms(samples: np.ndarray, rate: int = 48000) -> float:
    """Longest run of near-silence (|x| < 1 % full scale over 5 ms windows) in a tone recording."""
    window = rate // 200
    n = len(samples) // window
    if n == 0:
        return 0.0
    peaks = np.abs(samples[: n * window].reshape(n, window)).max(axis=1)
    quiet = peaks < 328
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return longest * 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=5.0, help="seconds of signaling outage")
    args = parser.parse_args()
    with Emulator() as emu, FaultProxy(emu.port) as proxy:
        sdk = pcw.PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url, streaming_base_url=proxy.url,
                                     ice_host_addresses=["127.0.0.1"])
        events = []
        sdk.on("disconnected", lambda info: events.append(("disconnected", time.monotonic(), info)))
        sdk.on("connected", lambda info: events.append(("connected", time.monotonic(), info)))
        with sdk:
            sdk.initialize()
            with sdk.expect_event("pendingSession") as ev:
                call = emu.inbound_call(tone_hz=440.0)
            with sdk.expect_event("sessionStarted") as st:
                sdk.accept_pending_session(ev.value.id, source=ToneSource(880.0), sink=BufferSink())
            session = st.value
            call.wait_state("connected", timeout=15)
            call.wait_for_audio(timeout=10, min_seconds=1.0)

            # 1. A half-open socket (no FIN): how long until the SDK notices, with default pings.
            events.clear()
            t0 = time.monotonic()
            proxy.blackhole()
            wait(lambda: any(e[0] == "disconnected" for e in events), 60, "dead socket detection")
            detect = events[0][1] - t0
            proxy.restore()
            wait(lambda: any(e[0] == "connected" for e in events), 60, "reconnect")

            # 2. An outage of the streaming service: restore -> connected, and the audio gap meanwhile.
            events.clear()
            heard_before = call.seconds_heard()
            proxy.refuse()
            t_out = time.monotonic()
            wait(lambda: any(e[0] == "disconnected" for e in events), 10, "disconnect")
            time.sleep(max(0.0, args.outage - (time.monotonic() - t_out)))
            t_restore = time.monotonic()
            proxy.restore()
            wait(lambda: any(e[0] == "connected" for e in events), 60, "reconnect")
            restore_to_connected = next(e[1] for e in events if e[0] == "connected") - t_restore
            outage = time.monotonic() - t_out
            heard = call.seconds_heard() - heard_before
            recording = call._sink.samples(last_seconds=outage) if call._sink is not None else np.zeros(0)
            gap = longest_silence_ms(recording)
            with sdk.expect_event("sessionEnded"):
                sdk.end_session(id=session.id)
    print(f"dead socket (half-open) detected after {detect:.1f} s "
          f"(ping every {sdk.options.ping_interval:.0f} s, pong timeout {sdk.options.ping_timeout:.0f} s)")
    print(f"streaming outage of {outage:.1f} s: restore -> connected {restore_to_connected * 1000:.0f} ms; "
          f"remote party heard {heard:.2f} s of audio in that time; longest gap {gap:.0f} ms")


if __name__ == "__main__":
    main()
