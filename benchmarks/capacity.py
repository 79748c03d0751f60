"""Concurrent calls per process, CPU and RSS per call, and idle CPU: ours (the SDK) / raw aiortc.

The measured side runs in its own process (``_worker.py``) so its CPU and RSS are its own; the far ends
run in this process, the same kind for both, and cheaper than the measured side so that they are not what
runs out first (:mod:`purecloud_webrtc.emulator.cheap`: aiortc peers that send a pre-encoded Opus tone and
count what they receive without decoding it; the emulator's far ends with ``cheap_far_ends=True`` for the
SDK).  Their own CPU is reported beside each step.  Calls are added in steps (1, 4, 12, then 8 more at a
time) until a step fails: it passes when every call received at least 48.5 frames/s over the window, no
call's lag grew by more than 50 ms, and no call had more than 2 % of its audio damaged: concealed (ours)
or missing, i.e. the track stalled (raw aiortc).  The figure is the last step that passed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from _common import HERE, loopback_only, new_pc

PY = sys.executable


class Worker:
    """A ``_worker.py`` subprocess (blocking JSON-lines client)."""

    def __init__(self, *args: str) -> None:
        import subprocess

        self.proc = subprocess.Popen([PY, os.path.join(HERE, "_worker.py"), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self.read(60)

    def read(self, timeout: float) -> Dict[str, Any]:
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("the worker did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the worker exited")
        return json.loads(line)

    def ask(self, msg: Dict[str, Any], timeout: float = 120.0) -> Dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def close(self) -> None:
        try:
            self.ask({"cmd": "quit"}, 30)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def _passes(m: Dict[str, Any]) -> bool:
    return (min(m["fps"]) >= 48.5 and max(m["lag_growth_ms"]) <= 50.0
            and max(m["concealed_fraction"]) <= 0.02)


def _summary(n: int, m: Dict[str, Any], far_cpu: float, *, base_rss: float) -> Dict[str, Any]:
    return {"calls": n, "ok": _passes(m), "min_fps": min(m["fps"]), "max_lag_growth_ms": max(m["lag_growth_ms"]),
            "max_concealed": max(m["concealed_fraction"]), "cpu_per_call": m["cpu"] / n,
            "rss_per_call_mb": (m["rss_mb"] - base_rss) / n, "cpu": m["cpu"], "far_end_cpu": far_cpu}


#: the calls up while both cores are taken (:func:`starve`)
STARVE_AT = 4
#: spinning processes per core while starving: more runnable processes than cores, as on a busy server
HOGS_PER_CORE = 4
HOG = os.path.join(os.path.dirname(HERE), "scripts", "cpu-hog")


def starve(worker: "Worker", log: Any, name: str, hog_seconds: float = 5.0, before: float = 2.0,
           after: float = 4.0) -> Dict[str, Any]:
    """Take every core with a spinning process for ``hog_seconds`` while the worker's calls run.

    The worker reports the worst call's backlog every 50 ms (ours: audio buffered ahead of the playout
    point; raw aiortc: how late frames come out against the sender's clock).  Figures: the backlog's peak
    above its level before the hog, and how long after the hog ended it stayed more than 40 ms above
    that level (the recovery time).
    """
    import statistics
    import subprocess

    total = before + hog_seconds + after
    result: Dict[str, Any] = {}
    tracker = threading.Thread(target=lambda: result.update(worker.ask({"cmd": "track", "seconds": total},
                                                                       total + 60)), daemon=True)
    tracker.start()
    time.sleep(before)
    start = time.monotonic()
    hog = subprocess.Popen([PY, HOG, str(hog_seconds), str(HOGS_PER_CORE * (os.cpu_count() or 2))])
    try:
        hog.wait(hog_seconds + 30)
    finally:
        if hog.poll() is None:
            hog.kill()
    stop = time.monotonic()
    tracker.join(total + 90)
    samples = result.get("samples") or []
    base = [v for t, v in samples if t < start] or [0.0]
    baseline = statistics.median(base)
    during = [v for t, v in samples if t >= start] or [baseline]
    above = [t for t, v in samples if t >= stop and v > baseline + 40.0]
    recovered = max(0.0, max(above) + 0.05 - stop) if above else 0.0
    out = {"baseline_ms": baseline, "peak_backlog_ms": max(during) - baseline, "recovery_s": recovered,
           "hog_s": stop - start, "recovered_in_window": not above or max(above) < samples[-1][0] - 0.2}
    log(f"starvation {name} ({STARVE_AT} calls, {os.cpu_count()} cores hogged {stop - start:.1f} s): {out}")
    return out


def steps_until(limit: int) -> List[int]:
    """1, 4, 12, then 8 more at a time, up to ``limit`` (a run stops at the first step that fails)."""
    return [1, 4, 12] + list(range(20, limit + 1, 8))


def _measure(worker: "Worker", window: float) -> Any:
    """The worker's measurement over ``window`` s, and this process's CPU (the far ends') meanwhile."""
    t0, c0 = time.monotonic(), time.process_time()
    m = worker.ask({"cmd": "measure", "seconds": window})
    return m, (time.process_time() - c0) / (time.monotonic() - t0)


def capacity_ours(steps: List[int], window: float, log: Any, jitter_buffer: bool = True,
                  starvation: bool = False, noise: bool = False) -> List[Dict[str, Any]]:
    """The SDK (with its jitter buffer, or with ``jitter_buffer=False`` to price the SDK's other costs).

    With ``noise`` the SDK sends audio that never repeats (see ``_worker.make_source``) instead of a tone.
    """
    from purecloud_webrtc.emulator import Emulator

    rows: List[Dict[str, Any]] = []
    name = ("ours" if jitter_buffer else "sdk without jitter buffer") + (" (noise)" if noise else "")
    with Emulator(cheap_far_ends=True) as emu:
        worker = Worker("sdk", emu.api_base_url, emu.streaming_base_url, emu.access_token,
                        *([] if jitter_buffer else ["--no-jitter-buffer"]), *(["--noise"] if noise else []))
        try:
            base = worker.hello["rss_mb"]
            for n in steps:
                got = worker.ask({"cmd": "calls", "n": n}, 60 + 2 * n)["calls"]
                if got < n:
                    log(f"capacity {name}: only {got}/{n} calls came up")
                    rows.append({"calls": n, "ok": False})
                    break
                time.sleep(2.0)
                row = _summary(n, *_measure(worker, window), base_rss=base)
                rows.append(row)
                log(f"capacity {name} {n}: {row}")
                if n == STARVE_AT and starvation:
                    row["starvation"] = starve(worker, log, name)
                if not row["ok"]:
                    break
        finally:
            worker.close()
    return rows


class _FarEnds:
    """Raw aiortc far ends for the raw-aiortc capacity run, on a loop thread of this process."""

    def __init__(self) -> None:
        from purecloud_webrtc import _ice

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-farends", daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._restrict(_ice), self.loop).result(5)
        self.pcs: List[Any] = []

    @staticmethod
    async def _restrict(ice: Any) -> None:
        ice.restrict_host_addresses(asyncio.get_running_loop(), ["127.0.0.1"])

    def run(self, coro: Any, timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def offers(self, n: int) -> List[str]:
        from purecloud_webrtc.emulator.cheap import PacketCounter, PreEncodedToneTrack

        out = []
        for _ in range(n):
            pc = new_pc()
            pc.addTrack(PreEncodedToneTrack(440.0))

            def on_track(track: Any, pc: Any = pc) -> None:
                # Counted, never decoded (and nothing queues up in aiortc's track).
                receiver = next((r for r in pc.getReceivers() if r.track is track), None)
                PacketCounter().attach(receiver)

            pc.on("track", on_track)

            await pc.setLocalDescription(await pc.createOffer())
            self.pcs.append(pc)
            out.append(loopback_only(pc.localDescription.sdp))
        return out

    async def answers(self, answers: List[str]) -> None:
        from aiortc import RTCSessionDescription

        for pc, sdp in zip(self.pcs[len(self.pcs) - len(answers):], answers):
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def close_all(self) -> None:
        for pc in self.pcs:
            await pc.close()

    def close(self) -> None:
        try:
            self.run(self.close_all(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def capacity_raw(steps: List[int], window: float, log: Any, starvation: bool = False,
                 noise: bool = False) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    name = "raw" + (" (noise)" if noise else "")
    far = _FarEnds()
    worker = Worker("raw", *(["--noise"] if noise else []))
    try:
        base = worker.hello["rss_mb"]
        have = 0
        for n in steps:
            offers = far.run(far.offers(n - have))
            answers = worker.ask({"cmd": "answer", "offers": offers}, 60 + 2 * n)["answers"]
            far.run(far.answers(answers))
            have = n
            got = worker.ask({"cmd": "wait"}, 60)["calls"]
            if got < n:
                log(f"capacity {name}: only {got}/{n} calls came up")
                rows.append({"calls": n, "ok": False})
                break
            time.sleep(2.0)
            row = _summary(n, *_measure(worker, window), base_rss=base)
            rows.append(row)
            log(f"capacity {name} {n}: {row}")
            if n == STARVE_AT and starvation:
                row["starvation"] = starve(worker, log, name)
            if not row["ok"]:
                break
    finally:
        worker.close()
        far.close()
    return rows


def _proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def capacity_lib(steps: List[int], window: float, log: Any) -> List[Dict[str, Any]]:
    """libwebrtc (Node + @roamhq/wrtc, ``benchmarks/node/party.js``) as the measured side: it answers the
    same cheap far ends as raw aiortc, sends a tone back in 10 ms chunks and plays what it receives into an
    ``RTCAudioSink`` (decoded by libwebrtc, through its own jitter buffer).  A step passes when every call
    delivered at least 97 % of its 10 ms chunks and libwebrtc concealed at most 2 % of the window."""
    from _common import NodeParty

    rows: List[Dict[str, Any]] = []
    if not NodeParty.available():
        log("benchmarks/node has no node_modules: libwebrtc capacity skipped (run `make bench`)")
        return rows
    far = _FarEnds()
    node = NodeParty()
    far.run(node.start())
    assert node.proc is not None
    pid = node.proc.pid
    try:
        base = _proc_rss_mb(pid)
        have = 0
        for n in steps:
            offers = far.run(far.offers(n - have))
            answers = []
            for i, offer in enumerate(offers):
                key = have + i
                answers.append(far.run(node.request({"cmd": "answer", "id": key, "sdp": offer, "tone": 660},
                                                    key, 60))["sdp"])
            far.run(far.answers(answers))
            have = n

            def stats() -> List[Dict[str, Any]]:
                return [far.run(node.request({"cmd": "stats", "id": k}, k, 30))["stats"] for k in range(n)]

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(s["frames10ms"] > 50 for s in stats()):
                time.sleep(0.2)
            time.sleep(2.0)
            before, t0, c0, f0 = stats(), time.monotonic(), _proc_cpu_seconds(pid), time.process_time()
            time.sleep(window)
            after, t1, c1, f1 = stats(), time.monotonic(), _proc_cpu_seconds(pid), time.process_time()
            span = t1 - t0
            m = {"fps": [(a["frames10ms"] - b["frames10ms"]) / 2.0 / span for a, b in zip(after, before)],
                 "lag_growth_ms": [0.0 for _ in after],
                 "concealed_fraction": [((a["concealedMs"] or 0.0) - (b["concealedMs"] or 0.0)) / 1000.0 / span
                                        for a, b in zip(after, before)],
                 "cpu": (c1 - c0) / span, "rss_mb": _proc_rss_mb(pid)}
            row = _summary(n, m, (f1 - f0) / span, base_rss=base)
            rows.append(row)
            log(f"capacity libwebrtc {n}: {row}")
            if not row["ok"]:
                break
    finally:
        try:
            far.run(node.close(), 30)
        finally:
            far.close()
    return rows


def idle_cpu(seconds: float, log: Any) -> Dict[str, Any]:
    """CPU of a connected SDK with no call (its own process), over ``seconds``."""
    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emu:
        worker = Worker("sdk", emu.api_base_url, emu.streaming_base_url, emu.access_token)
        try:
            result = worker.ask({"cmd": "idle", "seconds": seconds}, seconds + 60)
        finally:
            worker.close()
    log(f"idle: {result}")
    return result


def best(rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The last step that passed."""
    ok = [r for r in rows if r.get("ok")]
    return ok[-1] if ok else None
