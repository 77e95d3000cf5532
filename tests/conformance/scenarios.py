"""Helpers shared by the conformance scenarios: collecting messages with deadlines, and the
rule for declared differences (a transport without a capability must refuse the declaration
with Unsupported, and the scenario asserts exactly that)."""

from __future__ import annotations

import asyncio
import time

import pytest

import tidings
from tidings.errors import Unsupported
from tidings.model import Message


def lacks(client: tidings.AsyncClient, capability: str) -> bool:
    return capability not in client.capabilities


async def expect_unsupported(coro) -> None:
    with pytest.raises(Unsupported):
        await coro


async def collect(
    sub: tidings.Subscription, count: int, timeout: float = 10.0, ack: bool = True
) -> list[Message]:
    """Receive ``count`` messages (acking each unless told not to) within ``timeout``."""
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        msg = await sub.next(timeout=remaining)
        if msg is None:
            break
        out.append(msg)
        if ack:
            await msg.ack()
    return out


async def quiet(sub: tidings.Subscription, seconds: float) -> Message | None:
    """The first message that arrives within ``seconds`` (None if it stays quiet)."""
    return await sub.next(timeout=seconds)


async def eventually(check, timeout: float = 10.0, interval: float = 0.1):
    """Await ``check()`` until it returns a truthy value (returned) or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(interval)


async def dead_letters(
    client: tidings.AsyncClient, topic: str, group: str, timeout: float = 15.0
) -> tidings.Subscription:
    """Subscribe to ``group``'s dead-letter topic once it exists (it is created on demand)."""
    from tidings.errors import NotFound
    from tidings.headers import dead_letter_topic

    name = dead_letter_topic(topic, group)

    async def exists() -> bool:
        try:
            await client.topic_info(name)
        except NotFound:
            return False
        return True

    assert await eventually(exists, timeout), f"dead-letter topic {name} never appeared"
    return await client.subscribe(name, "inspect")


async def ordered_is_refused(url: str, topic: str) -> bool:
    """True when the transport at ``url`` lacks ordered groups, after checking the declared
    difference: a service with an ordered handler refuses to start with Unsupported naming
    the capability (the caller then returns: nothing else to check)."""
    async with tidings.connect(url) as client:
        if not lacks(client, "ordered"):
            return False
        await client.create_topic(topic)
    svc = tidings.Service("ordered-refused", url=url)

    @svc.on(topic, mode="ordered")
    async def handle(payload: bytes) -> None: ...

    with pytest.raises(Unsupported, match="mode='ordered' is not supported"):
        await svc.start()
    await svc.stop()
    return True
