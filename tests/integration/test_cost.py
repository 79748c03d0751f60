"""What one call costs in threads: no Python thread beyond the SDK's documented ones, and no BLAS thread pool.

Not a timing test: it reads the CPU each native thread of this process has used (``/proc``), so it holds
on a loaded machine.  numpy's OpenBLAS starts its worker threads when numpy is imported; they stay
asleep unless a matrix product (``@``, ``np.dot`` on matrices...) wakes them, after which they spin
between our 20 ms frames and burn a core per call.  Here they must not move at all during a call.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Dict, Set

from purecloud_webrtc.media import BufferSink, ToneSource

from helpers import answer_call, wait_until

#: Threads an SDK (and the emulator in the same process) may run during a call: docs/threading.rst.
DOCUMENTED = re.compile(r"^(pcw-(core|ws|events|io|rest|wav|rec|audio-cb|speaker|mic|emulator)-\S+|audio-decoder|"
                        r"asyncio_\d+|MainThread)$")


def _native_cpu_ticks() -> Dict[int, int]:
    """utime + stime (clock ticks) of every native thread of this process, by thread id."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # ended meanwhile
            continue
        ticks[int(tid)] = int(fields[11]) + int(fields[12])
    return ticks


def _python_thread_ids() -> Set[int]:
    return {t.native_id for t in threading.enumerate() if t.native_id is not None}


def test_a_call_wakes_no_blas_pool_and_starts_only_documented_python_threads(emulator, make_sdk):
    import numpy  # noqa: F401  (its BLAS pool exists from here on)

    foreign_before = set(_native_cpu_ticks()) - _python_thread_ids()
    sdk = make_sdk()
    session, call = answer_call(sdk, emulator, tone=440.0, sdk_tone=880.0,
                                source=ToneSource(880.0), sink=BufferSink())
    call.wait_for_audio(timeout=15, min_seconds=0.5)
    # In-band DTMF both ways too: the detector is per-frame work on every received block.
    with session.expect_event("dtmf", timeout=15):
        call.send_dtmf("5")
    # Steady state: measure what the native threads that are not Python's (the BLAS pool) use.
    before = _native_cpu_ticks()
    frames = session.frames_received
    wait_until(lambda: session.frames_received >= frames + 150, 30, "3 s of audio")  # 150 frames of 20 ms
    after = _native_cpu_ticks()
    # The BLAS pool: the native threads that existed before any SDK, numpy's included.
    spent = {tid: after.get(tid, 0) - before.get(tid, 0) for tid in foreign_before if tid in before}
    assert max(spent.values(), default=0) <= 3, f"BLAS (or other native) threads worked during the call: {spent}"
    undocumented = sorted(t.name for t in threading.enumerate() if not DOCUMENTED.match(t.name))
    assert undocumented == [], f"threads not documented in docs/threading.rst: {undocumented}"
    assert abs(session.sink.dominant_frequency(0.5) - 440.0) <= 5


def test_an_opus_call_sends_without_a_thread_pool_hop_per_frame(emulator, make_sdk, monkeypatch):
    """aiortc encodes every 20 ms frame on its default thread pool (a submit, a worker wake-up and a loop
    wake-up each time). With Opus negotiated the SDK encodes with libopus itself and aiortc only
    packetizes: the core thread submits nothing per frame. Not timed: it counts submissions."""
    import concurrent.futures

    submitted = []
    original = concurrent.futures.ThreadPoolExecutor.submit

    def submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if threading.current_thread().name.startswith("pcw-core"):
            submitted.append(getattr(fn, "__qualname__", repr(fn)))
        return original(self, fn, *args, **kwargs)

    sdk = make_sdk()
    session, call = answer_call(sdk, emulator, tone=440.0, sdk_tone=880.0,
                                source=ToneSource(880.0), sink=BufferSink())
    call.wait_for_audio(timeout=15, min_seconds=0.5)
    assert "opus/48000" in session.local_sdp.split("m=audio", 1)[1].split("a=rtpmap:", 2)[1].lower()
    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", submit)
    frames = session.frames_received
    wait_until(lambda: session.frames_received >= frames + 100, 30, "2 s of audio")  # 100 frames of 20 ms
    monkeypatch.undo()
    assert [name for name in submitted if "encode" in name.lower()] == [], submitted[:5]
    assert len(submitted) <= 5, f"the core thread used a thread pool {len(submitted)} times in 2 s: {submitted[:5]}"
    # ... and the far end still hears our tone, encoded by us.
    assert abs(call.heard_frequency(seconds=1.0) - 880.0) <= 5
