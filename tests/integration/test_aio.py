"""The asyncio twin (purecloud_webrtc.aio) against the emulator: real calls, audio checked both ways.

Each test runs its own loop with ``asyncio.run`` (no asyncio plugin needed) and checks both faces: the
awaitable methods and the events delivered on the loop (callbacks, ``async for``, ``expect_event``), and
that the blocking face sees the same calls (one core, no second protocol implementation).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List, Tuple

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.aio import AsyncPureCloudWebrtcSdk, AsyncSession
from purecloud_webrtc.media import BufferSink, SilenceSource, ToneSource

TOL = 5.0


def make(emulator: Any, **options: Any) -> AsyncPureCloudWebrtcSdk:
    options.setdefault("default_source", SilenceSource())
    options.setdefault("default_sink", BufferSink())
    return AsyncPureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                   streaming_base_url=emulator.streaming_base_url,
                                   ice_host_addresses=["127.0.0.1"], **options)


async def check_audio(session: AsyncSession, call: Any, sdk_tone: float) -> None:
    await asyncio.to_thread(call.wait_for_audio, 15, 1.0)
    assert await asyncio.to_thread(session.sink.wait_for_duration, 1.2, timeout=15)
    assert abs(session.sink.dominant_frequency(last_seconds=1.0) - call.tone_hz) <= TOL
    assert abs(call.heard_frequency(seconds=1.0) - sdk_tone) <= TOL


@pytest.mark.timeout(90)
def test_outbound_call_awaitables_and_callbacks_on_the_loop(emulator):
    async def main() -> None:
        loop_thread = threading.get_ident()
        seen: List[Tuple[str, Any, bool]] = []
        async with make(emulator, default_source=ToneSource(660.0)) as sdk:
            @sdk.on("sessionStarted")
            async def started(session: AsyncSession) -> None:  # a coroutine callback: becomes a task
                seen.append(("sessionStarted", session, threading.get_ident() == loop_thread))

            sdk.on("sessionEnded", lambda session, reason: seen.append(
                ("sessionEnded", reason, threading.get_ident() == loop_thread)))
            # The loop keeps running while initialize() waits on an executor thread.
            ticks = []

            async def ticker() -> None:
                while True:
                    ticks.append(1)
                    await asyncio.sleep(0)

            tick_task = asyncio.create_task(ticker())
            await sdk.initialize(timeout=15)
            tick_task.cancel()
            assert ticks, "the event loop was blocked during initialize()"
            assert sdk.connected and sdk.state == "connected" and sdk.jid

            async with sdk.expect_event("sessionStarted", timeout=20) as ev:
                conversation_id = await sdk.start_softphone_session(phone_number="+13175550123")
            session = ev.value
            assert isinstance(session, AsyncSession)
            assert session.conversation_id == conversation_id
            assert sdk.get_session(conversation_id=conversation_id) is session
            assert sdk.sessions == [session]
            # Both faces share one core: the blocking SDK sees the same call.
            assert [s.id for s in sdk.sync.sessions] == [session.id]
            call = emulator.call_by_conversation(conversation_id)
            await asyncio.to_thread(call.wait_state, "connected", 15)
            await check_audio(session, call, 660.0)
            stats = await session.get_stats()
            assert stats.packets_received > 0
            async with sdk.expect_event("sessionEnded", timeout=20) as ended:
                await sdk.end_session(conversation_id=conversation_id)
            assert ended.args == (session, "success") and session.ended
        assert sdk.state == "closed"
        await asyncio.sleep(0)
        assert [(name, ok) for name, _, ok in seen] == [("sessionStarted", True), ("sessionEnded", True)]
        assert seen[0][1] is session and seen[1][1] == "success"

    asyncio.run(main())


@pytest.mark.timeout(90)
def test_inbound_call_with_async_iterators_and_session_events(emulator):
    async def main() -> None:
        sdk = make(emulator)
        sync_pending: List[str] = []
        sdk.sync.on("pendingSession", lambda p: sync_pending.append(p.id))  # the blocking face, same events
        try:
            await sdk.initialize(timeout=15)
            async with sdk.events("pendingSession", "sessionStarted", "sessionEnded") as events:
                call = await asyncio.to_thread(emulator.inbound_call, tone_hz=500.0)
                first = await events.get(timeout=15)
                assert first.name == "pendingSession" and first.sender is sdk
                pending = first.value
                assert pending.id == call.session_id and pending.conversation_id == call.conversation_id
                await sdk.accept_pending_session(pending.id, source=ToneSource(880.0), sink=BufferSink())
                started = await events.get(timeout=15)
                assert started.name == "sessionStarted"
                session = started.value
                states: List[str] = []
                session.on("change:connectionState", lambda s, state: states.append(state))
                async with session.events("terminated") as session_events:
                    await asyncio.to_thread(call.wait_state, "connected", 15)
                    await check_audio(session, call, 880.0)
                    await asyncio.to_thread(call.hangup)
                    terminated = await session_events.get(timeout=15)
                    assert terminated.name == "terminated" and terminated.args == (session, "success")
                    assert terminated.sender is session
                names = []
                async for event in events:
                    names.append(event.name)
                    if event.name == "sessionEnded":
                        break
                assert names == ["sessionEnded"]
            assert sync_pending == [pending.id]
            assert "connected" in states and states[-1] == "disconnected"
        finally:
            await sdk.close()

    asyncio.run(main())


@pytest.mark.timeout(60)
def test_callback_errors_are_reported_and_close_ends_iteration(emulator, caplog):
    async def main() -> None:
        sdk = make(emulator)
        errors: List[Tuple[Any, Any]] = []
        sdk.on("error", lambda error, details: errors.append((error, details)))

        @sdk.on("ready")
        async def broken() -> None:
            raise RuntimeError("boom in a coroutine callback")

        await sdk.initialize(timeout=15)
        for _ in range(200):
            if errors:
                break
            await asyncio.sleep(0.02)
        assert len(errors) == 1
        error, details = errors[0]
        assert isinstance(error, RuntimeError) and details["event"] == "ready"

        stream = sdk.events("sessionStarted")
        collected: List[Any] = []

        async def consume() -> None:
            async for event in stream:
                collected.append(event)

        consumer = asyncio.create_task(consume())
        await sdk.close()
        await asyncio.wait_for(consumer, 10)  # iteration ended by close, no event was lost or invented
        assert collected == []
        with pytest.raises(pcw.ClosedError):
            await sdk.initialize()

    asyncio.run(main())
    assert "boom in a coroutine callback" in caplog.text


def test_usage_errors_without_a_loop_and_for_unknown_events(emulator):
    sdk = make(emulator)
    try:
        with pytest.raises(ValueError, match="did you mean"):
            sdk.on("pendingSesion", lambda p: None)
        with pytest.raises(pcw.UsageError, match="running asyncio event loop"):
            sdk.events("pendingSession")
        with pytest.raises(pcw.ConfigurationError):
            AsyncPureCloudWebrtcSdk("tok", no_such_option=1)
    finally:
        sdk.sync.close()


@pytest.mark.timeout(60)
def test_wrap_an_existing_blocking_sdk_and_time_out_waits(emulator, make_sdk):
    blocking = make_sdk()  # already initialized on this thread; closed by the fixture

    async def main() -> None:
        sdk = AsyncPureCloudWebrtcSdk.wrap(blocking)
        assert sdk.connected and sdk.sync is blocking
        with pytest.raises(pcw.OperationTimeoutError):
            await sdk.wait_for_event("pendingSession", timeout=0.2)
        waiter = asyncio.create_task(sdk.wait_for_event("pendingSession", timeout=15))
        await asyncio.sleep(0)
        call = await asyncio.to_thread(emulator.inbound_call)
        event = await waiter
        assert event.value.id == call.session_id
        await sdk.initialize()  # already connected: returns at once
        # One hop: the twin awaits the core's coroutine, never through a thread pool of its own.
        assert not any(t.name.startswith("pcw-aio-") for t in threading.enumerate())
        await sdk.close()  # closes the shared blocking SDK too, and stops the pool
        assert blocking.state == "closed"

    asyncio.run(main())


def test_async_commands_take_one_hop_to_the_core(emulator, monkeypatch):
    """The twin awaits the core's coroutines: the blocking facade and any thread pool are never on the path."""
    def poisoned(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the async twin went through the blocking facade")

    for name in ("initialize", "accept_pending_session", "end_session", "start_softphone_session",
                 "reject_pending_session", "disconnect"):
        monkeypatch.setattr(pcw.PureCloudWebrtcSdk, name, poisoned)
    for name in ("accept", "get_stats", "set_audio_mute", "set_source", "send_dtmf"):
        monkeypatch.setattr(pcw.Session, name, poisoned)

    async def main() -> None:
        threads_before = {t.name for t in threading.enumerate()}
        async with make(emulator, default_source=ToneSource(660.0)) as sdk:
            await sdk.initialize(timeout=15)
            async with sdk.expect_event("sessionStarted", timeout=20) as ev:
                conversation_id = await sdk.start_softphone_session(phone_number="+13175550123")
            session = ev.value
            call = emulator.call_by_conversation(conversation_id)
            await asyncio.to_thread(call.wait_state, "connected", 15)
            await session.set_audio_mute(True, rest=False)
            await session.set_audio_mute(False, rest=False)
            await session.set_source(ToneSource(770.0))
            assert (await session.get_stats()).codec
            async with sdk.expect_event("sessionEnded", timeout=20):
                await sdk.end_session(conversation_id=conversation_id)
            await sdk.disconnect()
            new = {t.name for t in threading.enumerate()} - threads_before
            # (asyncio_N is this test's own to_thread(); the SDK adds its documented core threads only)
            assert not [n for n in new if not n.startswith(("pcw-core", "pcw-events", "pcw-io", "pcw-rest", "pcw-ws", "asyncio_"))], new

    asyncio.run(main())
