"""Edge cases found while proving the engine: dead-lettering large messages, and stale lease
timers of a deleted group that must not touch a new group of the same name."""

from __future__ import annotations

from tidings import headers as H
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join


def test_large_message_can_be_dead_lettered(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="big", max_message_size=4 * 1024 * 1024))
    m, inbox = join(b, GroupSpec(topic="big", name="g"))
    b.publish("big", [Outgoing(b"x" * (2 * 1024 * 1024))])
    [d] = inbox.take()
    b.reject(m, d.partition, d.offset, "too big to handle")
    _, dlq = join(b, GroupSpec(topic="big.g.dlq", name="x"))
    [dl] = dlq.items
    assert len(dl.body) == 2 * 1024 * 1024
    assert dl.headers[H.DLQ_REASON] == "rejected"
    assert b.group_info("big", "g").lag == 0


def test_deleted_group_timers_do_not_touch_a_new_group(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=10, max_deliveries=1)
    _, inbox = join(b, spec)
    b.publish("t", [Outgoing(b"a")])
    assert len(inbox.take()) == 1
    b.delete_group("t", "g")
    b.create_group(GroupSpec(topic="t", name="g"))
    env.clock.advance(10)  # the old lease runs out: it must not ack offset 0 for the new group
    b.tick()
    b.sync()
    assert b.group_info("t", "g").lag == 1
    assert b.group_info("t", "g").dead_lettered == 0
    b = env.reopen()
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert [d.offset for d in inbox.items] == [0]


def test_deleted_topic_timers_do_not_touch_a_new_topic(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=10, max_deliveries=1)
    _, inbox = join(b, spec)
    b.publish("t", [Outgoing(b"a")])
    assert len(inbox.take()) == 1
    b.delete_topic("t")
    b.create_topic(TopicSpec(name="t"))
    b.create_group(GroupSpec(topic="t", name="g"))
    b.publish("t", [Outgoing(b"b")])
    env.clock.advance(10)
    b.tick()
    b.sync()
    assert b.group_info("t", "g").lag == 1
    assert "t.g.dlq" not in [t.name for t in b.list_topics()]
    b = env.reopen()
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert [d.body for d in inbox.items] == [b"b"]


def test_session_timeout_of_shared_member_returns_its_leases(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = GroupSpec(topic="t", name="g", lease=60)
    _m1, in1 = join(b, spec, prefetch=5, session_timeout=5)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(3)])
    assert len(in1.take()) == 3
    m2, in2 = join(b, spec, prefetch=5, session_timeout=5)
    env.clock.advance(3)
    b.heartbeat(m2)
    env.clock.advance(2)
    b.tick()
    assert sorted(d.offset for d in in2.items) == [0, 1, 2]  # long before the 60 s lease
    assert b.group_info("t", "g").members == 1


def test_dead_letter_refused_keeps_the_message(env: Env) -> None:
    """A dead-letter topic that refuses the copy (here: full) must not lose the message or
    break the timer loop: it stays in the group and is tried again later."""
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    b.create_topic(TopicSpec(name="dead", max_messages=1, overflow="reject"))
    b.publish("dead", [Outgoing(b"occupant")])
    spec = GroupSpec(topic="t", name="g", lease=10, max_deliveries=1, dead_letter_topic="dead")
    m, inbox = join(b, spec)
    b.publish("t", [Outgoing(b"a")])
    assert len(inbox.take()) == 1
    env.clock.advance(10)
    b.tick()  # max deliveries reached, the dead-letter topic is full: no exception
    assert b.group_info("t", "g").lag == 1
    b.delete_topic("dead")
    b.create_topic(TopicSpec(name="dead"))
    env.clock.advance(10)
    b.tick()
    # retried: with max_deliveries reached it goes to the dead-letter topic this time
    [d] = inbox.take()
    b.nack(m, d.partition, d.offset)
    assert b.group_info("t", "g").lag == 0
    _, dlq = join(b, GroupSpec(topic="dead", name="x"))
    assert [x.body for x in dlq.items] == [b"a"]


def test_expired_in_ordered_group_with_refusing_dead_letter_topic(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    b.create_topic(TopicSpec(name="dead", max_messages=1, overflow="reject"))
    b.publish("dead", [Outgoing(b"occupant")])
    spec = GroupSpec(
        topic="t", name="g", mode="ordered", dead_letter_expired=True, dead_letter_topic="dead"
    )
    b.publish("t", [Outgoing(b"a", ttl=1), Outgoing(b"b")])
    env.clock.advance(2)
    _, inbox = join(b, spec)  # must not spin on the expired head
    assert inbox.items == []  # ordered: "b" waits behind the head it cannot dead-letter yet
    assert b.group_info("t", "g").lag == 2
