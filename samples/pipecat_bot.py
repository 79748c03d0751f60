"""A voice bot on a softphone: a Pipecat pipeline answers calls, with no external service.

    python samples/pipecat_bot.py                 # against the emulator: it rings once and plays a caller
    python samples/pipecat_bot.py --token TOKEN   # against your org: call the bot's user (Ctrl-C to stop)

Needs ``pip install 'purecloud_webrtc[pipecat]'`` (Python 3.11+).  Each call gets its own transport and
pipeline: ``transport.input() -> EchoBot -> transport.output()``.  The bot greets the caller with a chime,
then echoes what it hears an octave up (a crude pitch shift), plays a tone when the caller presses 1, and
says goodbye and hangs up on #.

Where a real assistant plugs in: replace ``EchoBot`` with Pipecat services, e.g.::

    stt = DeepgramSTTService(api_key=...)          # speech to text
    llm = OpenAILLMService(api_key=..., model=...)  # the conversation
    tts = CartesiaTTSService(api_key=..., voice_id=...)  # text to speech
    context = LLMContext([{"role": "system", "content": "You are a helpful agent."}])
    aggregators = LLMContextAggregatorPair(context)
    Pipeline([transport.input(), stt, aggregators.user(), llm, tts, transport.output(), aggregators.assistant()])

The transport carries 16 kHz audio both ways here (``PipelineParams``), DTMF as ``InputDTMFFrame`` /
``OutputDTMFFrame``, and ends the pipeline when the caller hangs up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import sys
from typing import Any, Deque, Optional

import numpy as np

try:
    from pipecat.frames.frames import Frame, InputAudioRawFrame, InputDTMFFrame, OutputAudioRawFrame, StartFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.workers.runner import WorkerRunner
except ImportError:
    sys.exit("this sample needs Pipecat: pip install 'purecloud_webrtc[pipecat]' (Python 3.11+)")

from purecloud_webrtc.aio import AsyncPureCloudWebrtcSdk
from purecloud_webrtc.contrib.pipecat import PureCloudTransport

RATE = 16000


def tone(hz: float, seconds: float, level: float = 0.3) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms ramps: no clicks
    return (np.sin(2 * np.pi * hz * t) * fade * level * 32767).astype("<i2").tobytes()


class EchoBot(FrameProcessor):
    """Greets, echoes an octave up, answers DTMF 1 with a tone and # with goodbye and a hang-up."""

    def __init__(self, transport: PureCloudTransport, greeting: Optional[bytes] = None) -> None:
        super().__init__()
        self.transport = transport
        self.greeting = greeting if greeting is not None else tone(523.25, 0.25) + tone(659.25, 0.25)
        self.prompt_until = 0.0  # the echo pauses while a prompt plays
        self.delay: Deque[bytes] = collections.deque(maxlen=15)  # 300 ms of 20 ms frames

    async def say(self, audio: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.prompt_until = max(self.prompt_until, loop.time()) + len(audio) / 2 / RATE
        await self.push_frame(OutputAudioRawFrame(audio=audio, sample_rate=RATE, num_channels=1))

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            await self.say(self.greeting)
            print("bot: greeted the caller", flush=True)
        elif isinstance(frame, InputAudioRawFrame):
            self.delay.append(frame.audio)
            if len(self.delay) == self.delay.maxlen and asyncio.get_running_loop().time() >= self.prompt_until:
                pcm = np.frombuffer(self.delay[0], dtype="<i2")
                # Octave up: every other sample, twice (the frame keeps its length).
                shifted = np.concatenate([pcm[::2], pcm[::2]]).astype("<i2")
                await self.push_frame(OutputAudioRawFrame(audio=shifted.tobytes(), sample_rate=RATE, num_channels=1))
        elif isinstance(frame, InputDTMFFrame):
            digit = frame.button.value
            print(f"bot: the caller pressed {digit}", flush=True)
            if digit == "1":
                await self.say(tone(1000.0, 1.0))
            elif digit == "#":
                goodbye = tone(659.25, 0.25) + tone(523.25, 0.25)
                await self.say(goodbye)
                await asyncio.sleep(len(goodbye) / 2 / RATE + 0.1)
                print("bot: goodbye; hanging up", flush=True)
                await self.transport.hangup()
        else:
            await self.push_frame(frame, direction)


async def serve(sdk: AsyncPureCloudWebrtcSdk, runner: WorkerRunner, pending_id: str,
                greeting: Optional[bytes]) -> PipelineWorker:
    """Answer one call with its own transport and pipeline (one per call: many calls, many pipelines)."""
    transport = PureCloudTransport(sdk)
    worker = PipelineWorker(Pipeline([transport.input(), EchoBot(transport, greeting), transport.output()]),
                            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
                            enable_rtvi=False, idle_timeout_secs=None)

    @transport.event_handler("on_call_ended")
    async def on_ended(transport: Any, session: Any, reason: str) -> None:
        print(f"bot: the call ended ({reason})", flush=True)

    await transport.answer(pending_id)
    await runner.add_workers(worker)
    return worker


async def play_caller(call: Any) -> None:
    """The emulator's caller: listens, presses 1, then #."""
    def heard(seconds: float) -> str:
        return f"{call.heard_frequency(seconds):.0f} Hz"

    await asyncio.to_thread(call.wait_for_audio, 15, 1.5)
    await asyncio.sleep(1.0)
    print(f"caller: plays 440 Hz and hears {heard(0.5)} (the echo, an octave up)", flush=True)
    await asyncio.to_thread(call.send_dtmf, "1")
    await asyncio.sleep(0.8)
    print(f"caller: pressed 1 and hears {heard(0.4)}", flush=True)
    await asyncio.sleep(0.6)
    await asyncio.to_thread(call.send_dtmf, "#")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--token", default=os.environ.get("GENESYS_ACCESS_TOKEN"),
                   help="user access token of a real org (default: $GENESYS_ACCESS_TOKEN; none = the emulator)")
    p.add_argument("--environment", default=os.environ.get("GENESYS_ENVIRONMENT", "mypurecloud.com"))
    p.add_argument("--greeting", help="a WAV (or any audio file) to greet callers with instead of the chime")
    p.add_argument("--verbose", "-v", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    if not args.verbose:
        from loguru import logger

        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    greeting = None
    if args.greeting:
        from purecloud_webrtc.media.sources import decode_audio_file

        greeting = decode_audio_file(args.greeting, sample_rate=RATE).astype("<i2").tobytes()
    runner = WorkerRunner(handle_sigint=args.token is not None)
    if args.token:
        async with AsyncPureCloudWebrtcSdk(args.token, environment=args.environment) as sdk:
            await sdk.initialize()
            print("waiting for calls (Ctrl-C to stop)", flush=True)

            async def answer_all() -> None:
                async with sdk.events("pendingSession") as rings:
                    async for ring in rings:
                        await serve(sdk, runner, ring.value.id, greeting)

            answering = asyncio.ensure_future(answer_all())
            try:
                await runner.run(auto_end=False)
            finally:
                answering.cancel()
        return

    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emulator:
        print(f"(no --token: using the bundled emulator at {emulator.api_base_url})", flush=True)
        async with AsyncPureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                           streaming_base_url=emulator.streaming_base_url,
                                           ice_host_addresses=["127.0.0.1"], default_source="silence",
                                           default_sink="null") as sdk:
            await sdk.initialize()
            async with sdk.expect_event("pendingSession", timeout=15) as ring:
                call = await asyncio.to_thread(emulator.inbound_call, tone_hz=440.0)
            await serve(sdk, runner, ring.value.id, greeting)
            caller = asyncio.ensure_future(play_caller(call))
            await asyncio.wait_for(runner.run(), 60)  # ends with the pipeline: the bot hangs up on #
            await caller
            print(f"caller: the call is {call.state}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
