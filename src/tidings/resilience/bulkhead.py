"""Bulkhead: at most ``max_concurrent`` calls in flight, at most ``max_queue`` waiting.

A call beyond both limits is rejected at once with :class:`~tidings.BulkheadFull`; a queued
call that waits longer than ``queue_timeout`` seconds is rejected too. So a slow callee holds
a bounded number of the caller's tasks, never an unbounded pile. ``per_callee=True`` gives
each callee key its own compartment.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, BulkheadFull
from . import events as ev
from .context import Call, Run


class Compartment:
    """One bulkhead's counters: the calls in flight and the queue of waiting calls."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the permit passes to the waiter as it is
                return
        self.active -= 1


@dataclass
class Bulkhead:
    max_concurrent: int = 10
    max_queue: int = 0
    queue_timeout: float | None = 1.0
    per_callee: bool = False
    compartments: dict[str | None, Compartment] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.max_concurrent < 1 or self.max_queue < 0:
            raise BadRequest("bulkhead max_concurrent must be >= 1 and max_queue >= 0")

    def compartment(self, callee: str | None = None) -> Compartment:
        key = callee if self.per_callee else None
        c = self.compartments.get(key)
        if c is None:
            c = self.compartments[key] = Compartment(self.max_concurrent)
        return c

    def _reject(self, run: Run, c: Compartment, why: str) -> BulkheadFull:
        run.emit(ev.BULKHEAD_REJECTED, detail=why)
        who = f" to {run.callee!r}" if run.callee else ""
        return BulkheadFull(
            f"bulkhead of policy {run.policy!r}{who} {why} ({c.active} in flight, "
            f"{len(c.waiters)} queued; limits {self.max_concurrent} + {self.max_queue}): the "
            "callee is slow or overloaded; the call was not made"
        )

    async def execute(self, call: Call, run: Run) -> Any:
        c = self.compartment(run.callee)
        if c.active < c.limit and not c.waiters:
            c.active += 1
        elif len(c.waiters) < self.max_queue:
            waiter = asyncio.get_running_loop().create_future()
            c.waiters.append(waiter)
            try:
                async with run.timer.timeout(self.queue_timeout):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    c.release()  # granted just as we gave up: hand it on
                else:
                    waiter.cancel()
                    try:
                        c.waiters.remove(waiter)
                    except ValueError:
                        pass
                if isinstance(exc, TimeoutError):
                    raise self._reject(
                        run, c, f"queue timeout after {self.queue_timeout}s"
                    ) from None
                raise
        else:
            raise self._reject(run, c, "is full")
        try:
            return await call()
        finally:
            c.release()
