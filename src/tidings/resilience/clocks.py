"""Time for the resilience strategies: the event loop's clock, and a fake one for tests.

Every strategy reads time, sleeps and bounds a block of code only through a :class:`Timer`, so
a test can drive breakers, budgets, backoff sleeps, queue timeouts and hedging delays with
:class:`FakeTimer` (the project's :class:`~tidings.clock.ManualClock` plus asyncio sleeps and
timeouts that fire when the test advances it) instead of waiting in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..clock import ManualClock


class Timer(Protocol):
    def now(self) -> float:
        """Monotonic seconds (only differences matter)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float | None) -> contextlib.AbstractAsyncContextManager[object]:
        """An ``asyncio.timeout``-like block: cancels it after ``seconds``, raising
        TimeoutError out of it (``None`` = no limit)."""
        ...


class LoopTimer:
    """The real clock: ``time.monotonic`` (the event loop's default), ``asyncio.sleep``,
    ``asyncio.timeout``."""

    now = staticmethod(time.monotonic)
    sleep = staticmethod(asyncio.sleep)
    timeout = staticmethod(asyncio.timeout)


class FakeTimer(ManualClock):
    """A manual clock whose sleeps and timeouts fire only when the test moves time on::

    timer = FakeTimer()
    task = asyncio.create_task(pipeline.run(call))
    await timer.run_for(1.5)       # advance 1.5 s, letting woken tasks run at each step
    """

    def __init__(self, start: float = 1_000.0) -> None:
        super().__init__(start)
        self._timers: list[tuple[float, int, _Handle]] = []
        self._seq = itertools.count()

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        """Run ``callback`` once time reaches ``when``; ``.cancel()`` the handle to drop it."""
        handle = _Handle(callback)
        heapq.heappush(self._timers, (when, next(self._seq), handle))
        if when <= self._now:
            self._fire_due()
        return handle

    def _fire_due(self) -> None:
        while self._timers and self._timers[0][0] <= self._now:
            _, _, handle = heapq.heappop(self._timers)
            if handle.callback is not None:
                callback, handle.callback = handle.callback, None
                callback()

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, firing every timer that falls due, in order."""
        super().advance(seconds)
        self._fire_due()

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_at(self._now + max(seconds, 0.0), wake)
        try:
            await future
        finally:
            handle.cancel()

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float | None) -> AsyncIterator[object]:
        async with asyncio.timeout(None) as cm:
            handle = None
            if seconds is not None:
                loop = asyncio.get_running_loop()
                handle = self.call_at(self._now + seconds, lambda: cm.reschedule(loop.time()))
            try:
                yield cm
            finally:
                if handle is not None:
                    handle.cancel()

    @property
    def pending(self) -> int:
        """Timers not yet fired (sleeps and timeouts still waiting)."""
        return sum(1 for _, _, handle in self._timers if handle.callback is not None)

    async def settle(self, rounds: int = 20) -> None:
        """Let ready tasks run (a few loop iterations) without moving time."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def run_for(self, seconds: float, step: float | None = None) -> None:
        """Advance ``seconds`` timer by timer (or in ``step``s), settling after each move."""
        target = self._now + seconds
        await self.settle()
        while True:
            while self._timers and self._timers[0][2].callback is None:
                heapq.heappop(self._timers)
            nxt = self._timers[0][0] if self._timers else target
            if step is not None:
                nxt = min(nxt, self._now + step)
            nxt = min(nxt, target)
            if nxt > self._now:
                super().advance(nxt - self._now)
            self._fire_due()
            await self.settle()
            if self._now >= target and not (self._timers and self._timers[0][0] <= self._now):
                return


class _Handle:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None
