"""An entry: one message of one partition as a group currently holds it (ready, leased,
delayed or blocked behind its key), and the lease batch that times the leases one dispatch
handed out. Only a bounded window of a group's backlog is loaded as entries; the rest stays on
disk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model import Record

if TYPE_CHECKING:
    from .member import Member


class LeaseBatch:
    """The deliveries one dispatch leased together, under one expiry timer. An entry leaves
    its batch as soon as it is settled, released or extended (``Entry.lease_batch`` is then
    None or another batch); when none is left the list is emptied, so the timer, which fires
    a whole lease later, does not keep acked entries alive (at 100k msg/s and a 30 s lease
    that was millions of entries, and young-generation collections of 300 ms)."""

    __slots__ = ("entries", "live")

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.live = len(entries)

    def leave(self, entry: Entry) -> None:
        entry.lease_batch = None
        self.live -= 1
        if not self.live:
            self.entries.clear()


class Entry:
    __slots__ = (
        "deliveries",
        "expires_at",
        "gen",
        "key",
        "last_error",
        "last_member",
        "lease_batch",
        "lease_until",
        "member",
        "not_before",
        "offset",
        "partition",
        "record",
        "timestamp",
    )

    def __init__(self, partition: int, record: Record) -> None:
        self.partition = partition
        self.offset = record.offset
        self.record: Record | None = record
        self.key = record.key
        self.timestamp = record.timestamp
        self.expires_at = record.expires_at
        self.not_before = record.deliver_at or 0.0
        self.deliveries = 0
        self.member: Member | None = None
        self.lease_until = 0.0
        self.lease_batch: LeaseBatch | None = None  # the batch whose timer ends its lease
        self.gen = 0  # bumped on every state change; stale timers compare it
        self.last_error: str | None = None
        self.last_member: Member | None = None  # whose lease on it last ran out

    @property
    def ref(self) -> tuple[int, int]:
        return (self.partition, self.offset)
