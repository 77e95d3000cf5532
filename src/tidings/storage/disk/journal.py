"""A group's settled offsets: in-memory ``GroupCursor``s mirrored by an append-only journal.

``save_acks``/``save_floor`` append fixed 20-byte checksummed entries (one write a call, no
fsync: the store's sync does that). Generations keep the journal bounded: once more entries
were appended than the snapshot it started from (and at least ``compact_after``), a new
generation file starts with a snapshot of the cursors, closed by a SNAPSHOT_END entry; the old
file is deleted after the next sync made the new one durable. Replay picks the newest
generation whose snapshot is complete and truncates a torn or corrupt tail.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from ...errors import StorageError
from ..cursor import GroupCursor
from . import files
from .durability import Durability
from .format import (
    FILE_HEADER,
    JOURNAL_ACK,
    JOURNAL_ENTRY,
    JOURNAL_FLOOR,
    JOURNAL_MAGIC,
    JOURNAL_SNAPSHOT_END,
    JOURNAL_SUFFIX,
    VERSION,
    checksum,
    numbered,
    parse_numbered,
)

_ENTRY = JOURNAL_ENTRY.size


def _entries(items: Iterable[tuple[int, int, int]]) -> bytes:
    pack = JOURNAL_ENTRY.pack
    out = []
    for kind, partition, offset in items:
        body = pack(0, kind, partition, offset)[4:]
        out.append(pack(checksum(body), kind, partition, offset))
    return b"".join(out)


def _apply(cursors: dict[int, GroupCursor], kind: int, partition: int, offset: int) -> None:
    cursor = cursors.get(partition)
    if cursor is None:
        cursor = cursors[partition] = GroupCursor()
    if kind == JOURNAL_ACK:
        cursor.ack(offset)
    else:
        cursor.move_floor(offset)


class GroupJournal:
    def __init__(self, directory: str, durability: Durability, compact_after: int) -> None:
        self.directory = directory
        self.durability = durability
        self.compact_after = compact_after
        self.cursors: dict[int, GroupCursor] = {}
        self.fd: int | None = None  # the current generation's file, opened on first write
        self.path = ""
        self.gen = 0
        self.size = 0
        self.entries = 0  # appended since the snapshot
        self.threshold = compact_after

    @classmethod
    def open(
        cls, directory: str, durability: Durability, compact_after: int, report: list[str]
    ) -> GroupJournal:
        journal = cls(directory, durability, compact_after)
        gens = sorted(
            (g for n in os.listdir(directory) if (g := parse_numbered(n, JOURNAL_SUFFIX))),
            reverse=True,
        )
        for gen in gens:
            path = os.path.join(directory, numbered(gen, JOURNAL_SUFFIX))
            if journal.gen == 0 and journal._replay(path, gen, report):
                continue
            durability.delete_later(path)  # older generations, or unusable ones
        return journal

    def _replay(self, path: str, gen: int, report: list[str]) -> bool:
        with open(path, "rb") as f:
            data = f.read()
        header = FILE_HEADER.unpack_from(data) if len(data) >= FILE_HEADER.size else None
        if header and header[0] == JOURNAL_MAGIC and header[1] > VERSION:
            raise StorageError(
                f"{path} has format version {header[1]} but this tidings reads version "
                f"{VERSION}: upgrade tidings to open it"
            )
        if header != (JOURNAL_MAGIC, VERSION, 0, gen):
            report.append(f"{path}:0: bad journal header: an older generation is used")
            return False
        cursors: dict[int, GroupCursor] = {}
        position, snapshot, entries, problem = FILE_HEADER.size, True, 0, ""
        while position < len(data):
            if len(data) - position < _ENTRY:
                problem = "torn entry"
                break
            crc, kind, partition, offset = JOURNAL_ENTRY.unpack_from(data, position)
            if checksum(memoryview(data)[position + 4 : position + _ENTRY]) != crc:
                problem = "checksum mismatch"
                break
            if kind == JOURNAL_SNAPSHOT_END:
                snapshot = False
            elif kind in (JOURNAL_ACK, JOURNAL_FLOOR):
                _apply(cursors, kind, partition, offset)
                entries += not snapshot
            else:
                problem = f"unknown entry kind {kind}"
                break
            position += _ENTRY
        if snapshot:
            report.append(f"{path}:{position}: incomplete snapshot: an older generation is used")
            return False
        self.fd = files.open_file(path)
        if problem:
            report.append(f"{path}:{position}: {problem}")
            os.ftruncate(self.fd, position)
            os.fsync(self.fd)
        self.cursors, self.path, self.gen, self.size = cursors, path, gen, position
        self.entries = entries
        self.threshold = max(self.compact_after, 2 * self._snapshot_entries())
        return True

    def _snapshot_entries(self) -> int:
        return sum(1 + len(c.acked) for c in self.cursors.values())

    # -- writing

    def save_acks(self, partition: int, offsets: Sequence[int]) -> None:
        cursor = self.cursors.get(partition)
        items = [] if cursor is not None else [(JOURNAL_FLOOR, partition, 0)]
        seen: set[int] = set()
        for offset in offsets:
            if offset not in seen and (cursor is None or not cursor.is_acked(offset)):
                seen.add(offset)
                items.append((JOURNAL_ACK, partition, offset))
        if items:
            self._write(items)

    def save_floor(self, partition: int, floor: int) -> None:
        self._write([(JOURNAL_FLOOR, partition, floor)])

    def _write(self, items: list[tuple[int, int, int]]) -> None:
        fd = self._start_generation() if self.fd is None else self.fd
        data = _entries(items)
        try:
            files.write_at(fd, data, self.size)
        except OSError as exc:
            try:
                os.ftruncate(fd, self.size)
            except OSError:
                pass
            raise files.storage_error(exc, "appending to", self.path) from exc
        self.durability.wrote(fd, self.path)
        self.size += len(data)
        for item in items:
            _apply(self.cursors, *item)
        self.entries += len(items)
        if self.entries > self.threshold:
            try:
                self._start_generation()
            except StorageError:
                self.threshold = 2 * self.entries  # try again later; the old one still works

    def _start_generation(self) -> int:
        """Write a new generation: header, snapshot of the cursors, SNAPSHOT_END; its fd."""
        gen = self.gen + 1
        path = os.path.join(self.directory, numbered(gen, JOURNAL_SUFFIX))
        snapshot: list[tuple[int, int, int]] = []
        for partition, cursor in sorted(self.cursors.items()):
            snapshot.append((JOURNAL_FLOOR, partition, cursor.floor))
            snapshot += ((JOURNAL_ACK, partition, o) for o in sorted(cursor.acked))
        snapshot.append((JOURNAL_SNAPSHOT_END, 0, 0))
        data = FILE_HEADER.pack(JOURNAL_MAGIC, VERSION, 0, gen) + _entries(snapshot)
        dirty: set[str] = set()
        try:
            files.make_dirs(self.directory, dirty)
            fd = files.open_file(path, create=True)
        except OSError as exc:
            raise files.storage_error(exc, "creating journal", path) from exc
        try:
            files.write_at(fd, data, 0)
        except OSError as exc:
            os.close(fd)
            files.remove(path)
            raise files.storage_error(exc, "creating journal", path) from exc
        self.durability.wrote(fd, path)
        self.durability.changed(self.directory, *dirty)
        if self.fd is not None:
            self.durability.forget(self.fd)
            os.close(self.fd)
            self.durability.delete_later(self.path)
        self.fd, self.path, self.gen, self.size, self.entries = fd, path, gen, len(data), 0
        self.threshold = max(self.compact_after, 2 * (len(snapshot) - 1))
        return fd

    def forget_from(self, partition: int, end: int) -> None:
        """Drop the partition's acks at or above ``end``. Entries only add acks, so the journal
        is rewritten as a new generation (a snapshot without them)."""
        cursor = self.cursors.get(partition)
        if cursor is not None and cursor.forget_from(end):
            self._start_generation()

    # -- reading and lifecycle

    def load(self) -> dict[int, GroupCursor]:
        return {p: GroupCursor(c.floor, c.acked) for p, c in self.cursors.items()}

    def mark(self) -> None:
        if self.fd is not None:
            self.durability.wrote(self.fd, self.path)
            self.durability.changed(self.directory)

    def close(self) -> None:
        if self.fd is not None:
            self.durability.forget(self.fd)
            os.close(self.fd)
            self.fd = None
