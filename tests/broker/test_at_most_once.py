"""Issue point 8: at-most-once — auto_ack groups; credit bounds deliveries."""

from __future__ import annotations

import pytest

from tidings.errors import LeaseLost, NotFound
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_auto_ack_never_redelivers(env: Env, mode: str) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=2))
    spec = GroupSpec(topic="t", name="g", mode=mode, auto_ack=True, lease=5)
    m, inbox = join(b, spec, prefetch=100)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(10)])
    got = inbox.take()
    assert len(got) == 10
    assert all(d.lease_until is None and d.delivery_count == 1 for d in got)
    with pytest.raises(LeaseLost):
        b.ack(m, got[0].partition, got[0].offset)  # nothing to settle
    info = b.group_info("t", "g")
    assert (info.lag, info.in_flight, info.ready) == (0, 0, 0)
    env.clock.advance(60)
    b.tick()
    b.leave(m)
    m, inbox = join(b, spec, prefetch=100)
    assert inbox.items == []
    b2 = env.reopen()
    _, inbox = join(b2, spec, prefetch=100)
    assert inbox.items == []


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_credit_bounds_deliveries(env: Env, mode: str) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", mode=mode, auto_ack=True)
    m, inbox = join(b, spec, prefetch=3)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(10)])
    assert [d.offset for d in inbox.take()] == [0, 1, 2]
    b.publish("t", [Outgoing(b"more")])
    assert inbox.items == []  # no credit left
    b.add_credit(m, 2)
    assert [d.offset for d in inbox.take()] == [3, 4]
    b.add_credit(m, 100)  # capped at prefetch
    assert [d.offset for d in inbox.take()] == [5, 6, 7]
    b.add_credit(m, 0)
    b.add_credit(m, -5)
    assert inbox.items == []
    assert b.group_info("t", "g").lag == 3
    with pytest.raises(NotFound):
        b.add_credit("nobody", 1)


def test_credit_shared_between_members(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", auto_ack=True)
    _m1, in1 = join(b, spec, prefetch=2)
    m2, in2 = join(b, spec, prefetch=2)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(10)])
    assert (len(in1), len(in2)) == (2, 2)
    b.add_credit(m2, 2)
    assert (len(in1), len(in2)) == (2, 4)
    got = sorted(d.offset for d in in1.items + in2.items)
    assert got == list(range(6))
