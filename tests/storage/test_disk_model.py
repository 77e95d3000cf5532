"""DiskStore against the MemoryStore model on random sequences of operations (with reopen)."""

from __future__ import annotations

import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import records

from tidings.model import GroupSpec, TopicSpec
from tidings.storage import DiskStore, MemoryStore, Store

PARTITIONS = 2
GROUPS = ("g1", "g2")

partitions = st.integers(0, PARTITIONS - 1)
groups = st.sampled_from(GROUPS)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), partitions, st.integers(1, 12), st.integers(0, 700)),
        st.tuples(st.just("trim"), partitions, st.integers(-3, 40)),
        st.tuples(st.just("acks"), groups, partitions, st.lists(st.integers(0, 60), max_size=8)),
        st.tuples(st.just("floor"), groups, partitions, st.integers(0, 60)),
        st.tuples(st.just("reopen"), st.booleans()),
        st.tuples(st.just("sync")),
        st.tuples(st.just("recreate")),
    ),
    max_size=40,
)


def check(disk: DiskStore, memory: MemoryStore, exact: list[bool]) -> None:
    """``exact[p]``: no reopen since partition p was last trimmed (a reopen may bring back
    records that were trimmed inside a segment; the contract allows that)."""
    for p in range(PARTITIONS):
        first, end = memory.bounds("t", p)
        disk_first, disk_end = disk.bounds("t", p)
        assert disk_end == end
        assert disk_first == first if exact[p] else disk_first <= first
        assert disk.read("t", p, first, 10**6, 1 << 40) == memory.read("t", p, first, 10**6)
        for ts in (0.0, 1_700_000_000.0 + first + 0.5, 1_700_000_000.0 + end - 2, 2e9):
            assert max(disk.offset_at("t", p, ts), first) == memory.offset_at("t", p, ts)
    for g in GROUPS:
        assert disk.load_cursors("t", g) == memory.load_cursors("t", g)
    assert disk.topics() == memory.topics()
    assert sorted(disk.groups("t"), key=repr) == sorted(memory.groups("t"), key=repr)


def declare(store: Store) -> None:
    store.put_topic(TopicSpec(name="t", partitions=PARTITIONS))
    for g in GROUPS:
        store.put_group(GroupSpec(topic="t", name=g))


@settings(max_examples=200, deadline=None)
@given(operations)
def test_disk_store_behaves_like_the_memory_store(ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        memory = MemoryStore()
        disk = DiskStore(directory, segment_bytes=2048, journal_compact=8)
        disk.open()
        declare(memory)
        declare(disk)
        exact = [True] * PARTITIONS
        try:
            for op in ops:
                kind, args = op[0], op[1:]
                if kind == "append":
                    p, count, size = args
                    batch = records(memory.bounds("t", p)[1], count, size)
                    memory.append("t", p, batch)
                    disk.append("t", p, batch)
                elif kind == "trim":
                    p, delta = args
                    before = memory.bounds("t", p)[0] + delta
                    exact[p] = exact[p] or delta > 0
                    memory.trim("t", p, before)
                    disk.trim("t", p, before)
                elif kind == "acks":
                    memory.save_acks("t", *args)
                    disk.save_acks("t", *args)
                elif kind == "floor":
                    memory.save_floor("t", *args)
                    disk.save_floor("t", *args)
                elif kind == "sync":
                    disk.sync()
                elif kind == "recreate":  # the same paths again, before the deletes ran
                    for store in (memory, disk):
                        store.drop_topic("t")
                        declare(store)
                    exact = [True] * PARTITIONS
                else:
                    disk.sync()
                    if args[0]:
                        disk._release()  # as if killed after the sync
                    else:
                        disk.close()
                    disk = DiskStore(directory, segment_bytes=2048, journal_compact=8)
                    assert disk.open().truncated == []
                    exact = [False] * PARTITIONS
                check(disk, memory, exact)
        finally:
            disk.close()
