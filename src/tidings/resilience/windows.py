"""Sliding windows of call outcomes for the circuit breaker: the last N calls, or the calls of
the last T seconds (in one-tenth buckets, so memory stays constant at any call rate)."""

from __future__ import annotations

from typing import Protocol

from ..errors import BadRequest


class Window(Protocol):
    def record(self, now: float, failed: bool, slow: bool) -> None: ...
    def totals(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window."""
        ...

    def clear(self) -> None: ...


class CountWindow:
    """The outcomes of the last ``size`` calls."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise BadRequest("a count window holds at least 1 call")
        self.size = size
        self.clear()

    def clear(self) -> None:
        self._ring: list[int] = [0] * self.size  # bit 1 = failed, bit 2 = slow
        self._next = 0
        self._calls = self._failures = self._slow = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        old = self._ring[self._next]
        if self._calls == self.size:
            self._failures -= old & 1
            self._slow -= old >> 1
        else:
            self._calls += 1
        self._ring[self._next] = int(failed) | (int(slow) << 1)
        self._failures += failed
        self._slow += slow
        self._next = (self._next + 1) % self.size

    def totals(self, now: float) -> tuple[int, int, int]:
        return self._calls, self._failures, self._slow


class TimeWindow:
    """The outcomes of the calls of the last ``seconds`` (ten buckets of ``seconds / 10``)."""

    BUCKETS = 10

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise BadRequest("a time window must be > 0 seconds")
        self.seconds = seconds
        self._width = seconds / self.BUCKETS
        self.clear()

    def clear(self) -> None:
        n = self.BUCKETS
        self._epoch = [-(10**18)] * n
        self._counts = [[0, 0, 0] for _ in range(n)]

    def record(self, now: float, failed: bool, slow: bool) -> None:
        tick = int(now // self._width)
        i = tick % self.BUCKETS
        bucket = self._counts[i]
        if self._epoch[i] != tick:
            self._epoch[i] = tick
            bucket[0] = bucket[1] = bucket[2] = 0
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow

    def totals(self, now: float) -> tuple[int, int, int]:
        tick = int(now // self._width)
        calls = failures = slow = 0
        for i in range(self.BUCKETS):
            if 0 <= tick - self._epoch[i] < self.BUCKETS:
                c = self._counts[i]
                calls += c[0]
                failures += c[1]
                slow += c[2]
        return calls, failures, slow
