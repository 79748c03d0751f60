"""One clock for every paced track on a loop: frames fall due on a shared grid of instants.

Each call's paced tracks (a generated source sending 20 ms frames, the jitter buffer's playout) used to
keep a timer of their own, anchored when they started: with N calls the loop woke ~2 N times per 20 ms,
each wake-up costing a system call and a pass through the loop for one frame.  Anchored on a grid that
every track shares (absolute multiples of the step on the monotonic clock), their timers fall due at
the same instants, and one wake-up serves them all: with any number of calls, senders wake once per
20 ms and playouts at most four times (their 5 ms grid keeps their delay within 5 ms of the one they
chose).  Timers are set at the absolute instant (``call_at``), so equal instants are equal timers.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["SEND_GRID", "PLAYOUT_GRID", "grid_after", "sleep_until"]

#: senders: every 20 ms frame of every call falls due on the same instants
SEND_GRID = 0.02
#: playouts: a finer grid, so rounding the jitter buffer's chosen phase up adds at most 5 ms
PLAYOUT_GRID = 0.005


def grid_after(t: float, step: float) -> float:
    """The first multiple of ``step`` at or after ``t`` (seconds on the monotonic clock)."""
    return math.ceil(t / step - 1e-9) * step


def _wake(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


async def sleep_until(when: float) -> None:
    """Sleep until the loop's clock (the monotonic clock) reaches ``when``; cancellable like ``asyncio.sleep``."""
    loop = asyncio.get_running_loop()
    if when <= loop.time():
        return
    future = loop.create_future()
    handle = loop.call_at(when, _wake, future)
    try:
        await future
    finally:
        handle.cancel()
