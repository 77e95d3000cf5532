"""Event rates over a sliding window (publish, deliver and ack rates in the stats)."""

from __future__ import annotations

WINDOW = 10  # seconds


class RateMeter:
    __slots__ = ("_buckets", "_second", "total")

    def __init__(self) -> None:
        self._buckets = [0] * WINDOW
        self._second = 0
        self.total = 0

    def mark(self, now: float, n: int = 1) -> None:
        self._roll(int(now))
        self._buckets[self._second % WINDOW] += n
        self.total += n

    def rate(self, now: float) -> float:
        """Events per second over the last complete seconds of the window."""
        self._roll(int(now))
        current = self._second % WINDOW
        return sum(b for i, b in enumerate(self._buckets) if i != current) / (WINDOW - 1)

    def _roll(self, second: int) -> None:
        if second <= self._second:
            return
        if second - self._second >= WINDOW:
            self._buckets = [0] * WINDOW
        else:
            for s in range(self._second + 1, second + 1):
                self._buckets[s % WINDOW] = 0
        self._second = second
