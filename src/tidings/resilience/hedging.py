"""Hedging: when an attempt is slow, send another and take the first success.

After ``delay`` seconds without an answer (or, once ``min_samples`` latencies are known, after
the ``percentile`` of recent successful attempts) a hedged attempt starts, up to
``max_hedges`` of them; a failed attempt starts the next hedge at once. The first success
wins and the other attempts are cancelled; if all fail, the last failure propagates. Only
hedge calls that are safe to repeat (reads, idempotent requests).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest
from . import events as ev
from .context import Call, Run


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a loser's failure is expected: do not warn about it


@dataclass
class Hedge:
    delay: float = 0.1
    percentile: float | None = None
    max_hedges: int = 1
    min_samples: int = 20
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=500), repr=False)

    def __post_init__(self) -> None:
        if self.delay < 0 or self.max_hedges < 1:
            raise BadRequest("hedge delay must be >= 0 seconds and max_hedges >= 1")
        if self.percentile is not None and not 0 < self.percentile < 100:
            raise BadRequest("hedge percentile must be in (0, 100), e.g. 95")

    def current_delay(self) -> float:
        """The wait before the next hedge: the latency percentile once known, else ``delay``."""
        if self.percentile is None or len(self.samples) < self.min_samples:
            return self.delay
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * self.percentile / 100))]

    async def execute(self, call: Call, run: Run) -> Any:
        timer = run.timer
        loop = asyncio.get_running_loop()
        delay = self.current_delay()
        started: dict[asyncio.Task[Any], float] = {}

        def launch() -> None:
            started[loop.create_task(call())] = timer.now()

        launch()
        waiting: asyncio.Task[Any] | None = None
        failure: BaseException | None = None
        try:
            while True:
                running = {t for t in started if not t.done()}
                can_hedge = len(started) <= self.max_hedges
                if can_hedge and waiting is None:
                    waiting = loop.create_task(timer.sleep(delay))
                wait_for: set[asyncio.Task[Any]] = set(running)
                if waiting is not None:
                    wait_for.add(waiting)
                if not running and not can_hedge:
                    assert failure is not None
                    raise failure
                done, _ = await asyncio.wait(wait_for, return_when=asyncio.FIRST_COMPLETED)
                hedge_now = False
                for task in done:
                    if task is waiting:
                        waiting = None
                        hedge_now = True
                        continue
                    exc = task.exception()
                    if exc is None:
                        self.samples.append(timer.now() - started[task])
                        if task is not next(iter(started)):
                            run.emit(ev.HEDGE_WON)
                        return task.result()
                    failure = exc
                    hedge_now = True
                if hedge_now and len(started) <= self.max_hedges:
                    if waiting is not None:
                        waiting.cancel()
                        waiting = None
                    run.emit(ev.HEDGE, delay=delay)
                    launch()
                elif not any(not t.done() for t in started) and failure is not None:
                    raise failure
        finally:
            if waiting is not None:
                waiting.cancel()
            for task in started:
                if not task.done():
                    task.cancel()
                    task.add_done_callback(_retrieve)
