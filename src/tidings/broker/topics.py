"""A topic's in-memory state: its partitions' offsets and visibility, dedup index, rates and
groups. The log itself lives in the store."""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING

from ..model import Record, TopicSpec
from ..partitioning import RoundRobin
from .dedup import DedupIndex
from .rates import RateMeter

if TYPE_CHECKING:
    from ..storage.cursor import GroupCursor
    from .group.consumer_group import ConsumerGroup
    from .tracing import Tracer


TAIL_RECORDS = 2048  # recent records kept in memory per partition ...
TAIL_BYTES = 4 << 20  # ... and at most this many body bytes


class PartState:
    """One partition's offsets, plus its most recent records: consumers that keep up are
    served from this tail instead of reading back what was written a moment ago."""

    __slots__ = ("first", "next", "tail", "tail_bytes", "visible")

    def __init__(self, first: int, next_offset: int) -> None:
        self.first = first  # first retained offset
        self.next = next_offset  # next offset to assign
        self.visible = next_offset  # offsets below this are durable and deliverable
        self.tail: deque[Record] = deque()  # contiguous, ending at next - 1
        self.tail_bytes = 0

    def remember(self, records: list[Record]) -> None:
        tail = self.tail
        tail.extend(records)
        self.tail_bytes += sum([len(r.body) for r in records])
        excess = len(tail) - TAIL_RECORDS
        if excess > 0:  # the usual case once warm: drop as many as came, in one pass
            popleft = tail.popleft
            self.tail_bytes -= sum([len(popleft().body) for _ in range(excess)])
        while tail and self.tail_bytes > TAIL_BYTES:
            self.tail_bytes -= len(tail.popleft().body)

    def from_tail(self, offset: int, count: int) -> list[Record] | None:
        """Records from ``offset`` on if the tail holds them, else None (read the store)."""
        tail = self.tail
        start = offset - (self.next - len(tail))
        if start < 0 or not tail:
            return None
        records = list(itertools.islice(tail, start, start + count))
        if records and records[0].offset != offset:  # never serve a gapped tail
            self.forget_tail()
            return None
        return records

    def forget_tail(self) -> None:
        self.tail.clear()
        self.tail_bytes = 0


class TopicState:
    __slots__ = (
        "dedup", "deleted", "groups", "name", "owner", "parts", "publish_meter", "rr", "spec",
        "trace",
    )  # fmt: skip

    def __init__(self, spec: TopicSpec, bounds: list[tuple[int, int]], owner: object = None):
        self.spec = spec
        self.name = spec.name
        self.parts = [PartState(first, nxt) for first, nxt in bounds]
        self.dedup = DedupIndex(spec.dedup_window)
        self.groups: dict[str, ConsumerGroup] = {}
        self.rr = RoundRobin()
        self.publish_meter = RateMeter()
        self.owner = owner  # set for temporary topics (reply topics)
        self.trace: Tracer | None = None  # the tracer when this topic is traced
        # offsets an operator deleted, by partition ("acked" in the cursor means deleted)
        self.deleted: dict[int, GroupCursor] = {}

    def is_deleted(self, partition: int, offset: int) -> bool:
        cursor = self.deleted.get(partition)
        return cursor is not None and cursor.is_acked(offset)

    def deleted_from(self, partition: int, floor: int) -> list[int]:
        """The deleted offsets at or above ``floor`` (what a new group starting there skips)."""
        cursor = self.deleted.get(partition)
        if cursor is None:
            return []
        below = range(floor, cursor.floor)  # a contiguous run of deletions compacts to a floor
        return sorted({*below, *(o for o in cursor.acked if o >= floor)})

    def messages(self) -> int:
        return sum(p.next - p.first for p in self.parts)
