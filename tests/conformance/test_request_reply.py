"""Conformance: request/reply (and its timeout) and stats on every transport."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import tidings
from tidings.errors import RequestTimeout

from .scenarios import eventually


async def test_request_reply(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "responders")

    async def respond() -> None:
        async for msg in sub:
            await client.reply(msg, b"quote for " + msg.body)
            await msg.ack()

    responder = asyncio.create_task(respond())
    try:
        reply = await client.request(topic, b"widget", timeout=10)
        assert reply.body == b"quote for widget"
        replies = await asyncio.gather(
            *(client.request(topic, b"n%d" % i, timeout=10) for i in range(5))
        )
        assert sorted(r.body for r in replies) == sorted(b"quote for n%d" % i for i in range(5))
    finally:
        responder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await responder
        await sub.close()


async def test_request_times_out(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    with pytest.raises(RequestTimeout):
        await client.request(topic, b"anyone?", timeout=0.5)


async def test_stats(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "g", prefetch=2)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(6)])

    async def settled() -> tidings.GroupInfo | None:
        info = (await client.topic_info(topic)).group("g")
        return info if info.in_flight == 2 and info.ready == 4 else None

    group = await eventually(settled)
    assert group, "expected 2 in flight and 4 ready"
    assert group.lag == 6
    info = await client.topic_info(topic)
    assert info.messages == 6
    batch = await sub.next_batch(2, timeout=5)
    for msg in batch:
        await msg.ack()

    async def drained_two() -> tidings.GroupInfo | None:
        g = (await client.topic_info(topic)).group("g")
        return g if g.lag == 4 else None

    assert await eventually(drained_two), "lag should drop to 4 after two acks"
    await sub.close()
