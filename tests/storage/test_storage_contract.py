"""The Store contract, run on every implementation (MemoryStore and DiskStore)."""

from __future__ import annotations

import threading

import pytest
from storage_helpers import record, records

from tidings.errors import NotFound, StorageError
from tidings.model import GroupSpec, TopicSpec
from tidings.storage import GroupCursor, Store


@pytest.fixture
def topic(store: Store) -> str:
    store.put_topic(TopicSpec(name="orders", partitions=2))
    return "orders"


def test_implements_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_empty_partition(store: Store, topic: str) -> None:
    assert store.bounds(topic, 0) == (0, 0)
    assert store.read(topic, 0, 0, 10) == []
    assert store.offset_at(topic, 0, 0.0) == 0


def test_append_and_read_in_order(store: Store, topic: str) -> None:
    store.append(topic, 0, records(0, 10))
    store.append(topic, 0, records(10, 90))
    assert store.bounds(topic, 0) == (0, 100)
    assert store.bounds(topic, 1) == (0, 0)
    assert store.read(topic, 0, 0, 1000) == records(0, 100)
    assert store.read(topic, 0, 42, 5) == records(42, 5)
    assert store.read(topic, 0, 100, 5) == []
    assert store.read(topic, 0, 500, 5) == []


def test_append_empty_batch_is_a_no_op(store: Store, topic: str) -> None:
    store.append(topic, 0, [])
    assert store.bounds(topic, 0) == (0, 0)


def test_every_field_round_trips(store: Store, topic: str) -> None:
    full = record(
        0,
        size=0,
        key="k-ü",
        headers={"content-type": "application/json", "x": ""},
        msg_id="m-1",
        deliver_at=5.5,
        expires_at=9.25,
    )
    store.append(topic, 1, [full, record(1, size=70_000)])
    assert store.read(topic, 1, 0, 10, max_bytes=1 << 30) == [full, record(1, size=70_000)]


def test_read_respects_max_bytes_but_returns_at_least_one(store: Store, topic: str) -> None:
    store.append(topic, 0, records(0, 20, size=1000))
    assert store.read(topic, 0, 0, 100, max_bytes=10) == [record(0, 1000)]
    some = store.read(topic, 0, 3, 100, max_bytes=5000)
    assert 2 <= len(some) <= 5
    assert some == records(3, len(some), 1000)


def test_append_out_of_order_is_refused(store: Store, topic: str) -> None:
    store.append(topic, 0, records(0, 3))
    with pytest.raises(StorageError, match="out of order"):
        store.append(topic, 0, records(5, 1))
    with pytest.raises(StorageError):
        store.append(topic, 0, records(2, 1))
    assert store.bounds(topic, 0) == (0, 3)
    store.append(topic, 0, records(3, 1))
    assert store.read(topic, 0, 0, 10) == records(0, 4)


def test_unknown_topic_or_partition(store: Store, topic: str) -> None:
    for call in (
        lambda: store.append("nope", 0, records(0, 1)),
        lambda: store.read(topic, 2, 0, 1),
        lambda: store.bounds("nope", 0),
        lambda: store.size(topic, 7),
        lambda: store.trim("nope", 0, 1),
        lambda: store.offset_at("nope", 0, 0.0),
    ):
        with pytest.raises(NotFound):
            call()


def test_size_grows_and_trim_shrinks(store: Store, topic: str) -> None:
    empty = store.size(topic, 0)
    for start in range(0, 200, 10):  # a disk store keeps a batch in one segment
        store.append(topic, 0, records(start, 10, size=200))
    full = store.size(topic, 0)
    assert full >= empty + 200 * 200
    store.trim(topic, 0, 150)
    assert store.bounds(topic, 0) == (150, 200)
    assert empty + 50 * 200 <= store.size(topic, 0) < full
    assert store.read(topic, 0, 150, 100) == records(150, 50, 200)
    assert store.read(topic, 0, 0, 1) == records(150, 1, 200)
    assert store.offset_at(topic, 0, 0.0) == 150


def test_trim_everything_keeps_the_next_offset(store: Store, topic: str) -> None:
    store.append(topic, 0, records(0, 50))
    store.trim(topic, 0, 1000)
    assert store.bounds(topic, 0) == (50, 50)
    assert store.read(topic, 0, 0, 10) == []
    store.append(topic, 0, records(50, 2))
    assert store.read(topic, 0, 0, 10) == records(50, 2)


def test_trim_below_first_is_a_no_op(store: Store, topic: str) -> None:
    store.append(topic, 0, records(0, 5))
    store.trim(topic, 0, 0)
    assert store.bounds(topic, 0) == (0, 5)


def test_offset_at(store: Store, topic: str) -> None:
    store.append(topic, 0, [record(o, timestamp=100.0 + 2 * o) for o in range(100)])
    assert store.offset_at(topic, 0, 0.0) == 0
    assert store.offset_at(topic, 0, 100.0) == 0
    assert store.offset_at(topic, 0, 101.0) == 1
    assert store.offset_at(topic, 0, 150.0) == 25
    assert store.offset_at(topic, 0, 297.5) == 99
    assert store.offset_at(topic, 0, 1e12) == 100


