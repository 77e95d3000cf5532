"""A member that leaves names the deliveries its client never handed out (issue #12): those
return to the group without counting the delivery; the others it holds were processing
attempts that failed, dead-lettered after the last allowed one. A leave that names nothing (a
lost connection, a session timeout) returns everything as before."""

from __future__ import annotations

from tidings.model import GroupSpec, TopicSpec

from .conftest import Env, bodies, join, msgs


def test_unhanded_deliveries_return_uncounted(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=30, max_deliveries=2)
    b.publish("t", msgs("a", "b", "c"))
    for _ in range(3):  # more leaves than max_deliveries allows deliveries
        member, inbox = join(b, spec, prefetch=10)
        got = inbox.take()
        assert [d.delivery_count for d in got] == [1, 1, 1]
        b.leave(member, unhanded=[(d.partition, d.offset) for d in got])
    assert b.group_info("t", "g").dead_lettered == 0


def test_a_taken_delivery_left_unsettled_counts_and_dead_letters_at_the_limit(
    mem_env: Env,
) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=30, max_deliveries=2)
    b.publish("t", msgs("taken", "waiting"))
    for attempt in (1, 2):
        member, inbox = join(b, spec, prefetch=10)
        taken, waiting = inbox.take()
        assert (taken.body, taken.delivery_count) == (b"taken", attempt)
        assert waiting.delivery_count == 1  # never handed out: not counted
        b.leave(member, unhanded=[(waiting.partition, waiting.offset)])
    info = b.group_info("t", "g")
    assert info.dead_lettered == 1  # its second (last allowed) attempt ended with the leave
    _member, inbox = join(b, spec, prefetch=10)
    assert bodies(inbox.take()) == [b"waiting"]


def test_a_leave_that_names_nothing_returns_everything_as_before(mem_env: Env) -> None:
    b = mem_env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=30, max_deliveries=1)
    b.publish("t", msgs("a"))
    member, inbox = join(b, spec, prefetch=10)
    assert len(inbox.take()) == 1
    b.leave(member)  # a lost connection: the broker cannot tell what was processed
    _member, inbox = join(b, spec, prefetch=10)
    (again,) = inbox.take()
    assert again.delivery_count == 2
