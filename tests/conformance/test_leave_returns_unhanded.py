"""A subscription that closes returns what its client never handed out, uncounted (issue #12).

Messages the client had prefetched but never handed to the application are no processing
attempt: on close the client names them (UNSUBSCRIBE carries them on ``tidings://``) and the
broker returns them without counting the delivery, so members that come and go never push a
message past ``max_deliveries``. A message the application took and did not settle was an
attempt: after its last allowed one it is dead-lettered, not delivered once more. Runs on
``memory://`` and ``tidings://`` (the built-in broker; see docs/reliability.md for
``nats://``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import tidings
from tidings.transports.memory import stop_memory_broker

from .scenarios import collect, eventually


@pytest.fixture(params=["memory", "tidings"])
async def builtin(request: pytest.FixtureRequest) -> AsyncIterator[tidings.AsyncClient]:
    if request.param == "memory":
        url = "memory://leave-unhanded"
    else:
        url = request.getfixturevalue("tidings_broker").url
    async with tidings.connect(url) as client:
        yield client
    if request.param == "memory":
        await stop_memory_broker("leave-unhanded")


async def _buffered(client: tidings.AsyncClient, topic: str, count: int) -> bool:
    """True once the broker delivered ``count`` messages that the client holds (a DELIVER
    frame comes before the reply of a later request on the same connection)."""

    async def delivered() -> bool:
        return (await client.group_info(topic, "work")).in_flight == count

    return bool(await eventually(delivered, 10))


async def test_prefetched_messages_return_uncounted_when_the_member_closes(
    builtin: tidings.AsyncClient, topic: str
) -> None:
    client = builtin
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(5)])
    settings = {"prefetch": 10, "lease": 30, "max_deliveries": 2}
    for _ in range(4):  # more members than max_deliveries allows deliveries
        sub = await client.subscribe(topic, "work", **settings)
        assert await _buffered(client, topic, 5)
        await sub.close()  # before: each close counted a delivery of all 5
    sub = await client.subscribe(topic, "work", **settings)
    got = await collect(sub, 5)
    assert sorted(m.body for m in got) == [b"%d" % i for i in range(5)]
    assert [m.delivery_count for m in got] == [1] * 5
    assert (await client.group_info(topic, "work")).dead_lettered == 0
    await sub.close()


async def test_a_message_taken_and_left_unsettled_dead_letters_after_its_last_attempt(
    builtin: tidings.AsyncClient, topic: str
) -> None:
    client = builtin
    await client.create_topic(topic)
    await client.publish(topic, b"taken")
    settings = {"prefetch": 1, "lease": 30, "max_deliveries": 2}
    for attempt in (1, 2):
        sub = await client.subscribe(topic, "work", **settings)
        msg = await sub.next(timeout=10)
        assert msg is not None and msg.delivery_count == attempt
        await sub.close()  # taken, never settled: an attempt that failed

    async def dead() -> int:
        return (await client.group_info(topic, "work")).dead_lettered

    assert await eventually(dead, 10) == 1  # before: delivered a third time
    sub = await client.subscribe(topic, "work", **settings)
    assert await sub.next(timeout=1) is None
    await sub.close()
