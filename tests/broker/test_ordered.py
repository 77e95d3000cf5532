"""Issue point 6: ordered mode — exclusive assignment, rebalancing, strict order, resumption."""

from __future__ import annotations

import pytest

from tidings.errors import LeaseLost, NotFound
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.partitioning import partition_for

from .conftest import Env, drain, drain_all, join

P = 4
OG = GroupSpec(topic="t", name="g", mode="ordered", lease=10)


def keys_per_partition() -> dict[int, str]:
    """One key that lands on each partition."""
    out: dict[int, str] = {}
    i = 0
    while len(out) < P:
        out.setdefault(partition_for(f"k{i}", P), f"k{i}")
        i += 1
    return out


KEYS = keys_per_partition()


@pytest.fixture
def b(env: Env):
    env.broker.create_topic(TopicSpec(name="t", partitions=P))
    return env.broker


def publish_each(b, n: int = 5) -> None:
    """n messages on every partition; bodies say partition and sequence."""
    for i in range(n):
        b.publish("t", [Outgoing(b"%d:%d" % (p, i), key=KEYS[p]) for p in range(P)])


def parts(deliveries) -> set[int]:
    return {d.partition for d in deliveries}


def test_exclusive_assignment(b) -> None:
    members = [join(b, OG, prefetch=100) for _ in range(2)]
    publish_each(b)
    got = drain_all(b, members)
    p0, p1 = parts(got[0]), parts(got[1])
    assert len(p0) == 2 and len(p1) == 2 and not p0 & p1
    assert len(got[0]) + len(got[1]) == 5 * P


def test_more_members_than_partitions(b) -> None:
    members = [join(b, OG, prefetch=100) for _ in range(P + 2)]
    publish_each(b, 2)
    got = drain_all(b, members)
    owned = [parts(g) for g in got]
    assert sorted(len(o) for o in owned) == [0, 0, 1, 1, 1, 1]
    assert set().union(*owned) == set(range(P))


def test_handover_on_join_is_fenced_until_the_old_owner_settles(b) -> None:
    """A partition that moves is not handed to its new owner while the previous owner still
    holds a lease on it: the old owner's acks succeed, then the new owner goes on from there."""
    m1, in1 = join(b, OG, prefetch=100)
    publish_each(b, 3)
    first = in1.take()
    assert sorted(d.partition for d in first) == list(range(P))  # one per partition in flight
    m2, in2 = join(b, OG, prefetch=100)
    assert in2.items == []  # fenced: m1 may still be processing offset 0 of the moved ones
    for d in first:
        b.ack(m1, d.partition, d.offset)  # no LeaseLost: m1 kept its leases
    moved = parts(in2.items)
    assert len(moved) == 2
    assert all(d.offset == 1 and d.delivery_count == 1 for d in in2.items)
    got = drain_all(b, [(m1, in1), (m2, in2)])
    assert parts(got[0]) == set(range(P)) - moved
    assert parts(got[1]) == moved
    assert all(d.delivery_count == 1 for g in got for d in g)


def test_fenced_partition_moves_when_the_old_lease_expires(env: Env, b) -> None:
    m1, in1 = join(b, OG, prefetch=100)
    publish_each(b, 2)
    first = in1.take()
    _m2, in2 = join(b, OG, prefetch=100)
    assert in2.items == []
    env.clock.advance(OG.lease + 0.1)  # m1 is stuck: its leases run out
    b.tick()
    moved = parts(in2.items)
    assert len(moved) == 2
    assert sorted((d.offset, d.delivery_count) for d in in2.items) == [(0, 2), (0, 2)]
    for d in first:
        if d.partition in moved:
            with pytest.raises(LeaseLost):
                b.ack(m1, d.partition, d.offset)


def test_fenced_partition_moves_when_the_old_owner_leaves(b) -> None:
    m1, in1 = join(b, OG, prefetch=100)
    publish_each(b, 2)
    in1.take()
    _m2, in2 = join(b, OG, prefetch=100)
    assert in2.items == []
    b.leave(m1)
    assert parts(in2.items) == set(range(P))
    assert all(d.offset == 0 for d in in2.items)


def test_fence_survives_a_second_move(b) -> None:
    """A → B while A holds the partition, then B → C: C still waits for A."""
    m1, in1 = join(b, OG, prefetch=100)
    publish_each(b, 2)
    first = in1.take()
    m2, in2 = join(b, OG, prefetch=100)
    m3, in3 = join(b, OG, prefetch=100)
    b.leave(m2)
    assert in2.items == [] and in3.items == []
    for d in first:
        b.ack(m1, d.partition, d.offset)
    got = drain_all(b, [(m1, in1), (m3, in3)])
    assert len(parts(got[1])) == 2
    assert all(d.offset == 1 and d.delivery_count == 1 for d in got[1])


