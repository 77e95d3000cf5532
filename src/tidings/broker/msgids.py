"""Broker-assigned message ids: 64-bit, time-ordered, never repeated by one broker process.

The id is ``milliseconds since 2024-01-01 << 22 | sequence`` written as 16 hex digits. If the
wall clock steps back, ids keep counting up from the last one instead of repeating."""

from __future__ import annotations

import time

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SEQ_BITS = 22


class MessageIds:
    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def observe(self, issued: str) -> None:
        """Never issue ``issued`` or anything below it (an id found in the log on open: a
        restart within the same millisecond, or after the clock stepped back)."""
        try:
            value = int(issued, 16)
        except ValueError:
            return  # not one of ours
        if value > self._last:
            self._last = value

    def next_many(self, n: int) -> list[str]:
        """``n`` consecutive ids with one clock read (the publish path issues a batch)."""
        candidate = (int(time.time() * 1000) - EPOCH_MS) << SEQ_BITS
        first = self._last + 1
        if candidate > first:
            first = candidate
        self._last = first + n - 1
        return ["%016x" % v for v in range(first, first + n)]  # noqa: UP031 - measured faster
