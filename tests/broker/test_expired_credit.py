"""Credit comes back on settlement, not on lease expiry (issue #12): a member whose leases run
out stops receiving until it settles something, and an expired message goes preferably to
another live member."""

from __future__ import annotations

import pytest

from tidings.errors import LeaseLost
from tidings.model import GroupSpec, TopicSpec

from .conftest import Env, bodies, join, msgs


def test_a_member_whose_leases_expire_stops_receiving(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=5, max_deliveries=3)
    _stuck, inbox = join(b, spec, prefetch=2)
    b.publish("t", msgs(*[f"m{i}" for i in range(6)]))
    assert bodies(inbox.take()) == [b"m0", b"m1"]
    for _ in range(5):  # before: re-fed m0, m1 until they dead-lettered
        mem_env.clock.advance(6)
        b.tick()
        assert inbox.take() == []
    assert b.group_info("t", "g").dead_lettered == 0
    _healthy, other = join(b, spec, prefetch=10)
    got = other.take()
    assert sorted(bodies(got)) == [f"m{i}".encode() for i in range(6)]
    assert {d.delivery_count for d in got if d.body in (b"m0", b"m1")} == {2}


def test_a_late_settle_gives_the_credit_back(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, GroupSpec(topic="t", name="g", lease=5), prefetch=1)
    b.publish("t", msgs("a", "b"))
    (first,) = inbox.take()
    mem_env.clock.advance(6)
    b.tick()
    assert inbox.take() == []
    with pytest.raises(LeaseLost):  # the lease is gone: refused, but the member is alive
        b.ack(member, first.partition, first.offset)
    again = inbox.take()
    assert bodies(again) == [b"a"] and again[0].delivery_count == 2


def test_an_expired_message_goes_to_another_live_member(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=5)
    _first, first_inbox = join(b, spec, prefetch=10)
    b.publish("t", msgs("x"))
    assert bodies(first_inbox.take()) == [b"x"]
    _second, second_inbox = join(b, spec, prefetch=10)
    mem_env.clock.advance(6)
    b.tick()  # the first member still has 9 free slots, yet the other one gets it
    assert first_inbox.take() == []
    assert bodies(second_inbox.take()) == [b"x"]
