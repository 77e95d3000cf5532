"""nats:// basics on a real server: topics, publish/consume, partitions, groups, stats."""

from __future__ import annotations

import pytest

from tidings.errors import AlreadyExists, BadRequest, LeaseLost, NotFound, Unsupported
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.partitioning import partition_for


async def test_topic_lifecycle(transport, name):
    spec = TopicSpec(name=name("orders.eu"), partitions=3, max_age=3600, dedup_window=60)
    created = await transport.create_topic(spec)
    assert created == spec
    assert await transport.create_topic(TopicSpec(name=spec.name)) == spec  # exist_ok
    with pytest.raises(AlreadyExists):
        await transport.create_topic(spec, exist_ok=False)
    assert spec.name in [t.name for t in await transport.list_topics()]
    await transport.delete_topic(spec.name)
    with pytest.raises(NotFound):
        await transport.topic_info(spec.name)
    with pytest.raises(NotFound):
        await transport.publish(spec.name, [Outgoing(b"x")])


async def test_replicas_need_a_cluster(transport, name):
    with pytest.raises(BadRequest, match="cluster"):
        await transport.create_topic(TopicSpec(name=name("r3"), replicas=3))


async def test_publish_and_consume(transport, name):
    topic = name("t")
    await transport.create_topic(TopicSpec(name=topic, partitions=4))
    out = [Outgoing(f"m{i}".encode(), key=f"k{i % 5}", headers={"h": str(i)}) for i in range(20)]
    receipts = await transport.publish(topic, out)
    assert [r.partition for r in receipts] == [partition_for(f"k{i % 5}", 4) for i in range(20)]
    assert [r.offset for r in receipts] == list(range(20))  # stream sequence - 1
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    got = {}
    for _ in range(20):
        m = await sub.next(timeout=5)
        got[m.body] = m
        assert m.delivery_count == 1
        await m.ack()
    assert sorted(got) == sorted(o.body for o in out)
    m = got[b"m7"]
    assert m.headers == {"h": "7"} and m.key == "k2" and m.partition == partition_for("k2", 4)
    assert m.id == receipts[7].id and m.offset == 7 and m.timestamp > 0
    assert await sub.next(timeout=0.2) is None
    info = await transport.group_info(topic, "g")
    assert (info.ready, info.in_flight, info.lag, info.members) == (0, 0, 0, 1)
    await sub.close()


async def test_keyless_round_robin_and_topic_info(transport, name):
    topic = name("rr")
    await transport.create_topic(TopicSpec(name=topic, partitions=3))
    receipts = await transport.publish(topic, [Outgoing(b"x") for _ in range(6)])
    assert sorted(r.partition for r in receipts) == [0, 0, 1, 1, 2, 2]
    info = await transport.topic_info(topic)
    assert info.messages == 6 and len(info.partitions) == 3
    assert sum(p.next_offset - p.first_offset > 0 for p in info.partitions) == 3
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    info = await transport.topic_info(topic)
    assert info.group("g").lag == 6
    await sub.close()


async def test_header_values_round_trip(transport, name):
    topic = name("h")
    await transport.create_topic(TopicSpec(name=topic))
    headers = {"multi": "line one\nline two", "pad": "  x ", "empty": "", "uni": "héllo ✓"}
    await transport.publish(topic, [Outgoing(b"", key=" spaced key ", headers=headers)])
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    m = await sub.next(timeout=5)
    assert m.headers == headers and m.key == " spaced key " and m.body == b""
    await m.ack()


async def test_pubsub_every_group_gets_every_message(transport, name):
    topic = name("fanout")
    await transport.create_topic(TopicSpec(name=topic))
    a = await transport.subscribe(GroupSpec(topic=topic, name="a"))
    b = await transport.subscribe(GroupSpec(topic=topic, name="b"))
    await transport.publish(topic, [Outgoing(b"1"), Outgoing(b"2")])
    for sub in (a, b):
        bodies = []
        for _ in range(2):
            m = await sub.next(timeout=5)
            bodies.append(m.body)
            await m.ack()
        assert bodies == [b"1", b"2"]


async def test_start_positions(transport, name):
    topic = name("start")
    await transport.create_topic(TopicSpec(name=topic))
    receipts = await transport.publish(topic, [Outgoing(str(i).encode()) for i in range(5)])
    latest = await transport.subscribe(GroupSpec(topic=topic, name="latest", start="latest"))
    at = await transport.subscribe(
        GroupSpec(topic=topic, name="offset", start="offset", start_value=receipts[3].offset)
    )
    assert (await at.next(timeout=5)).body == b"3"
    await transport.publish(topic, [Outgoing(b"new")])
    assert (await latest.next(timeout=5)).body == b"new"
    m = await at.next(timeout=5)
    assert m.body == b"4"
    await m.ack()
    await transport.reset_group(topic, "offset", "earliest")
    bodies = []
    while len(bodies) < 6:
        m = await at.next(timeout=10)
        bodies.append(m.body)
        await m.ack()
    assert bodies == [b"0", b"1", b"2", b"3", b"4", b"new"]


async def test_auto_ack_is_at_most_once(transport, name):
    topic = name("auto")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"once")])
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g", auto_ack=True, lease=0.5))
    m = await sub.next(timeout=5)
    assert m.body == b"once" and m.settled
    assert await sub.next(timeout=1.0) is None
    assert (await transport.group_info(topic, "g")).lag == 0


async def test_key_ordered_is_declared_unsupported(transport, name):
    topic = name("ko")
    await transport.create_topic(TopicSpec(name=topic))
    with pytest.raises(Unsupported, match="key_ordered"):
        await transport.subscribe(GroupSpec(topic=topic, name="g", key_ordered=True))


async def test_settling_twice_or_late_raises_lease_lost(transport, name):
    topic = name("late")
    await transport.create_topic(TopicSpec(name=topic))
    await transport.publish(topic, [Outgoing(b"x")])
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g", lease=0.5))
    m = await sub.next(timeout=5)
    await sub.ack(m)
    with pytest.raises(LeaseLost):
        await sub.ack(m)
    assert await sub.next(timeout=1.0) is None  # acked: never redelivered


async def test_group_delete_and_info_errors(transport, name):
    topic = name("del")
    await transport.create_topic(TopicSpec(name=topic))
    sub = await transport.subscribe(GroupSpec(topic=topic, name="g"))
    await sub.close()
    await transport.delete_group(topic, "g")
    with pytest.raises(NotFound):
        await transport.group_info(topic, "g")
    with pytest.raises(NotFound):
        await transport.subscribe(GroupSpec(topic=name("missing"), name="g"))
