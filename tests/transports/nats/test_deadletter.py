"""Dead-lettering on a real nats-server: reject, max deliveries (nack and expired lease)."""

from __future__ import annotations

from tidings import headers as H
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.base import SubscribeOptions


async def read_one(transport, topic, group="dlq-reader", timeout=10):
    sub = await transport.subscribe(GroupSpec(topic=topic, name=group))
    m = await sub.next(timeout=timeout)
    assert m is not None, f"nothing in {topic}"
    await m.ack()
    await sub.close()
    return m


async def test_reject_moves_to_the_dead_letter_topic(transport, name):
    topic = name("rej")
    await transport.create_topic(TopicSpec(name=topic, partitions=2))
    [receipt] = await transport.publish(
        topic, [Outgoing(b"poison", key="k", headers={"content-type": "text/plain"})]
    )
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    m = await sub.next(timeout=5)
    await m.reject()
    dead = await read_one(transport, H.dead_letter_topic(topic, "g"))
    assert dead.body == b"poison" and dead.key == "k"
    assert dead.headers["content-type"] == "text/plain"
    assert dead.headers[H.DLQ_REASON] == "rejected"
    assert dead.headers[H.DLQ_DELIVERIES] == "1"
    assert dead.headers[H.DLQ_TOPIC] == topic
    assert dead.headers[H.DLQ_GROUP] == "g"
    assert dead.headers[H.DLQ_PARTITION] == str(receipt.partition)
    assert dead.headers[H.DLQ_OFFSET] == str(receipt.offset)
    assert dead.headers[H.DLQ_ID] == receipt.id
    assert await sub.next(timeout=0.5) is None  # gone from the group
    assert (await transport.group_info(topic, "g")).dead_lettered == 1


async def test_max_deliveries_after_nacks_keeps_the_last_error(transport, name):
    topic = name("maxd")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"bad")])
    dlq = name("custom-dlq")
    sub = await transport.subscribe(
        GroupSpec(topic=topic, name="g", max_deliveries=3, dead_letter_topic=dlq)
    )
    for attempt in range(1, 4):
        m = await sub.next(timeout=5)
        assert m.delivery_count == attempt
        await m.nack(error=f"ValueError: attempt {attempt}\nTraceback line")
    assert await sub.next(timeout=0.5) is None
    dead = await read_one(transport, dlq)
    assert dead.headers[H.DLQ_REASON] == "max-deliveries"
    assert dead.headers[H.DLQ_DELIVERIES] == "3"
    assert dead.headers[H.DLQ_ERROR] == "ValueError: attempt 3\nTraceback line"


async def test_expired_lease_at_max_deliveries_reaches_the_dead_letter_topic(transport, name):
    topic = name("stuck")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"hangs")])
    sub = await transport.subscribe(
        GroupSpec(topic=topic, name="g", max_deliveries=2, lease=0.5),
        prefetch=1,
        options=SubscribeOptions(max_lease_extension=0),  # a hung client does not extend
    )
    m = await sub.next(timeout=5)
    await m.nack(error="first failure")
    m = await sub.next(timeout=5)
    assert m.delivery_count == 2
    # The handler hangs: the lease of the last allowed delivery simply expires.
    assert await sub.next(timeout=1.5) is None
    dead = await read_one(transport, H.dead_letter_topic(topic, "g"))
    assert dead.headers[H.DLQ_REASON] == "max-deliveries"
    assert dead.headers[H.DLQ_DELIVERIES] == "2"
    assert dead.headers[H.DLQ_ERROR] == "first failure"
    info = await transport.group_info(topic, "g")
    assert info.lag == 0


async def test_unlimited_deliveries(transport, name):
    topic = name("unl")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"x")])
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g", max_deliveries=0))
    for _ in range(25):
        m = await sub.next(timeout=5)
        await m.nack()
    m = await sub.next(timeout=5)
    assert m.delivery_count == 26
    await m.ack()