def test_catalogue(store: Store) -> None:
    a = TopicSpec(name="a", partitions=3, max_age=60.0)
    b = TopicSpec(name="b")
    store.put_topic(a)
    store.put_topic(b)
    assert sorted(store.topics(), key=lambda t: t.name) == [a, b]
    g1 = GroupSpec(topic="a", name="g1", mode="ordered")
    g2 = GroupSpec(topic="a", name="g2")
    store.put_group(g1)
    store.put_group(g2)
    assert sorted(store.groups("a"), key=lambda g: g.name) == [g1, g2]
    assert store.groups("b") == []
    store.drop_group("a", "g1")
    assert store.groups("a") == [g2]
    store.drop_topic("b")
    assert store.topics() == [a]


def test_put_topic_again_updates_and_adds_partitions(store: Store) -> None:
    store.put_topic(TopicSpec(name="t"))
    store.append("t", 0, records(0, 3))
    wider = TopicSpec(name="t", partitions=3, max_messages=10)
    store.put_topic(wider)
    assert store.topics() == [wider]
    assert store.bounds("t", 0) == (0, 3)
    assert store.bounds("t", 2) == (0, 0)


def test_drop_topic_removes_log_and_groups(store: Store) -> None:
    store.put_topic(TopicSpec(name="t"))
    store.put_group(GroupSpec(topic="t", name="g"))
    store.append("t", 0, records(0, 3))
    store.save_acks("t", "g", 0, [0, 1])
    store.drop_topic("t")
    assert store.topics() == [] and store.groups("t") == []
    assert store.load_cursors("t", "g") == {}
    with pytest.raises(NotFound):
        store.bounds("t", 0)
    store.put_topic(TopicSpec(name="t"))
    assert store.bounds("t", 0) == (0, 0)


def test_drop_unknown_topic_or_group_is_a_no_op(store: Store) -> None:
    store.drop_topic("ghost")
    store.drop_group("ghost", "g")


def test_group_cursors(store: Store, topic: str) -> None:
    store.put_group(GroupSpec(topic=topic, name="g"))
    assert store.load_cursors(topic, "g") == {}
    store.save_acks(topic, "g", 0, [0, 1, 3, 7])
    store.save_acks(topic, "g", 0, [3, 1])  # acked again: no change
    store.save_acks(topic, "g", 1, [])
    assert store.load_cursors(topic, "g") == {0: GroupCursor(2, {3, 7}), 1: GroupCursor()}
    store.save_acks(topic, "g", 0, [2])
    assert store.load_cursors(topic, "g")[0] == GroupCursor(4, {7})
    store.save_floor(topic, "g", 0, 6)
    assert store.load_cursors(topic, "g")[0] == GroupCursor(6, {7})
    store.save_acks(topic, "g", 0, [6])
    assert store.load_cursors(topic, "g")[0] == GroupCursor(8)
    store.save_floor(topic, "g", 0, 2)  # reset back
    store.save_floor(topic, "g", 1, 40)
    assert store.load_cursors(topic, "g") == {0: GroupCursor(2), 1: GroupCursor(40)}


def test_load_cursors_returns_copies(store: Store, topic: str) -> None:
    store.save_acks(topic, "g", 0, [5])
    store.load_cursors(topic, "g")[0].ack(0)
    assert store.load_cursors(topic, "g") == {0: GroupCursor(0, {5})}


def test_groups_are_independent(store: Store, topic: str) -> None:
    store.put_group(GroupSpec(topic=topic, name="a"))
    store.put_group(GroupSpec(topic=topic, name="b"))
    store.save_acks(topic, "a", 0, [0])
    store.save_floor(topic, "b", 0, 9)
    store.drop_group(topic, "a")
    assert store.load_cursors(topic, "a") == {}
    assert store.load_cursors(topic, "b") == {0: GroupCursor(9)}


def test_names_that_are_not_plain_file_names(store: Store) -> None:
    for name in (".", "..", ".hidden", "a.b-c_D"):
        store.put_topic(TopicSpec(name=name))
        store.append(name, 0, records(0, 2))
        store.save_acks(name, name, 0, [0])
    for name in (".", "..", ".hidden", "a.b-c_D"):
        assert store.read(name, 0, 0, 5) == records(0, 2)
        assert store.load_cursors(name, name) == {0: GroupCursor(1)}


def test_sync_from_another_thread_while_appending(store: Store, topic: str) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        while not stop.is_set():
            try:
                store.sync()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        for start in range(0, 3000, 10):
            store.append(topic, 0, records(start, 10))
            store.save_acks(topic, "g", 0, range(start, start + 10))
            if start % 500 == 0:
                store.trim(topic, 0, start - 200)
    finally:
        stop.set()
        thread.join()
    store.sync()
    assert not errors
    first, end = store.bounds(topic, 0)
    assert end == 3000
    assert store.read(topic, 0, first, 10_000, max_bytes=1 << 30) == records(first, end - first)
    assert store.load_cursors(topic, "g") == {0: GroupCursor(3000)}
