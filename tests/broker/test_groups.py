"""Issue point 4: groups — start positions; pub/sub across groups, competition within one."""

from __future__ import annotations

import pytest

from tidings.errors import AlreadyExists, BadRequest, NotFound
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, bodies, drain, drain_all, join


@pytest.fixture
def ten(env: Env) -> Env:
    env.broker.create_topic(TopicSpec(name="t"))
    for i in range(10):
        env.broker.publish("t", [Outgoing(b"%d" % i)])
        env.clock.advance(1)
    return env


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_start_earliest(ten: Env, mode: str) -> None:
    m, inbox = join(ten.broker, GroupSpec(topic="t", name="g", mode=mode, start="earliest"))
    assert [d.offset for d in drain(ten.broker, m, inbox)] == list(range(10))


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_start_latest(ten: Env, mode: str) -> None:
    b = ten.broker
    _, inbox = join(b, GroupSpec(topic="t", name="g", mode=mode, start="latest"))
    assert inbox.items == []
    b.publish("t", [Outgoing(b"new")])
    assert bodies(inbox.items) == [b"new"]


@pytest.mark.parametrize(("value", "first"), [(4, 4), (0, 0), (10, 10), (99, 10)])
def test_start_offset(ten: Env, value: int, first: int) -> None:
    _, inbox = join(ten.broker, GroupSpec(topic="t", name="g", start="offset", start_value=value))
    assert [d.offset for d in inbox.items] == list(range(first, 10))


def test_start_timestamp(ten: Env) -> None:
    t0 = ten.clock.now() - 10  # the first message's publish time
    _, inbox = join(ten.broker, GroupSpec(topic="t", name="g", start="time", start_value=t0 + 6.5))
    assert [d.offset for d in inbox.items] == [7, 8, 9]
    _, inbox = join(ten.broker, GroupSpec(topic="t", name="g2", start="time", start_value=t0 + 6))
    assert [d.offset for d in inbox.items] == [6, 7, 8, 9]


def test_start_position_survives_reopen(ten: Env) -> None:
    ten.broker.create_group(GroupSpec(topic="t", name="g", start="offset", start_value=8))
    b = ten.reopen()
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert [d.offset for d in inbox.items] == [8, 9]


def test_start_needs_value(mem_env: Env) -> None:
    mem_env.broker.create_topic(TopicSpec(name="t"))
    with pytest.raises(BadRequest, match="start_value"):
        mem_env.broker.create_group(GroupSpec(topic="t", name="g", start="offset"))


def test_every_group_receives_every_message(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=3))
    inboxes = [join(b, GroupSpec(topic="t", name=f"g{i}"), prefetch=100)[1] for i in range(3)]
    receipts = b.publish("t", [Outgoing(b"%d" % i) for i in range(30)])
    want = sorted((r.partition, r.offset) for r in receipts)
    for inbox in inboxes:
        assert sorted((d.partition, d.offset) for d in inbox.items) == want


@pytest.mark.parametrize("mode", ["shared", "ordered"])
def test_members_of_one_group_compete(env: Env, mode: str) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", partitions=4))
    spec = GroupSpec(topic="t", name="g", mode=mode)
    members = [join(b, spec, prefetch=100) for _ in range(2)]
    receipts = b.publish("t", [Outgoing(b"%d" % i) for i in range(40)])
    per_member = drain_all(b, members)
    got = [(d.partition, d.offset) for ds in per_member for d in ds]
    assert sorted(got) == sorted((r.partition, r.offset) for r in receipts)  # each once
    assert all(len(ds) > 0 for ds in per_member)


def test_group_catalogue(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    spec = b.create_group(GroupSpec(topic="t", name="g"))
    assert b.create_group(GroupSpec(topic="t", name="g", lease=5)).lease == 5  # tunables follow
    with pytest.raises(AlreadyExists):
        b.create_group(spec, exist_ok=False)
    with pytest.raises(BadRequest, match="mode"):
        b.create_group(GroupSpec(topic="t", name="g", mode="ordered"))
    with pytest.raises(NotFound):
        b.create_group(GroupSpec(topic="nope", name="g"))
    assert [g.name for g in b.list_groups("t")] == ["g"]
    b.delete_group("t", "g")
    assert b.list_groups("t") == []
    with pytest.raises(NotFound):
        b.group_info("t", "g")


def test_acks_survive_reopen(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    m, inbox = join(b, GroupSpec(topic="t", name="g"))
    b.publish("t", [Outgoing(b"%d" % i) for i in range(6)])
    for d in inbox.take():
        if d.offset in (0, 1, 3):
            b.ack(m, d.partition, d.offset)
    b = env.reopen()
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert [d.offset for d in inbox.items] == [2, 4, 5]


def test_reset_group(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    m, inbox = join(b, GroupSpec(topic="t", name="g"))
    b.publish("t", [Outgoing(b"%d" % i) for i in range(5)])
    for d in inbox.take():
        b.ack(m, d.partition, d.offset)
    b.reset_group("t", "g", "offset", 2)
    assert [d.offset for d in inbox.take()] == [2, 3, 4]
    b = env.reopen()
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert [d.offset for d in inbox.items] == [2, 3, 4]
