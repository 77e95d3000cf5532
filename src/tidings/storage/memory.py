"""MemoryStore: the small reference implementation of the Store interface.

Everything lives in Python lists and dicts; nothing survives the process. It backs `memory://`
and the fast tests, and it is the model the disk store is tested against.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

from ..errors import NotFound, StorageError
from ..model import GroupSpec, Record, TopicSpec
from .base import DELETIONS, RecoveryReport
from .cursor import GroupCursor


class _Partition:
    __slots__ = ("bytes", "first", "records", "sizes")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.sizes: list[int] = []
        self.first = 0  # offset of records[0] (or next offset when empty)
        self.bytes = 0


def _record_size(record: Record) -> int:
    size = len(record.body) + 48
    if record.key:
        size += len(record.key)
    for k, v in record.headers.items():
        size += len(k) + len(v)
    return size


class MemoryStore:
    def __init__(self) -> None:
        self._topics: dict[str, TopicSpec] = {}
        self._parts: dict[str, list[_Partition]] = {}
        self._groups: dict[str, dict[str, GroupSpec]] = {}
        self._cursors: dict[tuple[str, str], dict[int, GroupCursor]] = {}
        self._lock = threading.Lock()

    # lifecycle
    def open(self) -> RecoveryReport:
        return RecoveryReport(topics=len(self._topics))

    def close(self) -> None:
        pass

    def sync(self) -> None:
        with self._lock:
            pass

    # catalogue
    def put_topic(self, spec: TopicSpec) -> None:
        self._topics[spec.name] = spec
        parts = self._parts.setdefault(spec.name, [])
        while len(parts) < spec.partitions:
            parts.append(_Partition())
        self._groups.setdefault(spec.name, {})

    def drop_topic(self, name: str) -> None:
        self._topics.pop(name, None)
        self._parts.pop(name, None)
        for group in self._groups.pop(name, {}):
            self._cursors.pop((name, group), None)
        self._cursors.pop((name, DELETIONS), None)

    def topics(self) -> list[TopicSpec]:
        return list(self._topics.values())

    def put_group(self, spec: GroupSpec) -> None:
        self._groups.setdefault(spec.topic, {})[spec.name] = spec
        self._cursors.setdefault((spec.topic, spec.name), {})

    def drop_group(self, topic: str, group: str) -> None:
        self._groups.get(topic, {}).pop(group, None)
        self._cursors.pop((topic, group), None)

    def groups(self, topic: str) -> list[GroupSpec]:
        return list(self._groups.get(topic, {}).values())

    # log
    def _part(self, topic: str, partition: int) -> _Partition:
        try:
            return self._parts[topic][partition]
        except (KeyError, IndexError):
            raise NotFound(f"topic {topic!r} has no partition {partition}") from None

    def append(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        part = self._part(topic, partition)
        expected = part.first + len(part.records)
        for record in records:
            if record.offset != expected:
                raise StorageError(
                    f"append to {topic}/{partition} out of order: offset {record.offset}, "
                    f"expected {expected}"
                )
            size = _record_size(record)
            part.records.append(record)
            part.sizes.append(size)
            part.bytes += size
            expected += 1

    def read(
        self, topic: str, partition: int, offset: int, max_count: int, max_bytes: int = 1 << 20
    ) -> list[Record]:
        part = self._part(topic, partition)
        start = max(offset - part.first, 0)
        out: list[Record] = []
        used = 0
        for i in range(start, min(start + max_count, len(part.records))):
            size = part.sizes[i]
            if out and used + size > max_bytes:
                break
            out.append(part.records[i])
            used += size
        return out

    def bounds(self, topic: str, partition: int) -> tuple[int, int]:
        part = self._part(topic, partition)
        return part.first, part.first + len(part.records)

    def size(self, topic: str, partition: int) -> int:
        return self._part(topic, partition).bytes

    def trim(self, topic: str, partition: int, before: int) -> None:
        part = self._part(topic, partition)
        drop = min(max(before - part.first, 0), len(part.records))
        if drop:
            part.bytes -= sum(part.sizes[:drop])
            del part.records[:drop]
            del part.sizes[:drop]
            part.first += drop

    def offset_at(self, topic: str, partition: int, timestamp: float) -> int:
        part = self._part(topic, partition)
        i = bisect.bisect_left(part.records, timestamp, key=lambda r: r.timestamp)
        return part.first + i

    # group state
    def _cursor(self, topic: str, group: str, partition: int) -> GroupCursor:
        cursors = self._cursors.setdefault((topic, group), {})
        cursor = cursors.get(partition)
        if cursor is None:
            cursor = cursors[partition] = GroupCursor()
        return cursor

    def save_acks(self, topic: str, group: str, partition: int, offsets: Sequence[int]) -> None:
        cursor = self._cursor(topic, group, partition)
        for offset in offsets:
            cursor.ack(offset)

    def save_floor(self, topic: str, group: str, partition: int, floor: int) -> None:
        self._cursor(topic, group, partition).move_floor(floor)

    def forget_acks_from(self, topic: str, group: str, partition: int, end: int) -> None:
        self._cursor(topic, group, partition).forget_from(end)

    def load_cursors(self, topic: str, group: str) -> dict[int, GroupCursor]:
        return {
            p: GroupCursor(c.floor, c.acked)
            for p, c in self._cursors.get((topic, group), {}).items()
        }
