"""A timer heap for the engine: lease expiry, delayed and nacked messages, session timeouts.

Timers are never removed from the heap; a fired timer checks a generation number on its
target and does nothing if the target moved on (lazy cancellation keeps scheduling O(log n)).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class Timers:
    __slots__ = ("_heap", "_seq", "on_new_head")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.on_new_head: Callable[[], None] | None = None  # the driver re-arms its sleep

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        heap = self._heap
        earlier = not heap or when < heap[0][0]
        heapq.heappush(heap, (when, next(self._seq), fn, args))
        if earlier and self.on_new_head is not None:
            self.on_new_head()

    def run_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, fn, args = heapq.heappop(heap)
            fn(*args)

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
