"""``prefetch_bytes`` through the client API and the service framework (issue #23): a
subscription bounds its un-settled messages by the bytes of their bodies as well as by count.
The built-in broker (``memory://``, ``tidings://``) enforces it; ``nats://`` refuses it when
the subscription is declared (``Unsupported``, see docs/transports.md): JetStream's pull
``max_bytes`` bounds one pull request, not what a member holds."""

from __future__ import annotations

import asyncio
import time

import tidings

from .scenarios import eventually, expect_unsupported, lacks

SIZE = 10_000


async def test_a_subscription_holds_bodies_up_to_its_byte_budget(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"x" * SIZE) for _ in range(20)])
    if lacks(client, "prefetch_bytes"):
        await expect_unsupported(
            client.subscribe(topic, "work", prefetch=100, prefetch_bytes=3 * SIZE)
        )
        return
    sub = await client.subscribe(topic, "work", prefetch=100, prefetch_bytes=3 * SIZE)

    async def held() -> int:
        return (await client.group_info(topic, "work")).in_flight

    assert await eventually(held, 10) == 3  # 3 * SIZE reached: nothing more
    await asyncio.sleep(0.5)
    assert await held() == 3
    got = 0
    deadline = time.monotonic() + 30
    while got < 20 and time.monotonic() < deadline:
        msg = await sub.next(timeout=5)
        if msg is None:
            break
        await msg.ack()
        got += 1
        assert await held() <= 3
    assert got == 20
    await sub.close()


async def test_a_service_handles_bodies_up_to_its_byte_budget(url: str, topic: str) -> None:
    svc = tidings.Service("budget", url=url)
    svc.topic(topic)
    running = 0
    most = 0
    done = 0

    @svc.on(topic, concurrency=10, prefetch_bytes=2 * SIZE)
    async def handle(payload: bytes) -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        done += 1

    async with tidings.connect(url) as client:
        await client.create_topic(topic)
        await client.publish_many(topic, [tidings.Outgoing(b"y" * SIZE) for _ in range(12)])
        if lacks(client, "prefetch_bytes"):
            await expect_unsupported(svc.start())
            return
        await svc.start()
        try:
            deadline = time.monotonic() + 30
            while done < 12 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await svc.stop()
    assert done == 12
    assert most == 2  # concurrency 10, but two bodies fill the budget
