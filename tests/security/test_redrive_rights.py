"""Dead letters under a users file: listing a group's dead letters needs the subscribe right on
its topic, a redrive the publish right there (it writes into the topic), discarding them the
admin right; a refused call changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from tidings.errors import Forbidden
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import connect


async def _dead_letter(ops, topic: str) -> str:
    await ops.create_topic(TopicSpec(name=topic), exist_ok=True)
    [receipt] = await ops.publish(topic, [Outgoing(b"refund o-7")])
    sub = await ops.subscribe(GroupSpec(topic=topic, name="billing", max_deliveries=1))
    message = await sub.next(timeout=10)
    await message.reject("declined")
    await sub.close()
    for _ in range(100):
        if await ops.dead_letters(topic, "billing"):
            break
        await asyncio.sleep(0.05)
    return receipt.id


async def test_rights_of_listing_redriving_and_discarding(secured):
    ops = await connect(secured)
    billing = await connect(secured, "billing")  # subscribe orders.*, publish orders.*.dlq
    mallory = await connect(secured, "mallory")
    try:
        msg_id = await _dead_letter(ops, "orders.rights")
        [letter] = await billing.dead_letters("orders.rights", "billing")
        assert letter.id == msg_id
        with pytest.raises(Forbidden, match=r"may not subscribe on topic 'orders\.rights'"):
            await mallory.dead_letters("orders.rights", "billing")
        with pytest.raises(Forbidden, match=r"may not publish on topic 'orders\.rights'"):
            await billing.redrive("orders.rights", "billing")
        with pytest.raises(Forbidden, match=r"may not admin on topic 'orders\.rights'"):
            await billing.discard_dead_letters("orders.rights", "billing")
        with pytest.raises(Forbidden):
            await mallory.redrive("orders.rights", "billing")
        assert [d.id for d in await ops.dead_letters("orders.rights", "billing")] == [msg_id]
        assert await ops.redrive("orders.rights", "billing") == [msg_id]
        assert await ops.dead_letters("orders.rights", "billing") == []
    finally:
        for t in (ops, billing, mallory):
            await t.close()
