"""An entry: one message of one partition as a group currently holds it (ready, leased,
delayed or blocked behind its key). Only a bounded window of a group's backlog is loaded as
entries; the rest stays on disk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import Record

if TYPE_CHECKING:
    from .members import Member


class Entry:
    __slots__ = (
        "deliveries",
        "expires_at",
        "gen",
        "key",
        "last_error",
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
        self.gen = 0  # bumped on every state change; stale timers compare it
        self.last_error: str | None = None

    @property
    def ref(self) -> tuple[int, int]:
        return (self.partition, self.offset)
