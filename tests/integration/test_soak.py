"""200 calls in a row through reconnects and failures leak no threads, sockets or sessions."""

from __future__ import annotations

import os
import threading

import purecloud_webrtc as pcw
from purecloud_webrtc.media import NullSink, SilenceSource

from helpers import wait_until

CALLS = 200


def sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def test_two_hundred_calls_through_failures_leak_nothing():
    from purecloud_webrtc.emulator import Emulator

    threads_before = threading.active_count()
    sockets_before = sockets()
    emulator = Emulator().start()
    sdk = pcw.PureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                 streaming_base_url=emulator.streaming_base_url, ice_host_addresses=["127.0.0.1"],
                                 ping_interval=5, reconnect_initial_delay=0.05, reconnect_max_delay=0.2)
    outcomes = {"rest-end": 0, "remote-hangup": 0, "retract": 0, "elsewhere": 0, "reconnect": 0}
    try:
        sdk.initialize()
        for n in range(CALLS):
            if n % 25 == 24:
                with sdk.expect_event("connected", timeout=15):
                    emulator.drop_connections()
                outcomes["reconnect"] += 1
            with sdk.expect_event("pendingSession", timeout=10) as ev:
                call = emulator.inbound_call()
            if n % 10 == 3:
                with sdk.expect_event("cancelPendingSession", timeout=10):
                    call.retract()
                outcomes["retract"] += 1
                continue
            if n % 10 == 7:
                with sdk.expect_event("handledPendingSession", timeout=10):
                    call.answer_from_other_client()
                outcomes["elsewhere"] += 1
                continue
            with sdk.expect_event("sessionStarted", timeout=10) as started:
                sdk.accept_pending_session(ev.value.id, source=SilenceSource(), sink=NullSink())
            session = started.value
            call.wait_state("connected", timeout=15)
            with sdk.expect_event("sessionEnded", timeout=15):
                if n % 2:
                    sdk.end_session(id=session.id)
                    outcomes["rest-end"] += 1
                else:
                    call.hangup()
                    outcomes["remote-hangup"] += 1
        assert sdk.sessions == [] and sdk.pending_sessions == []
        assert all(c.state in ("ended", "retracted", "answered_elsewhere") for c in emulator.calls)
        assert len(emulator.calls) == CALLS
    finally:
        sdk.close()
        emulator.stop()
    wait_until(lambda: threading.active_count() <= threads_before, 10, "threads to end")
    wait_until(lambda: sockets() <= sockets_before + 2, 10, f"sockets to close (before {sockets_before})")
    print(f"\nsoak: {CALLS} calls {outcomes}; threads {threads_before} -> {threading.active_count()}, "
          f"sockets {sockets_before} -> {sockets()}")


def test_memory_threads_and_descriptors_per_call_stay_flat():
    """``benchmarks/soak.py`` in a process of its own (its far ends in another one): every way of waiting for
    a call (``expect_event``, ``once``, ``on``/``off``, ``wait_for_session``), RSS growth < 5 KiB per call.

    Before issue 13, blinker kept every ``expect_event`` receiver and with it the whole call: ~176 KiB per call.
    """
    import json

    from helpers import run_python

    result = run_python(["benchmarks/soak.py", "--calls", "1100", "--warmup", "200", "--json"], timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    soak = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nsoak: {soak}")
    assert soak["rss_kib_per_call"] < 5.0, soak
    assert soak["threads"][1] <= soak["threads"][0] and soak["fds"][1] <= soak["fds"][0], soak
    assert soak["pool_threads"] <= 4 + min(32, (os.cpu_count() or 1) + 4), soak  # the two pools' bounds
