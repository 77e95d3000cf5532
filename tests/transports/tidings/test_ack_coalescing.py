"""tidings:// acks travel in batched frames: many acks of one loop turn (or a full batch) in
one ACK frame, and acks still in the client's buffer when the connection dies are not lost
work: their messages are redelivered (at-least-once), never dropped."""

from __future__ import annotations

import asyncio

import tidings
from tidings.transports.tidings.transport import NativeTransport


async def _fill(client: tidings.AsyncClient, topic: str, n: int) -> None:
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(n)])


async def _frames_in(client: tidings.AsyncClient) -> int:
    transport = client.transport
    assert isinstance(transport, NativeTransport)
    return (await transport.server_stats()).frames_in


async def test_acks_of_one_turn_share_a_frame(broker) -> None:
    async with tidings.connect(broker.url) as client:
        topic = "coalesce.turn"
        await _fill(client, topic, 20)
        # prefetch 100: a frame goes out early only at 50 acks (half the prefetch)
        sub = await client.subscribe(topic, "g", prefetch=100, confirm_acks=True)
        got: list[tidings.Message] = []
        while len(got) < 20:
            got.extend(await sub.next_batch(20, timeout=10))
        before = await _frames_in(client)
        await asyncio.gather(*(m.ack() for m in got))  # 20 confirmed acks started together
        after = await _frames_in(client)
        # one ACK frame and the STATS request itself (frames of other clients: none here)
        assert after - before <= 2
        info = await client.group_info(topic, "g")
        assert info.in_flight == 0 and info.lag == 0
        await sub.close()


async def test_acks_buffered_when_the_connection_dies_are_redelivered(broker) -> None:
    topic = "coalesce.crash"
    async with tidings.connect(broker.url) as admin:
        await _fill(admin, topic, 10)
        dying = tidings.connect(broker.url, reconnect=False)
        await dying.connect()
        sub = await dying.subscribe(topic, "g", prefetch=100)  # no early frame below 50
        got: list[tidings.Message] = []
        while len(got) < 10:
            got.extend(await sub.next_batch(10, timeout=10))
        transport = dying.transport
        assert isinstance(transport, NativeTransport) and transport.conn is not None
        for message in got:
            await message.ack()  # unconfirmed: queued for this loop turn's frame
        transport.conn.abort()  # the process "crashes" before the frame is written
        survivor = await admin.subscribe(topic, "g", prefetch=10)
        again: list[tidings.Message] = []
        while len(again) < 10:
            batch = await survivor.next_batch(10, timeout=15)
            assert batch, f"only {len(again)} of 10 came back"
            again.extend(batch)
        assert sorted(m.body for m in again) == sorted(m.body for m in got)
        assert all(m.delivery_count == 2 for m in again)
        await survivor.ack_many(again)
        await survivor.close()
        await dying.close()
