"""Duplicate detection: producer message ids seen on a topic within its dedup window.

Memory is the constraint here: every client publish carries a producer id (retries must be
harmless), so a busy topic holds one entry per message of the last ``window`` seconds. An entry
is the id string in a dict, mapped to one int packing the partition and offset
(``offset << 16 | partition``), plus a pointer in an arrival-order deque. Timestamps are kept
once per publish batch (every message of a batch shares it), not per message. Measured with a
2M-message window: a tuple-and-Receipt entry cost ~400 bytes; this one ~150 with the id string.
A duplicate's broker message id is read back from the log (duplicates are rare).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import Record

PARTITION_BITS = 16
PARTITION_MASK = (1 << PARTITION_BITS) - 1


class DedupIndex:
    __slots__ = ("_counts", "_order", "_seen", "_times", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._seen: dict[str, int] = {}
        self._order: deque[str] = deque()  # ids in arrival order
        # when ids arrived: parallel deques of timestamps and of how many ids arrived at each
        # (numbers only: a [timestamp, count] list per single publish was a tracked object
        # each, and a young-generation collection over 600k of them stalled the loop 356 ms)
        self._times: deque[float] = deque()
        self._counts: deque[int] = deque()

    def get(self, msg_id: str) -> int | None:
        """The packed ``offset << PARTITION_BITS | partition`` of ``msg_id``, if seen."""
        return self._seen.get(msg_id)

    def remember_batch(self, packed: dict[str, int], timestamp: float) -> None:
        """Remember one publish batch: ``packed`` maps each new id to ``pack(partition,
        offset)`` (in arrival order); one timestamp mark for all of them."""
        if self.window <= 0 or not packed:
            return
        self._seen.update(packed)
        self._order.extend(packed)
        self._mark(timestamp, len(packed))

    def remember_records(self, partition: int, records: Sequence[Record]) -> None:
        """Remember the producer ids of stored records, in log order (rebuilding the index at
        open: one call per read batch, the marks counted in runs of equal timestamps)."""
        if self.window <= 0:
            return
        seen, order = self._seen, self._order
        # the current run of equal timestamps (its start value is never marked: run is 0)
        run_time, run = 0.0, 0
        for r in records:
            msg_id = r.msg_id
            if msg_id is None:
                continue
            seen[msg_id] = (r.offset << PARTITION_BITS) | partition
            order.append(msg_id)
            if r.timestamp == run_time:
                run += 1
            else:
                if run:
                    self._mark(run_time, run)
                run_time, run = r.timestamp, 1
        if run:
            self._mark(run_time, run)

    def _mark(self, timestamp: float, count: int) -> None:
        times = self._times
        if times and times[-1] == timestamp:
            self._counts[-1] += count
        else:
            times.append(timestamp)
            self._counts.append(count)

    def expire(self, now: float) -> None:
        times = self._times
        if not times:
            return
        cutoff = now - self.window
        counts, order, seen = self._counts, self._order, self._seen
        while times and times[0] <= cutoff:
            times.popleft()
            for _ in range(counts.popleft()):
                seen.pop(order.popleft(), None)

    def __len__(self) -> int:
        return len(self._seen)
