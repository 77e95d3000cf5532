"""Issue point 1: topics — catalogue, name validation, partitions, retention, size limits."""

from __future__ import annotations

import pytest

from tidings.errors import (
    AlreadyExists,
    BadRequest,
    InvalidName,
    MessageTooLarge,
    NotFound,
    TopicConflict,
    TopicFull,
)
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import Env, bodies, join, msgs


def test_create_describe_list_delete(env: Env) -> None:
    b = env.broker
    spec = b.create_topic(TopicSpec(name="orders", partitions=3))
    assert spec.partitions == 3
    assert [t.name for t in b.list_topics()] == ["orders"]
    info = b.topic_info("orders")
    assert info.name == "orders" and info.spec == spec
    assert [p.partition for p in info.partitions] == [0, 1, 2]
    assert info.messages == 0
    with pytest.raises(AlreadyExists):
        b.create_topic(TopicSpec(name="orders"))
    assert b.create_topic(TopicSpec(name="orders", partitions=5), exist_ok=True) == spec
    b.delete_topic("orders")
    assert b.list_topics() == []
    with pytest.raises(NotFound, match="orders"):
        b.topic_info("orders")
    with pytest.raises(NotFound):
        b.delete_topic("orders")
    with pytest.raises(NotFound):
        b.publish("orders", msgs("x"))


def test_catalogue_survives_reopen(env: Env) -> None:
    env.broker.create_topic(TopicSpec(name="a", partitions=2, max_messages=10))
    env.broker.create_topic(TopicSpec(name="b"))
    env.broker.create_group(GroupSpec(topic="a", name="g", mode="ordered"))
    env.broker.delete_topic("b")
    b = env.reopen()
    assert [t.name for t in b.list_topics()] == ["a"]
    assert b.topic_info("a").spec.max_messages == 10
    assert [g.name for g in b.list_groups("a")] == ["g"]
    assert b.list_groups("a")[0].mode == "ordered"


@pytest.mark.parametrize("name", ["a", "Orders.v1", "a-b_c.d", "0", "x" * 200, "_x", "a-"])
def test_valid_names(env: Env, name: str) -> None:
    env.broker.create_topic(TopicSpec(name=name))
    assert name in [t.name for t in env.broker.list_topics()]
    env.broker.publish(name, msgs("x"))
    assert env.broker.topic_info(name).messages == 1


@pytest.mark.parametrize("name", ["", "a b", "a/b", "ä", "a:b", "x" * 201, "a*", "%a", None, 3])
def test_invalid_names(mem_env: Env, name) -> None:
    with pytest.raises(InvalidName) as err:
        mem_env.broker.create_topic(TopicSpec(name=name))
    assert "letters, digits" in str(err.value)
    assert repr(name) in str(err.value)
    with pytest.raises(InvalidName):
        mem_env.broker.create_group(GroupSpec(topic="ok", name=name))


@pytest.mark.parametrize(
    ("name", "why"),
    [("..", "non-empty parts"), (".lead", "non-empty parts"), ("trail.", "non-empty parts"),
     ("a..b", "non-empty parts"), ("-lead", "start with '-'"), ("--help", "start with '-'")],
)  # fmt: skip
def test_names_with_empty_parts_or_a_leading_dash_are_refused(mem_env: Env, name, why) -> None:
    with pytest.raises(InvalidName, match=why) as err:
        mem_env.broker.create_topic(TopicSpec(name=name))
    assert repr(name) in str(err.value)
    with pytest.raises(InvalidName, match=why):
        mem_env.broker.create_group(GroupSpec(topic="ok", name=name))
    assert mem_env.broker.list_topics() == []


@pytest.mark.parametrize("name", ["a.b-c_d", "_tidings.reply.x1", "orders.billing.dlq", "a-", "9"])
def test_ordinary_names_are_accepted(mem_env: Env, name) -> None:
    assert mem_env.broker.create_topic(TopicSpec(name=name)).name == name


