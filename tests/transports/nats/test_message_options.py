"""TTL, delay, dedup and retention on a real nats-server."""

from __future__ import annotations

import asyncio
import time

import pytest

from tidings import headers as H
from tidings.errors import MessageTooLarge, TopicFull
from tidings.model import GroupSpec, Outgoing, TopicSpec


async def test_expired_messages_are_never_delivered(transport, name):
    topic = name("ttl")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"short", ttl=0.3), Outgoing(b"long", ttl=60)])
    await asyncio.sleep(0.5)
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    m = await sub.next(timeout=5)
    assert m.body == b"long"
    await m.ack()
    assert await sub.next(timeout=0.5) is None
    assert (await transport.group_info(topic, "g")).lag == 0


async def test_expired_messages_can_be_dead_lettered(transport, name):
    topic = name("ttl-dlq")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"stale", ttl=0.2)])
    await asyncio.sleep(0.4)
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g", dead_letter_expired=True))
    assert await sub.next(timeout=1) is None
    dlq = await transport.subscribe(GroupSpec(topic=H.dead_letter_topic(topic, "g"), name="r"))
    dead = await dlq.next(timeout=5)
    assert dead.body == b"stale" and dead.headers[H.DLQ_REASON] == "expired"


async def test_delayed_messages_wait_and_count_one_delivery(transport, name):
    topic = name("delay")
    await transport.create_topic(TopicSpec(name=topic))
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    t0 = time.time()
    await transport.publish(topic, [Outgoing(b"later", delay=1.0), Outgoing(b"now")])
    m = await sub.next(timeout=5)
    assert m.body == b"now"
    await m.ack()
    m = await sub.next(timeout=5)
    assert m.body == b"later" and time.time() - t0 >= 0.95
    assert m.delivery_count == 1  # the early (held back) delivery does not count
    await m.nack()
    m = await sub.next(timeout=5)
    assert m.body == b"later" and m.delivery_count == 2
    await m.ack()


async def test_duplicate_publishes_are_detected(transport, name):
    topic = name("dedup")
    await transport.create_topic(TopicSpec(name=topic, dedup_window=30))
    [first] = await transport.publish(topic, [Outgoing(b"a", msg_id="order-1")])
    [again, other] = await transport.publish(
        topic, [Outgoing(b"a", msg_id="order-1"), Outgoing(b"b", msg_id="order-2")]
    )
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert (again.offset, again.id, again.partition) == (first.offset, first.id, first.partition)
    assert (await transport.topic_info(topic)).messages == 2
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    m = await sub.next(timeout=5)
    assert m.msg_id == "order-1"


async def test_duplicate_of_a_keyless_message_reports_the_original_partition(transport, name):
    topic = name("dedup-rr")
    await transport.create_topic(TopicSpec(name=topic, partitions=3))
    [first] = await transport.publish(topic, [Outgoing(b"a", msg_id="once")])
    for _ in range(3):  # round-robin moves on; the receipt still names the original
        [again] = await transport.publish(topic, [Outgoing(b"a", msg_id="once")])
        assert again.duplicate and (again.partition, again.offset) == (first.partition, 0)


async def test_dedup_off_keeps_every_message(transport, name):
    topic = name("nodedup")
    await transport.create_topic(TopicSpec(name=topic, dedup_window=0))
    await transport.publish(topic, [Outgoing(b"a", msg_id="x"), Outgoing(b"a", msg_id="x")])
    assert (await transport.topic_info(topic)).messages == 2
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    assert (await sub.next(timeout=5)).msg_id == "x"


async def test_work_queue_retention(transport, name):
    topic = name("wq")
    await transport.create_topic(TopicSpec(name=topic, retention="work-queue"))
    await transport.publish(topic, [Outgoing(b"early")])  # before any group: kept
    a = await transport.subscribe(GroupSpec(topic=topic, name="a"))
    b = await transport.subscribe(GroupSpec(topic=topic, name="b", start="earliest"))
    await transport.publish(topic, [Outgoing(b"second")])
    for m in [await a.next(timeout=5), await a.next(timeout=5)]:
        await m.ack()
    assert (await transport.topic_info(topic)).messages >= 1  # b has not acked yet
    for m in [await b.next(timeout=5), await b.next(timeout=5)]:
        await m.ack()
    await asyncio.sleep(0.2)
    assert (await transport.topic_info(topic)).messages == 0  # every group acked


async def test_limits(transport, name):
    topic = name("limits")
    await transport.create_topic(TopicSpec(name=topic, max_messages=3))
    await transport.publish(topic, [Outgoing(str(i).encode()) for i in range(5)])
    info = await transport.topic_info(topic)
    assert info.messages == 3 and info.partitions[0].first_offset == 2  # oldest dropped
    full = name("full")
    await transport.create_topic(TopicSpec(name=full, max_messages=2, overflow="reject"))
    await transport.publish(full, [Outgoing(b"1"), Outgoing(b"2")])
    with pytest.raises(TopicFull):
        await transport.publish(full, [Outgoing(b"3")])
    small = name("small")
    await transport.create_topic(TopicSpec(name=small, max_message_size=10))
    with pytest.raises(MessageTooLarge):
        await transport.publish(small, [Outgoing(b"x" * 11)])
