"""DiskStore: what survives close and crash, and how recovery handles damaged files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storage_helpers import crash, records

from tidings.errors import StorageError
from tidings.model import GroupSpec, TopicSpec
from tidings.storage import DiskStore, GroupCursor
from tidings.storage.disk import format as fmt


def segments(store: DiskStore, topic: str = "t", partition: int = 0) -> list[Path]:
    directory = Path(store.path, fmt.TOPICS_DIR, topic, str(partition))
    return sorted(directory.glob("*" + fmt.SEGMENT_SUFFIX))


def journal(store: DiskStore, topic: str = "t", group: str = "g") -> Path:
    directory = Path(store.path, fmt.TOPICS_DIR, topic, fmt.GROUPS_DIR, group)
    return sorted(directory.glob("*" + fmt.JOURNAL_SUFFIX))[-1]


def fill(store: DiskStore, count: int = 100, batch: int = 10, size: int = 100) -> None:
    store.put_topic(TopicSpec(name="t", partitions=2))
    store.put_group(GroupSpec(topic="t", name="g"))
    for start in range(0, count, batch):
        store.append("t", 0, records(start, batch, size))


@pytest.mark.parametrize("crashed", [False, True], ids=["closed", "crashed"])
def test_everything_synced_survives(disk: DiskStore, reopen, crashed: bool) -> None:
    fill(disk, 300)
    disk.put_topic(TopicSpec(name="other", max_bytes=1000))
    disk.put_group(GroupSpec(topic="t", name="h", mode="ordered"))
    disk.append("t", 1, records(0, 3))
    disk.save_acks("t", "g", 0, [0, 1, 2, 10, 11])
    disk.save_floor("t", "h", 1, 2)
    disk.trim("t", 0, 120)
    assert disk.bounds("t", 0)[0] == 120
    topics, groups = disk.topics(), disk.groups("t")
    disk.sync()
    first = int(segments(disk)[0].stem)  # whole segments went; the rest comes back on reopen
    assert 100 < first <= 120
    store, report = reopen(disk, crashed=crashed)
    assert report.truncated == []
    assert report.topics == 2 and report.messages == 300 - first + 3
    assert store.topics() == topics and store.groups("t") == groups
    assert store.bounds("t", 0) == (first, 300)
    assert store.read("t", 0, first, 1000, 1 << 30) == records(first, 300 - first)
    assert store.read("t", 1, 0, 10) == records(0, 3)
    assert store.load_cursors("t", "g") == {0: GroupCursor(3, {10, 11})}
    assert store.load_cursors("t", "h") == {1: GroupCursor(2)}
    assert store.offset_at("t", 0, 1_700_000_200.5) == 201
    store.append("t", 0, records(300, 5))  # and it goes on from there
    assert store.read("t", 0, 298, 10) == records(298, 7)


def test_drops_survive(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.put_topic(TopicSpec(name="u"))
    disk.put_group(GroupSpec(topic="u", name="g"))
    disk.save_acks("u", "g", 0, [0])
    disk.sync()
    disk.drop_group("t", "g")
    disk.drop_topic("u")
    disk.sync()
    store, _ = reopen(disk, crashed=True)
    assert [t.name for t in store.topics()] == ["t"]
    assert store.groups("t") == [] and store.load_cursors("t", "g") == {}
    assert sorted(os.listdir(Path(store.path, fmt.TOPICS_DIR))) == ["t"]
    assert os.listdir(Path(store.path, fmt.TRASH_DIR)) == []


def test_unsynced_topic_is_gone_after_a_crash(disk: DiskStore, reopen) -> None:
    disk.put_topic(TopicSpec(name="t"))
    disk.sync()
    disk.put_topic(TopicSpec(name="late"))
    store, _ = reopen(disk, crashed=True)
    assert [t.name for t in store.topics()] == ["t"]
    assert not Path(store.path, fmt.TOPICS_DIR, "late").exists()


def test_clean_close_leaves_a_marker_and_indexes(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.close()
    assert Path(disk.path, fmt.CLEAN_FILE).exists()
    assert all(p.with_suffix(fmt.INDEX_SUFFIX).exists() for p in segments(disk))
    store, report = reopen(disk)
    assert not Path(store.path, fmt.CLEAN_FILE).exists()  # a crash from now on is unclean
    assert report.truncated == [] and store.bounds("t", 0) == (0, 100)


def test_second_open_of_the_same_directory_is_refused(disk: DiskStore) -> None:
    with pytest.raises(StorageError, match="in use"):
        DiskStore(disk.path).open()


def test_a_newer_format_is_refused(disk: DiskStore) -> None:
    fill(disk)
    disk.close()
    tail = segments(disk)[-1]
    with open(tail, "r+b") as f:
        f.write(fmt.FILE_HEADER.pack(fmt.SEGMENT_MAGIC, fmt.VERSION + 1, 0, 0))
    Path(disk.path, fmt.CLEAN_FILE).unlink()
    with pytest.raises(StorageError, match="upgrade"):
        DiskStore(disk.path).open()


def test_a_damaged_catalogue_is_an_error(disk: DiskStore) -> None:
    fill(disk)
    disk.close()
    path = Path(disk.path, fmt.CATALOGUE_FILE)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="damaged"):
        DiskStore(disk.path).open()


def test_a_missing_catalogue_is_an_error_not_an_empty_store(disk: DiskStore) -> None:
    fill(disk)
    disk.close()
    Path(disk.path, fmt.CATALOGUE_FILE).unlink()
    with pytest.raises(StorageError, match="restore the catalogue"):
        DiskStore(disk.path).open()
    assert segments(disk)  # nothing was deleted


# -- damaged log tails


def _damage_tail(store: DiskStore, how: str) -> tuple[Path, int]:
    """Damage the last record of the tail segment; return the file and that record's position."""
    tail = segments(store)[-1]
    data = bytearray(tail.read_bytes())
    position = fmt.FILE_HEADER.size
    while True:
        length = fmt.RECORD_HEADER.unpack_from(data, position)[1]
        if position + fmt.RECORD_HEADER.size + length == len(data):
            break
        position += fmt.RECORD_HEADER.size + length
    if how == "truncated":
        data = data[: position + 30]
    elif how == "flipped":
        data[position + 40] ^= 0x5A
    elif how == "torn header":
        data = data[: position + 7]
    elif how == "bad length":
        data[position + 4 : position + 8] = (2**31).to_bytes(4, "little")
    tail.write_bytes(bytes(data))
    return tail, position