@pytest.mark.parametrize("partitions", [0, -1, 1025, 1.5])
def test_partitions_must_be_positive(mem_env: Env, partitions) -> None:
    with pytest.raises(BadRequest, match="partitions"):
        mem_env.broker.create_topic(TopicSpec(name="t", partitions=partitions))
    assert mem_env.broker.list_topics() == []


@pytest.mark.parametrize(
    "kw",
    [
        {"max_age": 0},
        {"max_bytes": -1},
        {"max_messages": 0},
        {"dedup_window": -1},
        {"max_message_size": 0},
        {"retention": "forever"},
        {"overflow": "block"},
    ],
)
def test_bad_topic_settings(mem_env: Env, kw) -> None:
    with pytest.raises(BadRequest):
        mem_env.broker.create_topic(TopicSpec(name="t", **kw))


def test_max_messages_drops_oldest_first(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", max_messages=3))
    for i in range(10):
        b.publish("t", msgs(f"m{i}"))
    info = b.topic_info("t")
    assert info.messages == 3
    assert (info.partitions[0].first_offset, info.partitions[0].next_offset) == (7, 10)
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert bodies(inbox.items) == [b"m7", b"m8", b"m9"]


def test_dropped_messages_are_not_delivered_from_the_ready_window(env: Env) -> None:
    """A group whose backlog was already loaded must not receive what retention dropped."""
    b = env.broker
    b.create_topic(TopicSpec(name="t", max_messages=3))
    m, inbox = join(b, GroupSpec(topic="t", name="g"), prefetch=1)
    for i in range(10):
        b.publish("t", msgs(f"m{i}"))
    got = inbox.take()
    assert bodies(got) == [b"m0"]  # in flight before the drop
    b.ack(m, 0, 0)
    delivered = []
    while inbox.items:
        d = inbox.take()[0]
        delivered.append(d.body)
        b.ack(m, d.partition, d.offset)
    assert delivered == [b"m7", b"m8", b"m9"]


def test_max_bytes_drops_oldest_first(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", max_bytes=2000))
    for i in range(100):
        b.publish("t", [Outgoing(b"%03d" % i + b"x" * 97)])
    info = b.topic_info("t")
    assert info.bytes <= 2000 + 400  # whole records (and a segment header) may stay
    assert 0 < info.messages < 100
    first = info.partitions[0].first_offset
    assert info.partitions[0].next_offset == 100
    _, inbox = join(b, GroupSpec(topic="t", name="g"), prefetch=200)
    assert [d.offset for d in inbox.items] == list(range(first, 100))


def test_max_age_drops_old_messages(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", max_age=60))
    b.publish("t", msgs("old1", "old2"))
    env.clock.advance(30)
    b.publish("t", msgs("new"))
    env.clock.advance(31)
    b.tick()
    assert b.topic_info("t").messages == 1
    _, inbox = join(b, GroupSpec(topic="t", name="g"))
    assert bodies(inbox.items) == [b"new"]


def test_overflow_reject_max_messages(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", max_messages=3, overflow="reject"))
    b.publish("t", msgs("a", "b"))
    with pytest.raises(TopicFull, match="max_messages"):
        b.publish("t", msgs("c", "d"))  # all or nothing
    assert b.topic_info("t").messages == 2
    b.publish("t", msgs("c"))
    with pytest.raises(TopicFull):
        b.publish("t", msgs("d"))
    assert b.topic_info("t").messages == 3


def test_overflow_reject_max_bytes(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", max_bytes=1000, overflow="reject"))
    b.publish("t", [Outgoing(b"x" * 400)])
    with pytest.raises(TopicFull, match="max_bytes"):
        b.publish("t", [Outgoing(b"x" * 700)])
    assert b.topic_info("t").messages == 1


def test_work_queue_drops_once_every_group_acked(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="w", retention="work-queue"))
    m1, in1 = join(b, GroupSpec(topic="w", name="g1"))
    m2, in2 = join(b, GroupSpec(topic="w", name="g2"))
    b.publish("w", msgs("a", "b", "c"))
    for d in in1.take():
        b.ack(m1, d.partition, d.offset)
    env.clock.advance(2)
    b.tick()
    assert b.topic_info("w").messages == 3  # g2 has not acked yet
    got = in2.take()
    b.ack(m2, 0, got[0].offset)
    b.ack(m2, 0, got[2].offset)  # out of order: only the contiguous prefix can go
    env.clock.advance(2)
    b.tick()
    info = b.topic_info("w")
    assert info.partitions[0].first_offset == 1
    assert info.messages == 2
    b.ack(m2, 0, got[1].offset)
    env.clock.advance(2)
    b.tick()
    assert b.topic_info("w").messages == 0


def test_max_message_size(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t", max_message_size=10))
    b.publish("t", [Outgoing(b"x" * 10)])
    with pytest.raises(MessageTooLarge) as err:
        b.publish("t", [Outgoing(b"x" * 11)])
    text = str(err.value)
    assert "message of 11 bytes exceeds the max_message_size of topic 't' (10 bytes)" in text
    assert "''" not in text  # no broken quote ('t''s)
    assert b.topic_info("t").messages == 1


def test_delete_topic_drops_groups_and_members(env: Env) -> None:
    b = env.broker
    b.create_topic(TopicSpec(name="t"))
    m, _ = join(b, GroupSpec(topic="t", name="g"))
    b.publish("t", msgs("a"))
    b.delete_topic("t")
    with pytest.raises(NotFound):
        b.ack(m, 0, 0)
    b.create_topic(TopicSpec(name="t"))
    assert b.list_groups("t") == []
    assert b.topic_info("t").messages == 0


def test_redeclaring_with_other_given_settings_is_refused_by_the_broker(env: Env) -> None:
    """The broker itself checks the settings a declaration gave (for every client of the
    protocol, not only the Python client): before, exist_ok returned the existing topic."""
    b = env.broker
    spec = b.create_topic(TopicSpec(name="big", max_age=3600.0))
    with pytest.raises(TopicConflict, match=r"partitions=1 \(asked 8\); nothing was changed"):
        b.create_topic(TopicSpec(name="big", partitions=8), exist_ok=True, given=["partitions"])
    same = TopicSpec(name="big", partitions=1, max_age=3600.0)
    assert b.create_topic(same, exist_ok=True, given=["partitions", "max_age"]) == spec
    # settings not given are not compared: a bare declaration accepts the topic as it is
    assert b.create_topic(TopicSpec(name="big", partitions=8), exist_ok=True, given=[]) == spec
    assert b.create_topic(TopicSpec(name="big", partitions=8), exist_ok=True) == spec
    with pytest.raises(BadRequest, match="unknown topic settings shards"):
        b.create_topic(TopicSpec(name="big"), exist_ok=True, given=["shards"])
    assert b.topic_info("big").spec.partitions == 1


def test_topic_watchers_see_each_new_topic_once_and_a_failing_one_is_contained(env: Env) -> None:
    """``Broker.topic_watchers`` (the MQTT front-end's wildcards join new topics): called
    with each topic created, not again for an existing one; a watcher's error is logged and
    the topic exists all the same."""
    b = env.broker
    seen: list[str] = []

    def broken(spec: TopicSpec) -> None:
        raise RuntimeError("a bug in a watcher")

    b.topic_watchers += [broken, lambda spec: seen.append(spec.name)]
    b.create_topic(TopicSpec(name="a"))
    b.create_topic(TopicSpec(name="a"), exist_ok=True)
    b.create_topic(TopicSpec(name="b"))
    assert seen == ["a", "b"]
    assert {t.name for t in b.list_topics()} == {"a", "b"}


def test_trim_topic_drops_what_is_before_an_offset(env: Env) -> None:
    """``Broker.trim_topic`` (compaction of the MQTT front-end's keyed topics): the records
    before the offset go; a group behind them skips forward."""
    b = env.broker
    b.create_topic(TopicSpec(name="log"))
    spec = GroupSpec(topic="log", name="g")
    b.create_group(spec)
    b.publish("log", msgs("0", "1", "2", "3"))
    b.sync()
    b.trim_topic("log", 3)
    assert env.store.bounds("log", 0) == (3, 4)
    _, inbox = join(b, spec)
    assert bodies(inbox.take()) == [b"3"]
