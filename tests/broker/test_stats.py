"""Issue point 10: stats per topic and group."""

from __future__ import annotations

import pytest

from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, join


def test_group_stats(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=2))
    spec = GroupSpec(topic="t", name="g", lease=10, max_deliveries=1)
    b.create_group(spec)
    b.publish("t", [Outgoing(b"%d" % i) for i in range(10)])
    b.publish("t", [Outgoing(b"d", delay=100)])
    info = b.group_info("t", "g")
    assert (info.ready, info.in_flight, info.lag, info.members) == (11, 0, 11, 0)
    env.clock.advance(4)
    m, inbox = join(b, spec, prefetch=3)
    info = b.group_info("t", "g")
    assert info.in_flight == 3
    assert info.delayed == 1
    assert info.ready == 7
    assert info.lag == 11
    assert info.members == 1
    assert info.oldest_ready_age == pytest.approx(4)
    ds = inbox.take()
    b.ack(m, ds[0].partition, ds[0].offset)
    b.reject(m, ds[1].partition, ds[1].offset, "bad")
    info = b.group_info("t", "g")
    assert info.dead_lettered == 1
    assert info.lag == 9
    assert info.in_flight == 3
    assert info.ready == 5
    env.clock.advance(2)
    info = b.group_info("t", "g")
    assert info.deliver_rate > 0 and info.ack_rate > 0


def test_stats_after_drain(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    m, inbox = join(b, GroupSpec(topic="t", name="g"), prefetch=100)
    b.publish("t", [Outgoing(b"x") for _ in range(5)])
    for d in inbox.take():
        b.ack(m, d.partition, d.offset)
    info = b.group_info("t", "g")
    assert (info.ready, info.in_flight, info.delayed, info.lag) == (0, 0, 0, 0)
    assert info.oldest_ready_age is None


def test_ordered_group_stats(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=2))
    spec = GroupSpec(topic="t", name="g", mode="ordered")
    _m, _inbox = join(b, spec, prefetch=10)
    b.publish("t", [Outgoing(b"x", key="a") for _ in range(5)])
    info = b.group_info("t", "g")
    assert (info.in_flight, info.ready, info.lag) == (1, 4, 5)


def test_topic_stats(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=2))
    b.create_group(GroupSpec(topic="t", name="a"))
    b.create_group(GroupSpec(topic="t", name="b", start="latest"))
    for _ in range(5):
        b.publish("t", [Outgoing(b"x" * 10) for _ in range(4)])
        env.clock.advance(1)
    b.publish("t", [Outgoing(b"y")])
    info = b.topic_info("t")
    assert info.messages == 21
    assert info.bytes == sum(p.bytes for p in info.partitions) > 210
    assert sum(p.next_offset - p.first_offset for p in info.partitions) == 21
    assert info.publish_rate == pytest.approx(20 / 9)
    assert info.group("a").lag == 21
    assert info.group("b").lag == 21
    assert [g.name for g in info.groups] == ["a", "b"]


def test_oldest_ready_age_tracks_backlog(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    b.create_group(GroupSpec(topic="t", name="g"))
    b.publish("t", [Outgoing(b"old")])
    env.clock.advance(30)
    b.publish("t", [Outgoing(b"new")])
    env.clock.advance(5)
    assert b.group_info("t", "g").oldest_ready_age == pytest.approx(35)
