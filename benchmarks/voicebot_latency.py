"""Voice-bot latency through the Pipecat transport: caller speech to the pipeline, and back.

Runs in the Pipecat lane's venv (``make test-pipecat`` builds ``.venv-pipecat``; ``benchmarks/run.py`` calls
this when it exists)::

    scripts/netns-run .venv-pipecat/bin/python benchmarks/voicebot_latency.py [--rounds N] [--json]

One call from the emulator, answered by a :class:`~purecloud_webrtc.contrib.pipecat.PureCloudTransport` with
a pipeline at 16 kHz.  Each round:

* **in**: the far end starts a tone (it was silent); the time until the pipeline gets its first loud
  ``InputAudioRawFrame`` (the far end's sender, the network, our jitter buffer, resampling, the hop to the
  pipeline's loop);
* **out**: the pipeline emits a 200 ms tone; the time until the emulator's far end has it in what it
  received (an aiortc peer: its own receive path, decoder thread and track, is part of that figure; the
  benchmark table's raw-aiortc latency rows show what that path costs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame  # noqa: E402
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

import purecloud_webrtc as pcw  # noqa: E402
from purecloud_webrtc.aio import AsyncPureCloudWebrtcSdk  # noqa: E402
from purecloud_webrtc.contrib.pipecat import PureCloudTransport  # noqa: E402

RATE = 16000
LOUD = 1000  # RMS of a loud 20 ms block (the tones peak at ~9800)


class Watcher(FrameProcessor):
    """Notes when each input frame arrives and how loud it is."""

    def __init__(self) -> None:
        super().__init__()
        self.first_loud_after: float = float("inf")
        self.armed_at = float("inf")

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and self.first_loud_after == float("inf"):
            pcm = np.frombuffer(frame.audio, dtype="<i2").astype(np.float64)
            if pcm.size and np.sqrt((pcm ** 2).mean()) > LOUD and time.monotonic() >= self.armed_at:
                self.first_loud_after = time.monotonic()
        await self.push_frame(frame, direction)


def burst(seconds: float = 0.2, hz: float = 660.0) -> OutputAudioRawFrame:
    t = np.arange(int(RATE * seconds)) / RATE
    return OutputAudioRawFrame(audio=(np.sin(2 * np.pi * hz * t) * 9000).astype("<i2").tobytes(), sample_rate=RATE,
                               num_channels=1)


def first_loud(samples: np.ndarray, block: int) -> int:
    """Index of the first ``block``-sample block of ``samples`` louder than LOUD (-1 if none)."""
    n = samples.size // block
    if n == 0:
        return -1
    blocks = samples[:n * block].reshape(n, block).astype(np.float64)
    loud = np.flatnonzero(np.sqrt((blocks ** 2).mean(axis=1)) > LOUD)
    return int(loud[0]) if loud.size else -1


async def measure(rounds: int) -> Dict[str, List[float]]:
    from purecloud_webrtc.emulator import Emulator

    out: Dict[str, List[float]] = {"in": [], "heard": []}
    with Emulator() as emulator:
        async with AsyncPureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                           streaming_base_url=emulator.streaming_base_url,
                                           ice_host_addresses=["127.0.0.1"], default_source=pcw.media.SilenceSource(),
                                           default_sink=pcw.media.NullSink(), stats_interval=0) as sdk:
            await sdk.initialize()
            transport = PureCloudTransport(sdk)
            watcher = Watcher()
            worker = PipelineWorker(Pipeline([transport.input(), watcher, transport.output()]),
                                    params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
                                    enable_rtvi=False, idle_timeout_secs=None)
            async with sdk.expect_event("pendingSession", timeout=15) as ring:
                call = await asyncio.to_thread(emulator.inbound_call, tone_hz=440.0)
            await transport.answer(ring.value.id)
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            running = asyncio.ensure_future(runner.run())
            await asyncio.to_thread(call.wait_for_audio, 15, 1.0)
            call.set_tone(amplitude=0.0)
            await asyncio.sleep(1.0)
            sink = call._sink
            for _ in range(rounds):
                # in: the far end starts talking
                watcher.first_loud_after, watcher.armed_at = float("inf"), time.monotonic()
                started = time.monotonic()
                call.set_tone(amplitude=0.3)
                while watcher.first_loud_after == float("inf") and time.monotonic() - started < 3:
                    await asyncio.sleep(0.002)
                out["in"].append((watcher.first_loud_after - started) * 1000.0)
                await asyncio.sleep(0.3)
                call.set_tone(amplitude=0.0)
                await asyncio.sleep(0.6)
                # out: the bot talks
                position = sink.total_seconds
                emitted = time.monotonic()
                await worker.queue_frame(burst())
                heard_at = float("inf")
                while time.monotonic() - emitted < 3:
                    fresh = sink.samples(last_seconds=max(0.0, sink.total_seconds - position))
                    if first_loud(fresh, 480) >= 0:
                        heard_at = time.monotonic()
                        break
                    await asyncio.sleep(0.002)
                out["heard"].append((heard_at - emitted) * 1000.0)
                await asyncio.sleep(0.6)
            await transport.hangup()
            await asyncio.wait_for(running, 10)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object (benchmarks/run.py reads it)")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    result = asyncio.run(measure(args.rounds))
    if args.json:
        print(json.dumps(result))
        return 0
    for key, label in (("in", "caller speech -> pipeline input frame"),
                       ("heard", "output frame -> received by the far end")):
        values = sorted(result[key])
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        print(f"{label}: p50 {statistics.median(values):.0f} ms, p95 {p95:.0f} ms ({len(values)} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
