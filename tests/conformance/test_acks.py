"""Conformance: batched acks (issue #14). ``ack()`` by default queues the ack for the next
batched frame and returns; the broker still applies every one. With ``confirm_acks=True`` it
waits for the broker and raises its refusal; ``ack_many`` settles a batch at once."""

from __future__ import annotations

import pytest

import tidings
from tidings.errors import LeaseLost

from .scenarios import dead_letters, eventually, quiet


async def _settled(client: tidings.AsyncClient, topic: str, group: str) -> bool:
    info = await client.group_info(topic, group)
    return info.lag == 0 and info.in_flight == 0 and info.ready == 0


async def test_unconfirmed_acks_of_the_plain_loop_are_applied(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(300)])
    sub = await client.subscribe(topic, "loop", prefetch=50)
    seen = 0
    async for msg in sub:
        await msg.ack()
        seen += 1
        if seen == 300:
            break
    assert await eventually(lambda: _settled(client, topic, "loop"), 15)
    assert await quiet(sub, 1.0) is None  # nothing redelivered
    await sub.close()
    again = await client.subscribe(topic, "loop")
    assert await quiet(again, 1.0) is None  # the group's position moved past all 300
    await again.close()


async def test_ack_many_settles_a_batch(client: tidings.AsyncClient, topic: str) -> None:
    await client.create_topic(topic)
    await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(40)])
    sub = await client.subscribe(topic, "batch", prefetch=40, confirm_acks=True)
    got: list[tidings.Message] = []
    while len(got) < 40:
        batch = await sub.next_batch(40 - len(got), timeout=10)
        assert batch, "messages stopped arriving"
        got.extend(batch)
    await sub.ack_many(got)
    assert all(m.settled for m in got)
    assert await eventually(lambda: _settled(client, topic, "batch"), 15)
    await sub.ack_many(got)  # settled already: nothing to do, no error
    await sub.close()


@pytest.mark.parametrize("many", [False, True])
async def test_confirmed_ack_raises_the_brokers_refusal(
    client: tidings.AsyncClient, topic: str, many: bool
) -> None:
    await client.create_topic(topic)
    await client.publish(topic, b"late")
    # The lease is left to run out (max_lease_extension=0) on the last allowed delivery: the
    # message is dead-lettered, and the late ack must say that it came too late.
    slow = await client.subscribe(
        topic, "g", lease=1.0, max_deliveries=1, max_lease_extension=0, confirm_acks=True
    )
    msg = await slow.next(timeout=10)
    assert msg is not None
    dlq = await dead_letters(client, topic, "g")
    dead = await dlq.next(timeout=15)
    assert dead is not None and dead.body == b"late"
    with pytest.raises(LeaseLost):
        if many:
            await slow.ack_many([msg])
        else:
            await msg.ack()
    await dead.ack()
    await dlq.close()
    await slow.close()
