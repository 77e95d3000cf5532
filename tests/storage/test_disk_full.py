"""DiskStore on a full disk (and other OS errors), simulated by injected faults."""

from __future__ import annotations

import errno
import os

import pytest
from storage_helpers import records

from tidings.errors import StorageError, StorageFull
from tidings.model import GroupSpec, TopicSpec
from tidings.storage import DiskStore, GroupCursor
from tidings.storage.disk import files

real_pwrite = os.pwrite


class Disk:
    """Stands in for os.pwrite: writes up to ``room`` more bytes, then fails with ``error``."""

    def __init__(self, room: int, error: int = errno.ENOSPC) -> None:
        self.room = room
        self.error = error

    def pwrite(self, fd: int, data, position: int) -> int:
        if self.room <= 0:
            raise OSError(self.error, os.strerror(self.error))
        written = real_pwrite(fd, bytes(data)[: self.room], position)
        self.room -= written
        return written


@pytest.fixture
def full(monkeypatch: pytest.MonkeyPatch):
    def fill_up(room: int = 0, error: int = errno.ENOSPC) -> None:
        monkeypatch.setattr(os, "pwrite", Disk(room, error).pwrite)

    yield fill_up
    monkeypatch.setattr(os, "pwrite", real_pwrite)


def setup(store: DiskStore) -> None:
    store.put_topic(TopicSpec(name="t"))
    store.put_group(GroupSpec(topic="t", name="g"))
    store.append("t", 0, records(0, 10))
    store.save_acks("t", "g", 0, [0, 1, 4])
    store.sync()


def test_append_on_a_full_disk(disk: DiskStore, full, reopen, monkeypatch) -> None:
    setup(disk)
    size = disk.size("t", 0)
    full(room=150)  # the batch gets half way, then the disk is full
    with pytest.raises(
        StorageFull, match=r"storage full while appending to .*free disk space"
    ) as e:
        disk.append("t", 0, records(10, 5))
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.ENOSPC
    assert disk.bounds("t", 0) == (0, 10) and disk.size("t", 0) == size
    monkeypatch.setattr(os, "pwrite", real_pwrite)  # space is back
    disk.append("t", 0, records(10, 5))
    disk.sync()
    assert disk.read("t", 0, 0, 100) == records(0, 15)
    store, report = reopen(disk, crashed=True)
    assert report.truncated == []
    assert store.read("t", 0, 0, 100) == records(0, 15)


def test_segment_roll_on_a_full_disk(disk: DiskStore, full, monkeypatch) -> None:
    setup(disk)
    while len(disk._logs["t"][0].segments) == 1:  # fill the first segment
        start = disk.bounds("t", 0)[1]
        disk.append("t", 0, records(start, 5))
    end = disk.bounds("t", 0)[1]
    segment = disk._logs["t"][0].segments[-1]
    while segment.size + 600 < disk.segment_bytes:
        disk.append("t", 0, records(end, 1))
        end += 1
    full(room=0)
    with pytest.raises(StorageFull):
        disk.append("t", 0, records(end, 10))  # needs a new segment
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    disk.append("t", 0, records(end, 10))
    assert disk.read("t", 0, 0, 10_000, 1 << 30) == records(0, end + 10)


def test_acks_on_a_full_disk(disk: DiskStore, full, monkeypatch, reopen) -> None:
    setup(disk)
    full(room=7)
    with pytest.raises(StorageFull):
        disk.save_acks("t", "g", 0, [2, 3])
    with pytest.raises(StorageFull):
        disk.save_floor("t", "g", 0, 9)
    assert disk.load_cursors("t", "g") == {0: GroupCursor(2, {4})}
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    disk.save_acks("t", "g", 0, [2, 3])
    disk.sync()
    store, report = reopen(disk, crashed=True)
    assert report.truncated == []
    assert store.load_cursors("t", "g") == {0: GroupCursor(5)}


def test_catalogue_on_a_full_disk(disk: DiskStore, full, monkeypatch, reopen) -> None:
    setup(disk)
    disk.put_topic(TopicSpec(name="u"))
    full(room=0)
    with pytest.raises(StorageFull):
        disk.sync()
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    disk.sync()  # the catalogue was kept pending
    store, _ = reopen(disk, crashed=True)
    assert sorted(t.name for t in store.topics()) == ["t", "u"]


def test_other_os_errors_name_the_file(disk: DiskStore, full) -> None:
    setup(disk)
    full(room=0, error=errno.EIO)
    with pytest.raises(StorageError, match=r"appending to .*\.log failed") as e:
        disk.append("t", 0, records(10, 1))
    assert not isinstance(e.value, StorageFull)
    assert e.value.__cause__.errno == errno.EIO


def test_failed_fsync_stops_writes_until_reopened(disk: DiskStore, monkeypatch, reopen) -> None:
    setup(disk)
    disk.append("t", 0, records(10, 2))

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files, "_datasync", broken)
    with pytest.raises(StorageError, match="refuses writes until it is reopened"):
        disk.sync()
    monkeypatch.undo()
    with pytest.raises(StorageError, match="refuses writes"):
        disk.append("t", 0, records(12, 1))
    with pytest.raises(StorageError, match="refuses writes"):
        disk.sync()
    store, _ = reopen(disk, crashed=True)
    assert store.read("t", 0, 0, 100) == records(0, 12)
    store.append("t", 0, records(12, 1))
