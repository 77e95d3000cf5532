"""Duplicate detection: producer message ids seen on a topic within its dedup window.

A dict for lookups plus a deque in arrival order for expiry, so both are O(1) amortised."""

from __future__ import annotations

from collections import deque

from ..model import Receipt


class DedupIndex:
    __slots__ = ("_order", "_seen", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: dict[str, tuple[Receipt, float]] = {}
        self._order: deque[tuple[float, str]] = deque()

    def lookup(self, msg_id: str) -> Receipt | None:
        """The receipt of ``msg_id`` if seen within the window (call ``expire`` first)."""
        found = self._seen.get(msg_id)
        return None if found is None else found[0]

    def remember(self, msg_id: str, receipt: Receipt, timestamp: float) -> None:
        if self.window <= 0:
            return
        self._seen[msg_id] = (receipt, timestamp)
        self._order.append((timestamp, msg_id))

    def forget(self, ids: dict[str, Receipt]) -> None:
        """Drop ids remembered for a publish that failed (so a retry is not a 'duplicate')."""
        for msg_id, receipt in ids.items():
            found = self._seen.get(msg_id)
            if found is not None and found[0] is receipt:
                del self._seen[msg_id]

    def expire(self, now: float) -> None:
        order = self._order
        seen = self._seen
        cutoff = now - self.window
        while order and order[0][0] <= cutoff:
            ts, msg_id = order.popleft()
            found = seen.get(msg_id)
            if found is not None and found[1] <= ts:
                del seen[msg_id]

    def __len__(self) -> int:
        return len(self._seen)
