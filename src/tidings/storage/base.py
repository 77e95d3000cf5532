"""The Store interface: what the broker engine needs from storage, and nothing more.

Threading contract: every method except :meth:`Store.sync` is called from one thread (the
event loop's). ``sync`` is called from a background flusher thread while appends continue; it
must make durable everything that was appended or recorded before the call began. This is how
group commit works without blocking the event loop on fsync.

Offsets: the engine assigns offsets. ``append`` receives records whose offsets continue the
partition's ``next_offset`` without gaps (a store may check it). ``trim`` removes a prefix; a
store may keep records below the requested offset (e.g. until a whole segment can go), so the
engine always asks ``bounds`` for the true first offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec

from ..model import GroupSpec, Record, TopicSpec
from .cursor import GroupCursor

# The group-state key of a topic's deleted messages: ``save_acks(topic, DELETIONS, p, ...)``
# records the offsets an operator deleted and ``load_cursors(topic, DELETIONS)`` gives them
# back (a cursor per partition: "acked" there means deleted). No declared group can have this
# name, and a store keeps it as long as the topic, without a put_group.
DELETIONS = "\x00deleted"


class LostRange(msgspec.Struct, kw_only=True, frozen=True):
    """Offsets ``first``..``last`` (inclusive) of a partition that recovery could not read: their
    bytes were damaged (``reason`` at byte ``position`` of ``file``). The damaged bytes are kept
    in ``quarantine`` (a file under the store's quarantine directory; empty if none were cut)."""

    topic: str
    partition: int
    first: int
    last: int
    file: str
    position: int
    reason: str
    quarantine: str = ""

    def describe(self) -> str:
        offsets = (
            f"offset {self.first}"
            if self.first == self.last
            else (f"offsets {self.first}-{self.last}")
        )
        kept = f"; the damaged bytes are in {self.quarantine}" if self.quarantine else ""
        return (
            f"{self.topic!r} partition {self.partition}: {offsets} lost ({self.reason} at "
            f"{self.file}:{self.position}){kept}"
        )


class RecoveryReport(msgspec.Struct, kw_only=True):
    """What ``open`` found: damaged tails it truncated (file, position, reason), offsets it lost
    in damaged records (the records around them are kept), and timings."""

    truncated: list[str] = msgspec.field(default_factory=list)
    lost: list[LostRange] = msgspec.field(default_factory=list)
    quarantined: list[str] = msgspec.field(default_factory=list)
    topics: int = 0
    messages: int = 0
    seconds: float = 0.0


@runtime_checkable
class Store(Protocol):
    # lifecycle
    def open(self) -> RecoveryReport: ...
    def close(self) -> None: ...
    def sync(self) -> None:
        """Make everything appended/recorded so far durable. Thread-safe (flusher thread)."""
        ...

    # catalogue
    def put_topic(self, spec: TopicSpec) -> None: ...
    def drop_topic(self, name: str) -> None:
        """Remove the topic, its log and all its groups' state."""
        ...

    def topics(self) -> list[TopicSpec]: ...
    def put_group(self, spec: GroupSpec) -> None: ...
    def drop_group(self, topic: str, group: str) -> None: ...
    def groups(self, topic: str) -> list[GroupSpec]: ...

    # log
    def append(self, topic: str, partition: int, records: Sequence[Record]) -> None: ...
    def read(
        self, topic: str, partition: int, offset: int, max_count: int, max_bytes: int = 1 << 20
    ) -> list[Record]:
        """Records with offsets >= ``offset`` in order, at least one if any exists (even if it
        is larger than ``max_bytes``), at most ``max_count``."""
        ...

    def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        """(first retained offset, next offset to assign)."""
        ...

    def size(self, topic: str, partition: int) -> int:
        """Bytes the partition's retained records take."""
        ...

    def trim(self, topic: str, partition: int, before: int) -> None:
        """Drop records with offset < ``before`` (a store may keep some; see ``bounds``)."""
        ...

    def offset_at(self, topic: str, partition: int, timestamp: float) -> int:
        """The first offset whose record's timestamp is >= ``timestamp`` (next offset if none)."""
        ...

    # group state: acked (or dead-lettered) offsets, kept as a floor plus a sparse set above it;
    # also the topic's deleted offsets, under the group name DELETIONS
    def save_acks(self, topic: str, group: str, partition: int, offsets: Sequence[int]) -> None: ...
    def save_floor(self, topic: str, group: str, partition: int, floor: int) -> None:
        """Move the group's floor (group created, reset, or retention trimmed its backlog)."""
        ...

    def forget_acks_from(self, topic: str, group: str, partition: int, end: int) -> None:
        """Forget the group's acks of offsets at or above ``end`` (durable at the next sync):
        after a machine crash took back records, their offsets are reused by new messages."""
        ...

    def load_cursors(self, topic: str, group: str) -> dict[int, GroupCursor]: ...
