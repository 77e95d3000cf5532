"""Stuck members (issue #12): a member whose leases expired and that settled nothing since is
reported in the group's stats; still stuck ``stuck_member_leases`` lease periods after its
first expiry, the broker closes it with ``MemberStuck`` and its messages (and, in an ordered
group, its partitions) go to the other members."""

from __future__ import annotations

import pytest

from tidings.errors import BadRequest, LeaseLost, MemberStuck, NotFound, TidingsError
from tidings.model import GroupSpec, TopicSpec
from tidings.partitioning import partition_for

from .conftest import Env, bodies, join, msgs

SPEC = GroupSpec(topic="t", name="g", lease=5, max_deliveries=10)


class Closed:
    """A member's ``closed`` callback that keeps the reason."""

    def __init__(self) -> None:
        self.errors: list[TidingsError] = []

    def __call__(self, error: TidingsError) -> None:
        self.errors.append(error)


def test_a_member_whose_leases_expire_is_reported_until_it_settles(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, SPEC, prefetch=3)
    b.publish("t", msgs("a", "b", "c", "d"))
    first = inbox.take()
    assert b.group_info("t", "g").stuck_members == []
    b.extend(member, first[0].partition, first[0].offset, 60)  # the one it works on
    mem_env.clock.advance(6)
    b.tick()
    [stuck] = b.group_info("t", "g").stuck_members
    assert (stuck.member_id, stuck.expiries, stuck.in_flight) == (member, 2, 1)
    b.ack(member, first[0].partition, first[0].offset)  # alive after all
    assert b.group_info("t", "g").stuck_members == []


def test_a_stuck_member_is_closed_after_its_lease_periods(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    closed = Closed()
    stuck = b.join(SPEC, prefetch=2, deliver=lambda d: None, closed=closed)
    b.publish("t", msgs(*[f"m{i}" for i in range(6)]))
    healthy, other = join(b, SPEC, prefetch=1)  # slow: one at a time, kept alive
    for _ in range(3):  # 15 s: three lease periods after the first expiry at 5 s
        for d in other.take():
            b.extend(healthy, d.partition, d.offset, 60)
        mem_env.clock.advance(5)
        b.tick()
        assert closed.errors == []
        assert b.group_info("t", "g").members == 2
    mem_env.clock.advance(5.1)
    b.tick()
    [error] = closed.errors
    assert isinstance(error, MemberStuck) and isinstance(error, LeaseLost)
    assert "t/g" in error.message and "subscribe again" in error.message
    info = b.group_info("t", "g")
    assert info.members == 1 and info.stuck_members == [] and info.dead_lettered == 0
    with pytest.raises(NotFound):
        b.heartbeat(stuck)


def test_a_settle_before_the_limit_keeps_the_member(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    closed = Closed()
    got: list = []
    member = b.join(SPEC, prefetch=2, deliver=got.extend, closed=closed)
    b.publish("t", msgs("a", "b", "c"))
    mem_env.clock.advance(6)
    b.tick()  # both leases expire: stuck since 6 s
    late = got[0]
    with pytest.raises(LeaseLost):
        b.ack(member, late.partition, late.offset)  # a late settle: alive
    assert b.group_info("t", "g").stuck_members == []
    mem_env.clock.advance(20)  # past the first stuck clock
    b.tick()
    assert member in {m.id for m in b._members.values()}
    assert not any(isinstance(e, MemberStuck) for e in closed.errors)


def test_zero_never_closes(env: Env) -> None:
    b = env.broker
    b.stuck_member_leases = 0
    b.create_topic(TopicSpec(name="t"))
    closed = Closed()
    member = b.join(SPEC, prefetch=2, deliver=lambda d: None, closed=closed)
    b.publish("t", msgs("a", "b"))
    for _ in range(10):
        env.clock.advance(6)
        b.tick()
    assert closed.errors == []
    [stuck] = b.group_info("t", "g").stuck_members
    assert stuck.member_id == member


def test_the_limit_must_be_a_count() -> None:
    from tidings.broker import Broker
    from tidings.storage import MemoryStore

    with pytest.raises(BadRequest, match="stuck_member_leases"):
        Broker(MemoryStore(), stuck_member_leases=-1)


def test_a_stuck_owner_of_an_ordered_group_gives_up_its_partitions(mem_env: Env) -> None:
    """Its partitions' messages can only go to it, and its credit is spent on expired
    leases: before, its partitions stalled for as long as its connection lived."""
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t", partitions=2))
    spec = GroupSpec(topic="t", name="g", mode="ordered", lease=5)
    closed = Closed()
    b.join(spec, prefetch=1, deliver=lambda d: None, closed=closed)  # takes one, then stalls
    healthy, inbox = join(b, spec, prefetch=10)
    keys = {partition_for(f"k{i}", 2): f"k{i}" for i in range(20)}
    b.publish("t", [m for p in (0, 1) for m in msgs("x", "y", key=keys[p])])
    got = []
    for _ in range(5):
        while inbox.items:
            for d in inbox.take():
                got.append(d)
                b.ack(healthy, d.partition, d.offset)
        mem_env.clock.advance(5.1)
        b.tick()
    assert len(closed.errors) == 1
    assert sorted(bodies(got)) == [b"x", b"x", b"y", b"y"]
    assert sorted({d.partition for d in got}) == [0, 1]