@pytest.mark.parametrize("how", ["truncated", "flipped", "torn header", "bad length"])
def test_damaged_last_record_is_cut_off(disk: DiskStore, reopen, how: str) -> None:
    fill(disk)
    disk.sync()
    crash(disk)
    tail, position = _damage_tail(disk, how)
    store, report = reopen(disk)
    assert len(report.truncated) == 1
    assert report.truncated[0].startswith(f"{tail}:{position}: ")
    assert store.bounds("t", 0) == (0, 99)
    assert store.read("t", 0, 0, 1000, 1 << 30) == records(0, 99)
    assert tail.stat().st_size == position
    store.append("t", 0, records(99, 5))
    store, report = reopen(store, crashed=True)
    assert report.truncated == []
    assert store.read("t", 0, 0, 1000, 1 << 30) == records(0, 104)


def test_garbage_after_the_last_record_is_cut_off(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.sync()
    crash(disk)
    tail = segments(disk)[-1]
    size = tail.stat().st_size
    with open(tail, "ab") as f:
        f.write(os.urandom(300))
    store, report = reopen(disk)
    assert report.truncated and report.truncated[0].startswith(f"{tail}:{size}: ")
    assert store.read("t", 0, 0, 1000, 1 << 30) == records(0, 100)


def test_zeroed_tail_is_cut_off(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.sync()
    crash(disk)
    tail = segments(disk)[-1]
    with open(tail, "ab") as f:
        f.write(bytes(4096))  # what a crash can leave: the size grew, the data never came
    store, report = reopen(disk)
    assert "checksum mismatch" in report.truncated[0]
    assert store.bounds("t", 0) == (0, 100)


def test_empty_tail_segment_without_header(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.sync()
    crash(disk)
    next_base = 100
    empty = segments(disk)[-1].with_name(fmt.numbered(next_base, fmt.SEGMENT_SUFFIX))
    empty.write_bytes(b"")  # created by a roll, then the process died
    store, report = reopen(disk)
    assert report.truncated == [f"{empty}:0: bad segment header"]
    assert store.bounds("t", 0) == (0, 100)
    store.append("t", 0, records(100, 1))
    assert store.read("t", 0, 99, 5) == records(99, 2)


def test_lost_tail_of_a_sealed_segment_keeps_the_later_ones(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.sync()
    crash(disk)
    files = segments(disk)
    assert len(files) >= 3
    victim = files[-2]  # its last record is torn, but the next segment is whole
    after = int(files[-1].stem)
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size - 10)
    store, report = reopen(disk)
    assert any(line.startswith(f"{victim}:") for line in report.truncated)
    assert [(r.topic, r.partition, r.first, r.last) for r in report.lost] == [
        ("t", 0, after - 1, after - 1)
    ]
    assert files[-1].exists()
    assert store.bounds("t", 0) == (0, 100)
    expected = [r for r in records(0, 100) if r.offset != after - 1]
    assert store.read("t", 0, 0, 1000, 1 << 30) == expected
    assert store.read("t", 0, after - 1, 1) == records(after, 1)  # the hole is skipped
    store.append("t", 0, records(100, 3))
    store, report = reopen(store, crashed=True)
    assert report.lost == [] and report.truncated == []
    assert store.read("t", 0, 0, 1000, 1 << 30) == expected + records(100, 3)


def test_damaged_or_missing_index_is_rebuilt(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.close()
    indexes = sorted(Path(disk.path, fmt.TOPICS_DIR, "t", "0").glob("*" + fmt.INDEX_SUFFIX))
    indexes[0].unlink()
    data = bytearray(indexes[1].read_bytes())
    data[-3] ^= 1
    indexes[1].write_bytes(bytes(data))
    store, report = reopen(disk)
    assert report.truncated == []
    assert store.read("t", 0, 0, 1000, 1 << 30) == records(0, 100)
    assert indexes[0].exists()


def test_corrupt_record_in_a_sealed_segment_is_never_served(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.close()
    first = segments(disk)[0]
    data = bytearray(first.read_bytes())
    data[fmt.FILE_HEADER.size + fmt.RECORD_HEADER.size + 5] ^= 0xFF  # body of offset 0
    first.write_bytes(bytes(data))
    store, _ = reopen(disk)  # the index is trusted: the read finds the damage
    assert store.read("t", 0, 0, 10) == records(1, 10)
    assert store.read("t", 0, 1, 5) == records(1, 5)


# -- group journals


def test_journal_compaction_keeps_cursors_and_bounds_the_file(disk: DiskStore, reopen) -> None:
    disk.close()
    store, _ = reopen(disk, journal_compact=50)
    store.put_topic(TopicSpec(name="t"))
    store.put_group(GroupSpec(topic="t", name="g"))
    for i in range(0, 1000, 2):
        store.save_acks("t", "g", 0, [i + 1])  # out of order: the acked set stays ...
        store.save_acks("t", "g", 0, [i])  # ... small, the floor moves
    store.save_acks("t", "g", 1, [5, 9])
    expected = {0: GroupCursor(1000), 1: GroupCursor(0, {5, 9})}
    assert store.load_cursors("t", "g") == expected
    store.sync()
    files = list(journal(store).parent.iterdir())
    assert len(files) == 1 and files[0].stat().st_size < 200 * fmt.JOURNAL_ENTRY.size
    for crashed in (True, False):
        store, report = reopen(store, crashed=crashed, journal_compact=50)
        assert report.truncated == [] and store.load_cursors("t", "g") == expected


@pytest.mark.parametrize("damage", ["torn", "flipped", "garbage"])
def test_damaged_journal_tail_is_cut_off(disk: DiskStore, reopen, damage: str) -> None:
    fill(disk)
    disk.save_acks("t", "g", 0, [0, 1, 5])
    disk.sync()
    disk.save_acks("t", "g", 0, [7])
    crash(disk)
    path = journal(disk)
    data = bytearray(path.read_bytes())
    good = len(data) - fmt.JOURNAL_ENTRY.size
    if damage == "torn":
        data = data[:-5]
    elif damage == "flipped":
        data[-1] ^= 0x10
    else:
        good = len(data)
        data += os.urandom(33)
    path.write_bytes(bytes(data))
    store, report = reopen(disk)
    assert len(report.truncated) == 1 and report.truncated[0].startswith(f"{path}:{good}: ")
    expected = {0: GroupCursor(2, {5, 7} if damage == "garbage" else {5})}
    assert store.load_cursors("t", "g") == expected
    store.save_acks("t", "g", 0, [2])
    store, _ = reopen(store, crashed=True)
    assert store.load_cursors("t", "g")[0].floor == 3


def test_incomplete_journal_generation_falls_back(disk: DiskStore, reopen) -> None:
    disk.close()
    store, _ = reopen(disk, journal_compact=10)
    store.put_topic(TopicSpec(name="t"))
    store.put_group(GroupSpec(topic="t", name="g"))
    store.save_acks("t", "g", 0, [3, 5, 7])
    store.sync()
    old = journal(store)
    saved = old.read_bytes()
    store.save_acks("t", "g", 0, range(100, 140, 2))  # compacts into a new generation
    new = journal(store)
    assert new != old
    crash(store)
    old.write_bytes(saved)  # the old one was not deleted yet (no sync) ...
    new.write_bytes(new.read_bytes()[:40])  # ... and the new one is torn in its snapshot
    store, report = reopen(store)
    assert any("incomplete snapshot" in line for line in report.truncated)
    assert store.load_cursors("t", "g") == {0: GroupCursor(0, {3, 5, 7})}


def test_pending_deletes_spare_new_files_at_the_same_paths(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.save_acks("t", "g", 0, range(0, 100, 2))
    disk.trim("t", 0, 60)  # segments below 60 are deleted by the next sync ...
    disk.drop_topic("t")  # ... but first the topic is dropped and made again
    fill(disk)
    disk.sync()
    assert disk.read("t", 0, 0, 1000, 1 << 30) == records(0, 100)
    store, _ = reopen(disk, crashed=True)
    assert store.read("t", 0, 0, 1000, 1 << 30) == records(0, 100)
    assert store.load_cursors("t", "g") == {}


# -- damage in the middle of a segment


def _frame_positions(path: Path) -> list[int]:
    data = path.read_bytes()
    out, position = [], fmt.FILE_HEADER.size
    while position < len(data):
        out.append(position)
        position += fmt.RECORD_HEADER.size + fmt.RECORD_HEADER.unpack_from(data, position)[1]
    return out


@pytest.mark.parametrize("where", ["body", "length", "offset"])
@pytest.mark.parametrize("crashed", [False, True], ids=["closed", "crashed"])
def test_mid_segment_damage_loses_only_the_damaged_record(
    disk: DiskStore, reopen, where: str, crashed: bool
) -> None:
    fill(disk)
    disk.sync()
    tail = segments(disk)[-1]
    base = int(tail.stem)
    positions = _frame_positions(tail)
    victim = base + len(positions) // 2
    position = positions[victim - base]
    frame = tail.read_bytes()[position : positions[victim - base + 1]]
    if crashed:
        crash(disk)
    else:
        disk.close()
    data = bytearray(tail.read_bytes())
    data[position + {"body": 40, "length": 6, "offset": 9}[where]] ^= 0x5A
    tail.write_bytes(bytes(data))
    damaged = bytes(data[position : position + len(frame)])
    expected = [r for r in records(0, 100) if r.offset != victim]
    store = disk
    for attempt in range(2):  # the same on every open
        store, report = reopen(store, verify=True)
        assert store.read("t", 0, 0, 1000, 1 << 30) == expected
        assert store.bounds("t", 0) == (0, 100)
        if attempt == 0:
            [lost] = report.lost
            assert (lost.topic, lost.partition, lost.first, lost.last) == ("t", 0, victim, victim)
            assert lost.file == str(tail) and lost.position == position
            assert Path(lost.quarantine).read_bytes() == damaged
            assert report.quarantined == [lost.quarantine]
        else:
            assert report.lost == [] and report.truncated == []
    store.append("t", 0, records(100, 2))
    assert store.read("t", 0, 98, 10) == records(98, 4)


def test_a_whole_damaged_run_of_records_is_skipped_and_named(disk: DiskStore, reopen) -> None:
    fill(disk)
    disk.sync()
    crash(disk)
    tail = segments(disk)[-1]
    base = int(tail.stem)
    positions = _frame_positions(tail)
    data = bytearray(tail.read_bytes())
    start, end = positions[1], positions[4]  # offsets base+1 .. base+3
    data[start:end] = os.urandom(end - start)
    tail.write_bytes(bytes(data))
    store, report = reopen(disk)
    assert [(r.first, r.last) for r in report.lost] == [(base + 1, base + 3)]
    lost = set(range(base + 1, base + 4))
    assert store.read("t", 0, 0, 1000, 1 << 30) == [
        r for r in records(0, 100) if r.offset not in lost
    ]
