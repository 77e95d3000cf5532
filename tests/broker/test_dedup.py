"""Issue point 3: duplicate detection by producer message id within the topic's window."""

from __future__ import annotations

from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join


def test_duplicate_returns_original(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=4, dedup_window=60))
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    [first] = b.publish("t", [Outgoing(b"one", msg_id="id-1")])
    b.publish("t", [Outgoing(b"other")])
    [dup] = b.publish("t", [Outgoing(b"changed", key="zz", msg_id="id-1")])
    assert dup.duplicate and not first.duplicate
    assert (dup.partition, dup.offset, dup.id) == (first.partition, first.offset, first.id)
    assert b.topic_info("t").messages == 2
    assert sorted(d.body for d in inbox.items) == [b"one", b"other"]


def test_duplicate_within_one_batch(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    r = b.publish("t", [Outgoing(b"a", msg_id="x"), Outgoing(b"b", msg_id="x")])
    assert [x.duplicate for x in r] == [False, True]
    assert r[1].offset == r[0].offset
    assert r[1].id == r[0].id
    assert b.topic_info("t").messages == 1


def test_duplicates_within_one_batch_across_partitions(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=3))
    out = [Outgoing(b"%d" % i, key=f"k{i}", msg_id=f"id-{i % 4}") for i in range(10)]
    r = b.publish("t", out)
    assert [x.duplicate for x in r] == [False] * 4 + [True] * 6
    for i in range(4, 10):
        original = r[i % 4]
        assert (r[i].partition, r[i].offset, r[i].id) == (
            original.partition,
            original.offset,
            original.id,
        )
    assert b.topic_info("t").messages == 4
    # the stored records carry ids in publish order, one apart (duplicates take none)
    assert [int(x.id, 16) for x in r[:4]] == [int(r[0].id, 16) + k for k in range(4)]


def test_window_edges(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", dedup_window=10))
    [a] = b.publish("t", [Outgoing(b"a", msg_id="x")])
    env.clock.advance(9.999)
    [d] = b.publish("t", [Outgoing(b"a", msg_id="x")])
    assert d.duplicate and d.offset == a.offset  # just inside
    env.clock.advance(0.002)  # 10.001 s after the original: just outside
    [n] = b.publish("t", [Outgoing(b"a", msg_id="x")])
    assert not n.duplicate and n.offset == a.offset + 1
    env.clock.advance(5)
    [d2] = b.publish("t", [Outgoing(b"a", msg_id="x")])
    assert d2.duplicate and d2.offset == n.offset  # the window restarts at the new original


def test_window_zero_turns_dedup_off(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", dedup_window=0))
    r = b.publish("t", [Outgoing(b"a", msg_id="x"), Outgoing(b"a", msg_id="x")])
    assert [x.offset for x in r] == [0, 1] and not any(x.duplicate for x in r)


def test_dedup_is_per_topic(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t1"))
    b.create_topic(TopicSpec(name="t2"))
    b.publish("t1", [Outgoing(b"a", msg_id="x")])
    [r] = b.publish("t2", [Outgoing(b"a", msg_id="x")])
    assert not r.duplicate


def test_dedup_survives_reopen(disk_env: Env) -> None:
    b = disk_env.broker
    b.create_topic(TopicSpec(name="t", partitions=3, dedup_window=30))
    originals = b.publish("t", [Outgoing(b"%d" % i, msg_id=f"m{i}") for i in range(20)])
    disk_env.clock.advance(20)
    late = b.publish("t", [Outgoing(b"late", msg_id="late")])[0]
    for crash in (True, False):
        b = disk_env.reopen(crash=crash)
        again = b.publish("t", [Outgoing(b"%d" % i, msg_id=f"m{i}") for i in range(20)])
        assert all(r.duplicate for r in again)
        assert [(r.partition, r.offset, r.id) for r in again] == [
            (r.partition, r.offset, r.id) for r in originals
        ]
    assert b.topic_info("t").messages == 21
    # the window still counts from the original publish time after the reopen
    disk_env.clock.advance(10.5)
    [r] = b.publish("t", [Outgoing(b"0", msg_id="m0")])
    assert not r.duplicate
    [r] = b.publish("t", [Outgoing(b"late", msg_id="late")])
    assert r.duplicate and r.offset == late.offset
