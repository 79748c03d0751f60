"""The benchmark suite: one command, one table (ours / raw aiortc / libwebrtc, measured in the same run).

Run it with ``make bench`` (or ``make bench BENCH_ARGS=--quick``), which installs the Node party's
packages and runs this inside a network namespace with only loopback::

    scripts/netns-run .venv/bin/python benchmarks/run.py [--quick] [--only setup,latency,capacity,idle,processing,voicebots,events]

Everything talks to 127.0.0.1 only.  The machine is shared and noisy: read the figures as ratios within
one run.  The full run takes about 15 minutes (latency runs a minute per condition), ``--quick`` a few.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import threading
import time
from typing import Any, Dict, List, Optional

HERE_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE_DIR)


import purecloud_webrtc as pcw  # noqa: E402
import numpy as np  # noqa: E402
from purecloud_webrtc import _ice  # noqa: E402

import capacity  # noqa: E402
import latency  # noqa: E402
import setup_calls  # noqa: E402
from _common import NodeParty, percentile  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fmt(value: Optional[float], digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def p50_95(values: Optional[List[float]]) -> str:
    if not values:
        return "n/a"
    return f"{percentile(values, 50):.0f} / {percentile(values, 95):.0f}"


def event_latency(n: int) -> List[float]:
    """Core emit -> user callback on the events thread, in ms, for ``n`` events spaced 2 ms apart."""
    from purecloud_webrtc.emulator import Emulator

    samples: List[float] = []
    done = threading.Event()
    with Emulator() as emu:
        sdk = pcw.PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url,
                                     streaming_base_url=emu.streaming_base_url, ice_host_addresses=["127.0.0.1"])
        try:
            sdk.initialize(timeout=15)

            def on_trace(level: str, message: str, details: Dict[str, Any]) -> None:
                if message == "bench":
                    samples.append((time.perf_counter() - details["t0"]) * 1000.0)
                    if len(samples) >= n:
                        done.set()

            sdk.on("trace", on_trace)
            core = sdk._core
            for _ in range(n):
                core.loop.call_soon_threadsafe(lambda: sdk._emit("trace", "debug", "bench",
                                                                 {"t0": time.perf_counter()}))
                time.sleep(0.002)
            done.wait(10)
        finally:
            sdk.close()
    return samples


async def async_parts(args: argparse.Namespace, results: Dict[str, Any]) -> None:
    _ice.restrict_host_addresses(asyncio.get_running_loop(), ["127.0.0.1"])
    node: Optional[NodeParty] = None
    if NodeParty.available():
        node = NodeParty()
        await node.start()
    else:
        log("benchmarks/node has no node_modules: libwebrtc column skipped (run `make bench`)")
    try:
        if "setup" in args.only:
            results["setup_raw"] = await setup_calls.measure_raw(args.calls)
            log("setup raw aiortc done")
            if node is not None:
                results["setup_lib"] = await setup_calls.measure_libwebrtc(node, args.calls)
                log("setup libwebrtc done")
        if "latency" in args.only:
            results["latency"] = await latency.run_all(args.seconds, node, log)
    finally:
        if node is not None:
            await node.close()


def voicebot_latency(rounds: int) -> Optional[Dict[str, List[float]]]:
    """benchmarks/voicebot_latency.py in the Pipecat lane's venv (``make test-pipecat`` builds it)."""
    import json
    import subprocess

    python = os.path.join(os.path.dirname(HERE_DIR), ".venv-pipecat", "bin", "python")
    if not os.path.exists(python):
        log("no .venv-pipecat (make test-pipecat builds it): voice-bot latency skipped")
        return None
    proc = subprocess.run([python, os.path.join(HERE_DIR, "voicebot_latency.py"), "--rounds", str(rounds), "--json"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        log(f"voice-bot latency failed: {proc.stderr.strip()[-500:]}")
        return None
    result: Dict[str, List[float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    log(f"voice bot: in p50 {percentile(result['in'], 50):.0f} ms, out p50 {percentile(result['heard'], 50):.0f} ms")
    return result


def table(results: Dict[str, Any], args: argparse.Namespace) -> str:
    rows: List[List[str]] = []
    goals: List[str] = []
    so, sr, sl = results.get("setup_ours"), results.get("setup_raw"), results.get("setup_lib")
    if so or sr:
        n = len((so or sr or {}).get("first_audio", []))
        rows.append([f"call setup p50 / p95 (ms, {n} calls): propose → sessionStarted",
                     p50_95(so and so["started"]), "n/a", "n/a"])
        rows.append(["  … → media connected", p50_95(so and so["connected"]), p50_95(sr and sr["connected"]),
                     p50_95(sl and sl["connected"])])
        rows.append(["  … → first audio frame", p50_95(so and so["first_audio"]), p50_95(sr and sr["first_audio"]),
                     p50_95(sl and sl["first_audio"])])
        rows.append(["  signalling round trip p50 (XMPP ping, ms)", fmt(percentile(so["rtt"], 50), 1) if so else "n/a",
                     "n/a", "n/a"])
        if so and sr:
            ours = percentile(so["first_audio"], 50)
            bound = 1.5 * (percentile(sr["first_audio"], 50) + percentile(so["rtt"], 50))
            goals.append(f"call setup p50 {ours:.0f} ms <= 1.5 x (raw aiortc {percentile(sr['first_audio'], 50):.0f} "
                         f"+ round trip {percentile(so['rtt'], 50):.1f}) = {bound:.0f} ms: "
                         f"{'MET' if ours <= bound else 'NOT MET'}")
    lat = results.get("latency")
    if lat:
        for label, outcomes in lat.items():
            rows.append([f"mouth-to-ear p50 (ms), {label}"] + [fmt(outcomes[k].p50) if k in outcomes else "n/a"
                                                               for k in ("ours", "raw", "libwebrtc")])
        for label in ("1 % loss", "5 % loss", "30 ms jitter"):
            outcomes = lat[label]
            rows.append([f"  {label}: latency at start → end of run (ms)"] + [
                f"{fmt(outcomes[k].start)} → {fmt(outcomes[k].end)}" if k in outcomes else "n/a"
                for k in ("ours", "raw", "libwebrtc")])
            rows.append([f"  {label}: gaps (count / ms)"] + [
                f"{outcomes[k].gap_events} / {outcomes[k].gap_ms:.0f}" if k in outcomes else "n/a"
                for k in ("ours", "raw", "libwebrtc")])
            rows.append([f"  {label}: concealed ms / clicks heard"] + [
                f"{fmt(outcomes[k].concealed_ms)} / {outcomes[k].heard}" if k in outcomes else "n/a"
                for k in ("ours", "raw", "libwebrtc")])
        z, f = lat["0 % loss"], lat["5 % loss"]
        if z["ours"].p50 is not None and z["raw"].p50 is not None:
            goals.append(f"latency at 0 % loss: ours {z['ours'].p50:.0f} ms <= raw aiortc {z['raw'].p50:.0f} ms: "
                         f"{'MET' if z['ours'].p50 <= z['raw'].p50 else 'NOT MET'}")
        if z["ours"].p50 is not None and f["ours"].end is not None:
            worst = max(f["ours"].p50 or 0, f["ours"].end)
            goals.append(f"latency at 5 % loss: ours {f['ours'].p50:.0f} ms (end of run {f['ours'].end:.0f}) within "
                         f"30 ms of ours at 0 % ({z['ours'].p50:.0f}): "
                         f"{'MET' if worst <= z['ours'].p50 + 30 else 'NOT MET'}; raw aiortc "
                         f"{fmt(f['raw'].p50)} ms")
    co, cr = results.get("capacity_ours"), results.get("capacity_raw")
    if co is not None or cr is not None:
        cl = results.get("capacity_lib")
        bo, br, bl = capacity.best(co or []), capacity.best(cr or []), capacity.best(cl or [])
        cols = (bo, br, bl) if cl else (bo, br)
        pad = [] if cl else ["n/a"]

        def each(value: Any) -> List[str]:
            return [value(b) if b else "n/a" for b in cols] + pad

        rows.append(["concurrent bidirectional calls at 50 frames/s, no lag growth"]
                    + [str(b["calls"]) if b else "0" for b in cols] + pad)
        rows.append(["  CPU per call at that load (% of a core)"] + each(lambda b: fmt(b["cpu_per_call"] * 100, 1)))
        rows.append(["  RSS per call (MB)"] + each(lambda b: fmt(b["rss_per_call_mb"], 1)))
        rows.append(["  calls per core (calls / CPU of the measured process, last step that passed)"]
                    + each(lambda b: fmt(b["calls"] / max(b["cpu"], 1e-9), 1)))
        for n in (1, 4, 12):
            at = [next((r for r in c or [] if r["calls"] == n and "cpu" in r), None) for c in (co, cr, cl)]
            ro, rr = at[0], at[1]
            ratio = f" (ratio {ro['cpu'] / rr['cpu']:.2f})" if ro and rr and rr["cpu"] else ""
            rows.append([f"  CPU per call at {n} call{'s' if n > 1 else ''} (% of a core){ratio}"]
                        + [fmt(r and r["cpu_per_call"] * 100, 1) for r in at])
            rows.append([f"    far ends' own CPU at {n} (% of a core, another process)"]
                        + [fmt(r and r["far_end_cpu"] * 100, 1) for r in at])
            if ro and rr and rr["cpu"]:
                goals.append(f"CPU at {n} call{'s' if n > 1 else ''}: ours {ro['cpu'] * 100:.1f} % <= 0.5 x raw aiortc "
                             f"{rr['cpu'] * 100:.1f} %: {'MET' if ro['cpu'] <= 0.5 * rr['cpu'] else 'NOT MET'} "
                             f"(ratio {ro['cpu'] / rr['cpu']:.2f})")
        on, rn = (capacity.best(results.get(k) or []) for k in ("capacity_ours_noise", "capacity_raw_noise"))
        if on or rn:
            ratio = f" (ratio {on['cpu'] / rn['cpu']:.2f})" if on and rn and rn["cpu"] else ""
            rows.append([f"  CPU per call at {capacity.STARVE_AT} calls sending audio that never repeats (every "
                         f"frame encoded){ratio}", fmt(on and on["cpu_per_call"] * 100, 1),
                         fmt(rn and rn["cpu_per_call"] * 100, 1), "n/a"])
        so_, sr_ = ((next((r for r in rows_ or [] if "starvation" in r), {}) or {}).get("starvation")
                    for rows_ in (co, cr))
        if so_ or sr_:
            label = (f"starved ({capacity.STARVE_AT} calls, {capacity.HOGS_PER_CORE} spinning processes per core "
                     f"for 5 s): peak backlog (ms) / recovery after (s)")
            rows.append([label] + [f"{fmt(x['peak_backlog_ms'])} / {fmt(x['recovery_s'], 2)}" if x else "n/a"
                                   for x in (so_, sr_)] + ["n/a"])
            if so_:
                goals.append(f"starvation: backlog back to normal {so_['recovery_s']:.2f} s after the hog (peak "
                             f"{so_['peak_backlog_ms']:.0f} ms) <= 1 s: "
                             f"{'MET' if so_['recovery_s'] <= 1.0 and so_['recovered_in_window'] else 'NOT MET'}")
        bn = capacity.best(results.get("capacity_nojb") or [])
        if results.get("capacity_nojb") is not None:
            rows.append(["  the SDK with jitter_buffer=False: calls (frames/s test only) / CPU per call (%)",
                         f"{bn['calls'] if bn else 0} / {fmt(bn and bn['cpu_per_call'] * 100, 1)}", "", ""])
        top = max(args.steps)
        capped = " (the largest step allowed: no limit found)" if bo and bo["calls"] == top else ""
        goals.append(f"concurrent calls: ours {bo['calls'] if bo else 0}{capped} >= raw aiortc "
                     f"{br['calls'] if br else 0}: {'MET' if (bo['calls'] if bo else 0) >= (br['calls'] if br else 0) else 'NOT MET'}")
    idle = results.get("idle")
    if idle:
        rows.append([f"idle CPU, connected, no call, {args.idle:.0f} s (% of a core)", fmt(idle["cpu"] * 100, 2),
                     "n/a", "n/a"])
        goals.append(f"idle CPU {idle['cpu'] * 100:.2f} % < 0.2 % of a core: {'MET' if idle['cpu'] < 0.002 else 'NOT MET'}")
    pc = results.get("processing")
    if pc:
        for name, cost in pc.items():
            rows.append([f"microphone processing per call, {name} (% of a core)", fmt(cost * 100, 2), "n/a",
                         "n/a"])
    vb = results.get("voicebots")
    if vb:
        rows.append([f"voice bot (Pipecat, 16 kHz): caller speech → pipeline input frame p50 / p95 (ms, "
                     f"{len(vb['in'])} rounds)", p50_95(vb["in"]), "n/a", "n/a"])
        rows.append(["  pipeline output frame → received by the far end (an aiortc peer) p50 / p95 (ms)",
                     p50_95(vb["heard"]), "n/a", "n/a"])
    ev = results.get("events")
    if ev:
        rows.append([f"event latency core emit → callback p50 / p99 (ms, {len(ev)} events)",
                     f"{percentile(ev, 50):.2f} / {percentile(ev, 99):.2f}", "n/a", "n/a"])
    headers = ["", "ours", "raw aiortc", "libwebrtc"]
    widths = [max(len(r[i]) for r in rows + [headers]) for i in range(4)]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(headers, widths)), rule]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.append(rule)
    lines.append("")
    lines += [f"* {g}" for g in goals]
    return "\n".join(lines)


def processing_cost(seconds: float) -> Dict[str, float]:
    """CPU (fraction of a core) of one call's microphone stages (the voice extra) on 20 ms frames at 50/s.

    The stages are what a call runs per frame (``MicProcessor.process``, with the echo return loss and
    delay measurements); the signal is speech-like noise with its echo, so every stage works.
    """
    try:
        from purecloud_webrtc.media.processing import AudioProcessing, MicProcessor, processing_available
    except ImportError:  # pragma: no cover
        return {}
    if not processing_available():
        log("processing: the voice extra is not installed; skipped")
        return {}
    rng = np.random.default_rng(1)
    n = int(seconds * 48000) // 960 * 960
    far = np.rint(rng.normal(0, 3000, n) * ((np.arange(n) / 48000 % 0.5) < 0.3)).clip(-32768, 32767).astype(np.int16)
    near = (np.concatenate([np.zeros(4320, np.int16), far[:-4320]]) // 3).astype(np.int16)
    out: Dict[str, float] = {}
    for name, settings in (("echo cancellation + noise suppression + gain control", AudioProcessing(True, True, True)),
                           ("echo cancellation alone", AudioProcessing(True, False, False)),
                           ("noise suppression alone", AudioProcessing(False, True, False))):
        processor = MicProcessor(settings)
        started = time.process_time()
        for i in range(0, n, 960):
            processor.process(near[i:i + 960], far[i:i + 960])
        out[name] = (time.process_time() - started) / (n / 48000)
        log(f"processing {name}: {out[name] * 100:.2f} % of a core per call")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes instead of ~15")
    parser.add_argument("--only", default="setup,latency,capacity,idle,processing,voicebots,events",
                        help="comma-separated parts (default: all)")
    args = parser.parse_args(argv)
    args.only = set(args.only.split(","))
    args.calls = 30
    args.seconds = 15.0 if args.quick else 60.0
    args.idle = 10.0 if args.quick else 60.0
    args.window = 6.0 if args.quick else 10.0
    # Steps go on until one fails (the limit is only a guard on a machine with many cores).
    args.steps = capacity.steps_until(60 if args.quick else 400)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aioice").setLevel(logging.ERROR)
    results: Dict[str, Any] = {}
    started = time.monotonic()
    log(f"benchmarks ({'quick' if args.quick else 'full'}) on {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}")
    if "setup" in args.only:
        results["setup_ours"] = setup_calls.measure_ours(args.calls, log)
    asyncio.run(async_parts(args, results))
    if "capacity" in args.only:
        results["capacity_ours"] = capacity.capacity_ours(args.steps, args.window, log, starvation=True)
        results["capacity_raw"] = capacity.capacity_raw(args.steps, args.window, log, starvation=True)
        results["capacity_lib"] = capacity.capacity_lib(args.steps, args.window, log)
        results["capacity_ours_noise"] = capacity.capacity_ours([capacity.STARVE_AT], args.window, log, noise=True)
        results["capacity_raw_noise"] = capacity.capacity_raw([capacity.STARVE_AT], args.window, log, noise=True)
        results["capacity_nojb"] = capacity.capacity_ours(args.steps, args.window, log, jitter_buffer=False)
    if "idle" in args.only:
        results["idle"] = capacity.idle_cpu(args.idle, log)
    if "processing" in args.only:
        results["processing"] = processing_cost(10.0 if args.quick else 30.0)
    if "voicebots" in args.only:
        results["voicebots"] = voicebot_latency(10 if args.quick else 30)
    if "events" in args.only:
        results["events"] = event_latency(2000)
    print(table(results, args))
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
