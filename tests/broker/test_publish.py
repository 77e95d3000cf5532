"""Issue point 2: publishing — fields, partitioning, offsets, ids, batches (all or nothing)."""

from __future__ import annotations

import pytest

from tidings.errors import BadRequest, MessageTooLarge
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.partitioning import partition_for

from .conftest import Env, join


def test_fields_round_trip(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    now = env.clock.now()
    [r] = b.publish(
        "t",
        [Outgoing(b"body", key="k", headers={"h": "v"}, msg_id="m-1", ttl=100.0, delay=0)],
    )
    assert (r.topic, r.partition, r.offset, r.duplicate) == ("t", 0, 0, False)
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    [d] = inbox.items
    assert (d.body, d.key, d.headers, d.msg_id, d.id) == (b"body", "k", {"h": "v"}, "m-1", r.id)
    assert d.timestamp == now
    assert (d.topic, d.group, d.partition, d.offset, d.delivery_count) == ("t", "g", 0, 0, 1)
    assert d.lease_until == now + 30.0
    # and the same after a restart (disk: read back from the log)
    b = env.reopen()
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    [d] = inbox.items
    assert (d.body, d.key, d.headers, d.msg_id, d.id) == (b"body", "k", {"h": "v"}, "m-1", r.id)


@pytest.mark.parametrize(
    ("key", "partitions", "expected"),
    [
        ("a", 3, 0),
        ("a", 8, 3),
        ("hello", 3, 1),
        ("hello", 16, 6),
        ("order-42", 16, 14),
        ("ключ", 16, 10),
    ],
)
def test_partition_for_known_values(key: str, partitions: int, expected: int) -> None:
    assert partition_for(key, partitions) == expected


def test_key_picks_partition(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=16))
    keys = ["a", "hello", "order-42", "ключ"] + [f"k{i}" for i in range(50)]
    for key in keys:
        [r] = b.publish("t", [Outgoing(b"x", key=key)])
        assert r.partition == partition_for(key, 16)
    # stable: the same key always lands on the same partition
    for key in keys:
        [r] = b.publish("t", [Outgoing(b"y", key=key)])
        assert r.partition == partition_for(key, 16)


def test_keyless_round_robin_and_offsets_per_partition(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=3))
    receipts = b.publish("t", [Outgoing(b"%d" % i) for i in range(9)])
    assert sorted({r.partition for r in receipts}) == [0, 1, 2]
    for p in range(3):
        assert [r.offset for r in receipts if r.partition == p] == [0, 1, 2]
    # the next message goes on round-robin
    parts = [b.publish("t", [Outgoing(b"x")])[0].partition for _ in range(6)]
    assert sorted(parts) == [0, 0, 1, 1, 2, 2]
    assert [p.next_offset for p in b.topic_info("t").partitions] == [5, 5, 5]


def test_offsets_continue_after_reopen(env: Env) -> None:
    env.broker.create_topic(TopicSpec(name="t", partitions=2))
    env.broker.publish("t", [Outgoing(b"x", key="a") for _ in range(5)])
    b = env.reopen()
    [r] = b.publish("t", [Outgoing(b"x", key="a")])
    assert (r.partition, r.offset) == (partition_for("a", 2), 5)


def test_unique_ids(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=4))
    ids = [r.id for r in b.publish("t", [Outgoing(b"x") for _ in range(500)])]
    ids += [b.publish("t", [Outgoing(b"x")])[0].id for _ in range(100)]
    b = env.reopen()
    ids += [r.id for r in b.publish("t", [Outgoing(b"x") for _ in range(100)])]
    assert len(set(ids)) == len(ids) == 700


def test_batch_in_one_call(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    receipts = b.publish("t", [Outgoing(b"%d" % i, key="k") for i in range(100)])
    assert [r.offset for r in receipts] == list(range(100))
    _, inbox = join(b, GroupSpec(topic="t", name="g"), prefetch=100)
    assert [d.body for d in inbox.items] == [b"%d" % i for i in range(100)]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (Outgoing(b"x" * 101), MessageTooLarge),
        (Outgoing("text"), BadRequest),  # type: ignore[arg-type]
        (Outgoing(b"x", key=5), BadRequest),  # type: ignore[arg-type]
        (Outgoing(b"x", headers={"a": 1}), BadRequest),  # type: ignore[dict-item]
        (Outgoing(b"x", ttl=-1), BadRequest),
        (Outgoing(b"x", delay=-1), BadRequest),
        (Outgoing(b"x", delay="soon"), BadRequest),  # type: ignore[arg-type]
    ],
)
def test_batch_all_or_nothing(env: Env, bad: Outgoing, error: type[Exception]) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=2, max_message_size=100))
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    batch = [Outgoing(b"ok", msg_id="a"), Outgoing(b"ok2", key="k"), bad, Outgoing(b"ok3")]
    with pytest.raises(error):
        b.publish("t", batch)
    info = b.topic_info("t")
    assert info.messages == 0
    assert inbox.items == []
    # nothing was remembered for dedup either: a retry of the good part is stored
    [r] = b.publish("t", [Outgoing(b"ok", msg_id="a")])
    assert not r.duplicate


def test_confirm_after_sync_defers_delivery(env: Env) -> None:
    b = env.reopen(confirm_after_sync=True)
    b.create_topic(TopicSpec(name="t"))
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    b.publish("t", [Outgoing(b"x")])
    assert inbox.items == []
    assert b.group_info("t", "g").ready == 0
    b.sync()
    assert [d.body for d in inbox.items] == [b"x"]