def test_rebalance_on_leave(b) -> None:
    m1, in1 = join(b, OG, prefetch=100)
    m2, in2 = join(b, OG, prefetch=100)
    publish_each(b, 3)
    held = in2.take()
    assert len(parts(held)) == 2
    b.leave(m2)
    got = drain(b, m1, in1)
    assert parts(got) == set(range(P))
    for p in parts(held):  # m2 never acked: its partitions start over at offset 0
        assert [d.offset for d in got if d.partition == p] == [0, 1, 2]


def test_session_timeout_rebalances(env: Env, b) -> None:
    m1, in1 = join(b, OG, prefetch=100, session_timeout=5)
    m2, in2 = join(b, OG, prefetch=100, session_timeout=5)
    publish_each(b, 2)
    held2 = in2.take()
    env.clock.advance(3)
    b.heartbeat(m1)
    b.tick()
    env.clock.advance(2.5)  # m2 silent for 5.5 s, m1 for 2.5 s
    b.tick()
    with pytest.raises(NotFound):
        b.heartbeat(m2)
    with pytest.raises(NotFound):
        b.ack(m2, held2[0].partition, held2[0].offset)
    got = drain(b, m1, in1)
    assert parts(got) == set(range(P))
    assert b.group_info("t", "g").members == 1
    env.clock.advance(4)
    b.heartbeat(m1)
    env.clock.advance(4)
    b.tick()
    b.heartbeat(m1)  # still alive: heartbeats keep it
    env.clock.advance(5)
    b.tick()
    with pytest.raises(NotFound):
        b.heartbeat(m1)


def test_strict_order_window_one(env: Env, b) -> None:
    m, inbox = join(b, GroupSpec(topic="t", name="g", mode="ordered"), prefetch=100)
    b.publish("t", [Outgoing(b"%d" % i, key=KEYS[0]) for i in range(10)])
    [d] = inbox.take()
    assert d.offset == 0
    b.nack(m, d.partition, d.offset)  # retried before anything after it
    [d] = inbox.take()
    assert (d.offset, d.delivery_count) == (0, 2)
    env.clock.advance(30)  # lease expiry: the same offset again
    b.tick()
    [d] = inbox.take()
    assert (d.offset, d.delivery_count) == (0, 3)
    seen = [d.offset]
    b.ack(m, d.partition, d.offset)
    while inbox.items:
        [d] = inbox.take()
        seen.append(d.offset)
        b.ack(m, d.partition, d.offset)
    assert seen == list(range(10))


def test_strict_order_window_many(env: Env, b) -> None:
    spec = GroupSpec(topic="t", name="g", mode="ordered", in_flight_per_partition=3)
    m, inbox = join(b, spec, prefetch=100)
    b.publish("t", [Outgoing(b"%d" % i, key=KEYS[1]) for i in range(10)])
    assert [d.offset for d in inbox.take()] == [0, 1, 2]
    p = partition_for(KEYS[1], P)
    b.ack(m, p, 1)
    assert [d.offset for d in inbox.items] == [3]
    for o in (0, 2):
        b.ack(m, p, o)
    got = drain(b, m, inbox)
    assert [d.offset for d in got] == list(range(3, 10))


def test_window_bounded_by_prefetch(b) -> None:
    spec = GroupSpec(topic="t", name="g", mode="ordered", in_flight_per_partition=5)
    m, inbox = join(b, spec, prefetch=3)
    publish_each(b, 5)
    assert len(inbox.items) == 3
    by_part: dict[int, list[int]] = {}
    for d in drain(b, m, inbox):
        by_part.setdefault(d.partition, []).append(d.offset)
    assert all(v == list(range(5)) for v in by_part.values()) and len(by_part) == P


@pytest.mark.parametrize("other_present", [False, True])
def test_failed_member_resumes_from_last_ack(env: Env, b, other_present: bool) -> None:
    p = partition_for(KEYS[0], P)
    m1, in1 = join(b, OG, prefetch=100, session_timeout=5)
    if other_present:
        m2, in2 = join(b, OG, prefetch=100)
    b.publish("t", [Outgoing(b"%d" % i, key=KEYS[0]) for i in range(10)])
    for _ in range(4):  # acks 0..3; 4 is in flight when m1 dies
        [d] = in1.take()
        assert d.partition == p
        b.ack(m1, d.partition, d.offset)
    assert [d.offset for d in in1.items] == [4]
    env.clock.advance(6)
    b.tick()
    if not other_present:
        assert b.group_info("t", "g").members == 0
        m2, in2 = join(b, OG, prefetch=100)
    got = drain(b, m2, in2)
    assert [d.offset for d in got if d.partition == p] == list(range(4, 10))
    assert next(d.delivery_count for d in got if d.partition == p) == 2


def test_resume_after_reopen(env: Env, b) -> None:
    m1, in1 = join(b, OG, prefetch=100)
    publish_each(b, 6)
    acked: dict[int, int] = {}
    for _ in range(3):
        for d in in1.take():
            b.ack(m1, d.partition, d.offset)
            acked[d.partition] = d.offset
    b = env.reopen()
    m, inbox = join(b, OG, prefetch=100)
    got = drain(b, m, inbox)
    for p in range(P):
        assert [d.offset for d in got if d.partition == p] == list(range(acked[p] + 1, 6))
