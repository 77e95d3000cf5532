"""A member's prefetch as a byte budget (issue #23): ``prefetch_bytes`` bounds the bodies a
member holds un-settled, as ``prefetch`` bounds their number. The broker stops dispatching to
it once they reach the budget; the message that crosses it is delivered, so a message larger
than the whole budget still gets through (alone)."""

from __future__ import annotations

import pytest

from tidings.errors import BadRequest
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join

SPEC = GroupSpec(topic="t", name="g", lease=30)


def body(i: int, size: int = 300) -> bytes:
    return (b"%d:" % i).ljust(size, b".")


def test_a_member_holds_bodies_up_to_its_byte_budget(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, SPEC, prefetch=100, prefetch_bytes=1000)
    b.publish("t", [Outgoing(body(i)) for i in range(10)])
    first = inbox.take()
    assert len(first) == 4  # 0, 300, 600, 900 bytes held before each: the 4th crosses 1000
    b.ack(member, first[0].partition, first[0].offset)  # 900 held: room again
    [nxt] = inbox.take()
    assert nxt.body == body(4)
    b.nack(member, first[1].partition, first[1].offset)  # a nack frees its bytes too
    assert [d.body for d in inbox.take()] == [body(1)]
    assert b.group_info("t", "g").in_flight == 4


def test_a_message_larger_than_the_budget_still_goes_through_alone(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, SPEC, prefetch=100, prefetch_bytes=1000)
    b.publish("t", [Outgoing(body(0, 5000)), Outgoing(body(1)), Outgoing(body(2))])
    [big] = inbox.take()
    assert len(big.body) == 5000
    b.ack(member, big.partition, big.offset)
    assert len(inbox.take()) == 2


def test_the_count_still_applies(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    _member, inbox = join(b, SPEC, prefetch=2, prefetch_bytes=1_000_000)
    b.publish("t", [Outgoing(body(i)) for i in range(10)])
    assert len(inbox.take()) == 2


def test_ordered_groups_honour_it(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", mode="ordered", in_flight_per_partition=50)
    member, inbox = join(b, spec, prefetch=100, prefetch_bytes=700)
    b.publish("t", [Outgoing(body(i), key="k") for i in range(10)])
    got = inbox.take()
    assert [d.body for d in got] == [body(0), body(1), body(2)]
    b.ack(member, got[0].partition, got[0].offset)
    assert [d.body for d in inbox.take()] == [body(3)]


def test_a_lost_lease_and_a_leave_free_the_bytes(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    member, inbox = join(b, SPEC, prefetch=100, prefetch_bytes=1000)
    b.publish("t", [Outgoing(body(i)) for i in range(10)])
    assert len(inbox.take()) == 4
    m = b._members[member]
    assert m.inflight_bytes == 1200
    env.clock.advance(31)
    b.tick()  # the four expire (bytes back) and, the only member, it gets them again
    assert len(inbox.take()) == 4 and m.inflight_bytes == 1200
    b.leave(member)
    assert m.inflight_bytes == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "10"])
def test_a_bad_budget_is_refused(env: Env, bad) -> None:
    env.broker.create_topic(TopicSpec(name="t"))
    with pytest.raises(BadRequest, match="prefetch_bytes"):
        join(env.broker, SPEC, prefetch=10, prefetch_bytes=bad)
