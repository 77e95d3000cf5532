"""A consumer that stops reading must not make the broker buffer without bound."""

from __future__ import annotations

import asyncio

from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.protocol import constants
from tidings.protocol import messages as m

from .rawclient import RawClient

SIZE = 64 * 1024
COUNT = 640  # 40 MiB in all
HIGH_WATER = 1 << 20  # the broker's default write high-water mark


async def test_a_reader_that_stops_reading_is_paused(transport, connect, broker, name):
    await transport.create_topic(TopicSpec(name=name))
    body = b"z" * SIZE
    for _ in range(COUNT // 64):
        await transport.publish(name, [Outgoing(body) for _ in range(64)])
    slow = await RawClient.open(broker.url, limit=SIZE)  # buffers ~128 KiB, then stops reading
    try:
        spec = GroupSpec(topic=name, name="slow", auto_ack=True)
        slow.send(constants.SUBSCRIBE, 2, m.Subscribe(spec, 50))
        for _ in range(200):  # a misbehaving client: credit it never earned
            slow.send(constants.CREDIT, constants.NO_REPLY, m.Credit(1, 1000))
        await slow.writer.drain()
        await asyncio.sleep(1.5)
        stats = await transport.server_stats()
        assert stats.paused_connections >= 1
        # the broker holds at most its high-water mark plus one dispatch of 50 messages
        assert stats.max_write_buffer_bytes < HIGH_WATER + 50 * SIZE + (1 << 20)
        info = await transport.group_info(name, "slow")
        assert info.lag > COUNT // 3, "the broker kept pulling messages for a stalled reader"
        # everyone else is served as usual meanwhile
        other = await connect()
        assert await other.ping() < 1
        fast = await other.subscribe(GroupSpec(topic=name, name="fast"), prefetch=10)
        msg = await fast.next(timeout=5)
        assert len(msg.body) == SIZE
        await msg.ack()
    finally:
        slow.close()


async def test_shared_members_are_bounded_by_prefetch(transport, broker, name):
    await transport.create_topic(TopicSpec(name=name))
    await transport.publish(name, [Outgoing(b"y" * 1024) for _ in range(500)])
    slow = await RawClient.open(broker.url)
    try:
        slow.send(constants.SUBSCRIBE, 2, m.Subscribe(GroupSpec(topic=name, name="g"), 20))
        await asyncio.sleep(0.5)
        info = await transport.group_info(name, "g")
        assert info.in_flight == 20 and info.ready == 480
    finally:
        slow.close()
    for _ in range(50):  # the connection closed: its leases return at once
        if (await transport.group_info(name, "g")).in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert (await transport.group_info(name, "g")).ready == 500
