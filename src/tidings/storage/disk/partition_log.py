"""One partition's log: an ordered list of segments in ``topics/<topic>/<partition>/``.

Appends go to the last segment, which rolls (a new segment starts) before a batch would take it
past ``segment_bytes``. Trim is exact for reads, bounds and size, but files go a whole segment
at a time (after a reopen, the first offset is the first segment's base again, as the Store
contract allows). Deletion waits for the next sync, after the segment that replaces them is
durable, so a crash never leaves a partition without segments (and its next offset).
Recovery loads segments in order: sealed ones through their index, the tail after an unclean
shutdown (or any whose index does not match) by a scan. A segment that starts after the end of
the previous one leaves lost offsets between them (reported; the later segments are kept); one
that starts inside the previous one is quarantined whole. Readable records are never deleted.
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from ...model import Record
from . import files
from .durability import Durability
from .format import (
    FILE_HEADER,
    INDEX_SUFFIX,
    RECORD_HEADER,
    SEGMENT_SUFFIX,
    TMP_SUFFIX,
    numbered,
    parse_numbered,
)
from .recovery import Recovery
from .segment import Segment, encode_batch


class PartitionLog:
    def __init__(
        self, name: str, directory: str, durability: Durability, segment_bytes: int
    ) -> None:
        self.name = name  # "topic/partition", for messages
        self.directory = directory
        self.durability = durability
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.bytes = 0  # of all segment files
        self.first = 0  # first offset served: trim is exact, files go a whole segment at a time

    @classmethod
    def create(
        cls, name: str, directory: str, durability: Durability, segment_bytes: int
    ) -> PartitionLog:
        log = cls(name, directory, durability, segment_bytes)
        log._add(Segment.create(directory, 0, durability))
        return log

    @classmethod
    def open(
        cls,
        name: str,
        directory: str,
        durability: Durability,
        segment_bytes: int,
        clean: bool,
        recovery: Recovery,
    ) -> PartitionLog:
        log = cls(name, directory, durability, segment_bytes)
        names = os.listdir(directory)
        bases = sorted(b for n in names if (b := parse_numbered(n, SEGMENT_SUFFIX)) is not None)
        if not recovery.dry_run:
            for n in names:
                base = parse_numbered(n, INDEX_SUFFIX)
                if n.endswith(TMP_SUFFIX) or (base is not None and base not in bases):
                    files.remove(os.path.join(directory, n))
        for i, base in enumerate(bases):
            path = os.path.join(directory, numbered(base, SEGMENT_SUFFIX))
            if log.segments and base < log.segments[-1].next_offset:
                log._overlap(path, base, recovery)
                continue
            if log.segments and base > log.segments[-1].next_offset:
                log._gap(base, recovery)
            tail = i == len(bases) - 1
            log._add(Segment.load(path, base, tail and not clean, recovery, name))
        if not log.segments:
            log._add(Segment.create(directory, bases[0] if bases else 0, durability))
        log.first = log.segments[0].base  # what was trimmed inside a segment comes back
        return log

    def _gap(self, base: int, recovery: Recovery) -> None:
        """The previous segment ends before ``base``: its last records were lost (a tail that
        never reached the disk, or damage). They stay lost offsets; later segments are kept."""
        previous = self.segments[-1]
        missing = base - previous.next_offset
        recovery.lost(
            self.name,
            previous.next_offset,
            missing,
            previous.path,
            previous.size,
            f"the segment ends early (the next one starts at offset {base})",
        )
        if not recovery.dry_run:
            previous.append_lost(previous.next_offset, missing, self.durability)
            self.bytes += missing * RECORD_HEADER.size
            previous.write_index()

    def _overlap(self, path: str, base: int, recovery: Recovery) -> None:
        """A segment that starts inside the previous one cannot be served: it is moved to the
        quarantine whole (never deleted)."""
        expected = self.segments[-1].next_offset
        recovery.truncated(
            f"{path}:0: starts at offset {base}, inside the previous segment "
            f"(which ends at {expected}): quarantined"
        )
        if recovery.dry_run:
            return
        with open(path, "rb") as f:
            recovery.quarantine(path, 0, f.read())
        files.remove(path)
        files.remove(path[: -len(SEGMENT_SUFFIX)] + INDEX_SUFFIX)

    def _add(self, segment: Segment) -> None:
        self.segments.append(segment)
        self.bytes += segment.size

    # -- writing

    def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        tail = self.segments[-1]
        data, positions = encode_batch(records, tail.next_offset, self.name)
        if tail.count and tail.size + len(data) > self.segment_bytes:
            tail = self._roll(seal=True)
        tail.append(data, positions, records[0].timestamp, self.durability)
        self.bytes += len(data)

    def _roll(self, seal: bool) -> Segment:
        old = self.segments[-1]
        new = Segment.create(self.directory, old.next_offset, self.durability)
        if seal and old.write_index():
            self.durability.wrote_path(old.index_path)
        self._add(new)
        return new

    def trim(self, before: int) -> None:
        before = min(before, self.next_offset)
        if before <= self.first:
            return
        self.first = before
        segments = self.segments
        drop = 0
        while drop < len(segments) - 1 and segments[drop + 1].base <= before:
            drop += 1
        if drop == len(segments) - 1 and segments[-1].count and before == self.next_offset:
            self._roll(seal=False)  # everything goes: keep an empty segment at the next offset
            drop += 1
        for segment in segments[:drop]:
            self.bytes -= segment.size
            segment.close(self.durability)
            self.durability.delete_later(segment.path, segment.index_path)
        del segments[:drop]

    # -- reading

    @property
    def next_offset(self) -> int:
        return self.segments[-1].next_offset

    def bounds(self) -> tuple[int, int]:
        return self.first, self.segments[-1].next_offset

    def size(self) -> int:
        """Bytes of the retained records (and segment headers)."""
        head = self.segments[0]
        hidden = self.first - head.base
        if 0 < hidden < head.count:
            return self.bytes - (head.positions[hidden] - FILE_HEADER.size)
        return self.bytes

    def read(self, offset: int, max_count: int, max_bytes: int) -> list[Record]:
        """Up to ``max_count`` records from ``offset`` (lost offsets are skipped over)."""
        segments = self.segments
        offset = max(offset, self.first)
        i = bisect_right(segments, offset, key=lambda s: s.base) - 1
        out: list[Record] = []
        while max_count > 0 and i < len(segments):
            segment = segments[i]
            index = offset - segment.base
            if index >= segment.count:
                i += 1
                continue
            n, used = segment.fit(index, max_count, max_bytes, not out)
            if not n:
                break
            got = segment.read(index, n)
            out += got
            max_count -= len(got)
            max_bytes -= used
            offset += n
        return out

    def offset_at(self, timestamp: float) -> int:
        segments = [s for s in self.segments if s.count]
        j = bisect_left(segments, timestamp, key=lambda s: s.first_ts)
        if j == 0:
            return self.first if segments else self.next_offset
        return max(segments[j - 1].offset_at(timestamp), self.first)

    # -- lifecycle

    def mark_all(self) -> None:
        """Have the next sync fsync every segment (after recovery from an unclean shutdown, the
        page cache may hold recovered data the disk does not)."""
        for segment in self.segments:
            self.durability.wrote(segment.fd, segment.path)
        self.durability.changed(self.directory)

    def seal(self) -> None:
        """Write and fsync the tail's index (clean close: the next open need not scan it)."""
        tail = self.segments[-1]
        if tail.write_index():
            files.fsync_path(tail.index_path)

    def close(self) -> None:
        for segment in self.segments:
            segment.close(self.durability)
        self.segments = []
