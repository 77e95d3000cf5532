"""Many operations outstanding on one connection at once, answered in any order."""

from __future__ import annotations

import asyncio

from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.protocol import constants, decode_body, frame_bytes
from tidings.protocol import messages as m

from .rawclient import RawClient


async def test_thousands_of_mixed_ops_on_one_connection(transport, name):
    await transport.create_topic(TopicSpec(name=name, partitions=4))
    publishes = [
        transport.publish(name, [Outgoing(b"%d" % i, key=str(i % 7))]) for i in range(2000)
    ]
    infos = [transport.topic_info(name) for _ in range(50)]
    pings = [transport.ping() for _ in range(50)]
    results = await asyncio.gather(*publishes, *infos, *pings)
    receipts = [r[0] for r in results[:2000]]
    assert len({(r.partition, r.offset) for r in receipts}) == 2000
    assert (await transport.topic_info(name)).messages == 2000
    assert transport.conn is not None and not transport.conn._pending


async def test_replies_match_request_ids_out_of_order(broker, name):
    client = await RawClient.open(broker.url)
    try:
        client.send(constants.CREATE_TOPIC, 7, m.CreateTopic(TopicSpec(name=name), True))
        frame = await client.next_frame()
        assert frame.request_id == 7
        # a slow publish (waits for fsync) then an instant ping: the ping may overtake it
        client.send(constants.PUBLISH, 100, m.Publish(name, [m.WireOutgoing(b"x")]))
        client.send(constants.PING, 101, m.Ping(5))
        client.send(constants.TOPIC_INFO, 102, m.TopicName("missing-topic"))
        frames = [await client.next_frame() for _ in range(3)]
        by_id = {f.request_id: f for f in frames}
        assert set(by_id) == {100, 101, 102}
        assert by_id[100].type == constants.PUBLISH | constants.REPLY_BIT
        assert by_id[101].type == constants.PING | constants.REPLY_BIT
        assert by_id[102].type == constants.ERROR
    finally:
        client.close()


async def test_pipelined_publish_frames_are_coalesced_but_answered_one_by_one(broker, name):
    client = await RawClient.open(broker.url)
    try:
        client.send(constants.CREATE_TOPIC, 1, m.CreateTopic(TopicSpec(name=name), True))
        await client.next_frame()
        data = b"".join(
            frame_bytes(constants.PUBLISH, 10 + i, m.Publish(name, [m.WireOutgoing(b"%d" % i)]))
            for i in range(100)
        )
        dup = m.Publish(name, [m.WireOutgoing(b"x", msg_id="dup")])
        client.send_raw(data)
        client.send(constants.PUBLISH, 500, dup)
        client.send(constants.PUBLISH, 501, dup)
        frames = [await client.next_frame() for _ in range(102)]
        replies = {f.request_id: f for f in frames}
        assert all(f.type == constants.PUBLISH | constants.REPLY_BIT for f in frames)
        offsets = [decode_body(replies[10 + i]).receipts[0][1] for i in range(100)]
        assert offsets == list(range(100))  # in order: one append for the whole run
        assert decode_body(replies[501]).receipts[0][3]  # the second "dup" is a duplicate
    finally:
        client.close()


async def test_many_subscriptions_share_one_connection(transport, name):
    await transport.create_topic(TopicSpec(name=name))
    subs = await asyncio.gather(
        *(transport.subscribe(GroupSpec(topic=name, name=f"g{i}"), prefetch=5) for i in range(20))
    )
    await transport.publish(name, [Outgoing(b"fan-out")])
    got = await asyncio.gather(*(s.next(timeout=5) for s in subs))
    assert [g.body for g in got] == [b"fan-out"] * 20
    await asyncio.gather(*(g.ack() for g in got))
