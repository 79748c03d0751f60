"""Soak: many calls in a row, each awaited a different way; memory, threads and sockets per call.

    scripts/netns-run .venv/bin/python benchmarks/soak.py [--calls 1000] [--warmup 50] [--json]

Every call rings the SDK from the bundled emulator (in a process of its own, so that only the SDK's memory
is measured), is answered (silence in, nothing out), connects, and is
hung up (by REST or by the far end, alternately).  The calls rotate through the four ways a user waits for
one: ``expect_event``, ``once``, ``on`` + ``off``, and ``wait_for_session``.  After ``--warmup`` calls
(caches, lazily imported codecs, pools at their working size) the resident set, thread count and open
descriptors are read, and again after the rest; the growth per call is what a long-running bot pays.
Before each reading the garbage collector runs and glibc gives freed heap back (``malloc_trim``), so the
figure is live memory, not the allocator's high-water mark.

The suite runs a short version (tests/integration/test_soak.py); ``make bench`` does not run this (it
takes about 5 minutes for 1000 calls): run it by hand.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict

import purecloud_webrtc as pcw
from purecloud_webrtc.emulator.process import EmulatorProcess
from purecloud_webrtc.media import NullSink, SilenceSource

WAYS = ("expect_event", "once", "on_off", "wait_for_session")


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def settle() -> Dict[str, int]:
    """Collect garbage, give freed heap back to the system, and read RSS, threads and descriptors."""
    for _ in range(3):
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: RSS includes the allocator's free lists
    # Thread pools start their workers on demand, up to a bound: the SDK's I/O pool (pcw-io-N, 4 threads) and
    # the core loop's default executor (asyncio_N: aioice resolves addresses there; min(32, cores + 4)).
    # They are counted apart, so that a worker started late under load is not taken for a leak.
    names = [t.name for t in threading.enumerate()]
    pool = [n for n in names if n.startswith(("pcw-io-", "asyncio_"))]
    return {"rss_kib": rss_kib(), "threads": len(names) - len(pool), "pool_threads": len(pool),
            "thread_names": sorted(n for n in names if n not in pool), "fds": len(os.listdir("/proc/self/fd"))}


def wait_for(sdk: pcw.PureCloudWebrtcSdk, way: str, name: str, fire: Callable[[], Any],
             conversation_id: Callable[[], str] = lambda: "", timeout: float = 15.0) -> Any:
    """Do ``fire()`` and wait for event ``name`` the ``way`` given; returns its first argument."""
    if way == "expect_event" or (way == "wait_for_session" and name != "sessionStarted"):
        with sdk.expect_event(name, timeout=timeout) as ev:
            fire()
        return ev.value
    if way == "wait_for_session":
        fire()
        return sdk.wait_for_session(conversation_id(), timeout=timeout)
    got: list = []
    done = threading.Event()

    def receiver(*args: Any) -> None:
        got.append(args[0] if args else None)
        done.set()

    if way == "once":
        sdk.once(name, receiver)
        fire()
        if not done.wait(timeout):
            raise TimeoutError(f"{name} did not arrive")
    else:  # on + off
        sdk.on(name, receiver)
        try:
            fire()
            if not done.wait(timeout):
                raise TimeoutError(f"{name} did not arrive")
        finally:
            sdk.off(name, receiver)
    return got[0]


def one_call(sdk: pcw.PureCloudWebrtcSdk, far: Any, n: int) -> None:
    way = WAYS[n % len(WAYS)]
    calls: list = []
    pending = wait_for(sdk, way if way != "wait_for_session" else "once", "pendingSession",
                       lambda: calls.append(far.inbound_call()))
    call = calls[0]
    session = wait_for(sdk, way, "sessionStarted",
                       lambda: sdk.accept_pending_session(pending.id, source=SilenceSource(), sink=NullSink()),
                       conversation_id=lambda: call.conversation_id)
    call.wait_state("connected", timeout=15)
    if n % 2:
        wait_for(sdk, way, "sessionEnded", lambda: sdk.end_session(id=session.id))
    else:
        wait_for(sdk, way, "sessionEnded", call.hangup)


def soak(calls: int, warmup: int, progress: bool = False) -> Dict[str, Any]:
    far = EmulatorProcess()
    sdk = pcw.PureCloudWebrtcSdk(far.access_token, api_base_url=far.api_base_url,
                                 streaming_base_url=far.streaming_base_url, ice_host_addresses=["127.0.0.1"])
    try:
        sdk.initialize(timeout=15)
        start = measured_from = time.monotonic()
        before: Dict[str, int] = {}
        for n in range(calls):
            if n == warmup:
                far.forget_ended_calls()
                before = settle()
                measured_from = time.monotonic()
            one_call(sdk, far, n)
            if progress and n % 100 == 99:
                print(f"soak: {n + 1} calls, RSS {rss_kib()} KiB", file=sys.stderr, flush=True)
        after = settle()
        assert sdk.sessions == [] and sdk.pending_sessions == [], "a session outlived its call"
        measured = calls - warmup
        return {
            "calls": calls, "warmup": warmup, "seconds": round(time.monotonic() - start, 1),
            "seconds_per_call": round((time.monotonic() - measured_from) / measured, 3),
            "rss_kib_before": before["rss_kib"], "rss_kib_after": after["rss_kib"],
            "rss_kib_per_call": round((after["rss_kib"] - before["rss_kib"]) / measured, 2),
            "threads": [before["threads"], after["threads"]], "pool_threads": after["pool_threads"],
            "new_threads": sorted(set(after["thread_names"]) - set(before["thread_names"])),
            "fds": [before["fds"], after["fds"]],
        }
    finally:
        sdk.close()
        far.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON line (for the suite)")
    args = parser.parse_args()
    if not 0 < args.warmup < args.calls:
        parser.error("--warmup must be between 0 and --calls")
    result = soak(args.calls, args.warmup, progress=not args.json)
    if args.json:
        print(json.dumps(result))
        return
    print(f"soak: {result['calls']} calls ({result['warmup']} warm-up) in {result['seconds']} s, "
          f"{result['seconds_per_call']} s per call, ways {', '.join(WAYS)}")
    print(f"  RSS {result['rss_kib_before']} -> {result['rss_kib_after']} KiB: "
          f"{result['rss_kib_per_call']} KiB per call")
    print(f"  threads {result['threads'][0]} -> {result['threads'][1]}, "
          f"descriptors {result['fds'][0]} -> {result['fds'][1]}")


if __name__ == "__main__":
    main()
