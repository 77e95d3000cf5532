"""Conformance: a group's dead letters are listed and redriven back to that group only, under
their original message id, producer id and headers, as a fresh delivery; other groups do not
see them again, a redriven one is not listed nor redriven twice, a discarded one is gone.
The same code on memory://, tidings:// and nats://; amqp:// lists no dead letters (RabbitMQ
cannot read a queue without taking its messages): it refuses the three calls with
Unsupported, and the dead letter waits in the dead-letter topic, as the error says."""

from __future__ import annotations

import pytest

import tidings
from tidings import headers as H
from tidings.errors import BadRequest, NotFound
from tidings.transports.base import CAP_REDRIVE

from .scenarios import collect, dead_letters, eventually, expect_unsupported, lacks, quiet


async def _dead_letter_in_billing(client: tidings.AsyncClient, topic: str) -> tidings.Receipt:
    await client.create_topic(topic)
    billing = await client.subscribe(topic, "billing", max_deliveries=1)
    audit = await client.subscribe(topic, "audit")
    receipt = await client.publish(
        topic, b"refund o-2", key="o-2", headers={"x-order": "o-2"}, msg_id=f"{topic}-o-2"
    )
    msg = await billing.next(timeout=10)
    assert msg is not None
    await msg.reject("card declined")
    await billing.close()
    [seen] = await collect(audit, 1)
    assert seen.id == receipt.id
    await audit.close()
    return receipt


async def _refused(client: tidings.AsyncClient, topic: str, receipt: tidings.Receipt) -> None:
    """The declared difference: the calls are refused, the dead letter is in the DLQ topic."""
    await expect_unsupported(client.dead_letters(topic, "billing"))
    await expect_unsupported(client.redrive(topic, "billing"))
    await expect_unsupported(client.discard_dead_letters(topic, "billing"))
    dlq = await dead_letters(client, topic, "billing")
    [dead] = await collect(dlq, 1)
    assert dead.headers[H.DLQ_ID] == receipt.id and dead.headers[H.DLQ_REASON] == "rejected"
    await dlq.close()


async def test_redrive_reaches_its_group_only_under_the_original_id(
    client: tidings.AsyncClient, topic: str
) -> None:
    receipt = await _dead_letter_in_billing(client, topic)
    if lacks(client, CAP_REDRIVE):
        await _refused(client, topic, receipt)
        return

    async def listed():
        return await client.dead_letters(topic, "billing")

    [letter] = await eventually(listed)
    assert (letter.id, letter.msg_id, letter.key) == (receipt.id, f"{topic}-o-2", "o-2")
    assert (letter.reason, letter.deliveries, letter.body) == ("rejected", 1, b"refund o-2")
    assert letter.error == "card declined"
    assert letter.headers == {"x-order": "o-2"}

    with pytest.raises(NotFound, match="no dead letter with id nope"):
        await client.redrive(topic, "billing", ids=["nope"])
    assert await client.redrive(topic, "billing", ids=[letter.id]) == 1
    assert await client.dead_letters(topic, "billing") == []
    assert await client.redrive(topic, "billing") == 0  # not twice

    billing = await client.subscribe(topic, "billing", max_deliveries=1)
    audit = await client.subscribe(topic, "audit")
    [again] = await collect(billing, 1)
    assert (again.id, again.msg_id, again.body) == (receipt.id, f"{topic}-o-2", b"refund o-2")
    assert again.headers["x-order"] == "o-2"
    assert again.headers == {"x-order": "o-2"}  # no tidings-dlq-*, no redrive header
    assert again.delivery_count == 1  # a fresh delivery for billing
    assert await quiet(audit, 1.0) is None  # audit handled it once; it does not come back
    info = await client.group_info(topic, "audit")
    assert info.ready == 0 and info.in_flight == 0
    await billing.close()
    await audit.close()


async def test_discard_drops_dead_letters(client: tidings.AsyncClient, topic: str) -> None:
    receipt = await _dead_letter_in_billing(client, topic)
    if lacks(client, CAP_REDRIVE):
        await _refused(client, topic, receipt)
        return

    async def listed():
        return await client.dead_letters(topic, "billing")

    assert len(await eventually(listed)) == 1
    assert await client.discard_dead_letters(topic, "billing") == 1
    assert await client.dead_letters(topic, "billing") == []
    assert await client.redrive(topic, "billing") == 0


async def test_no_dead_letters_yet_and_bad_arguments(
    client: tidings.AsyncClient, topic: str
) -> None:
    await client.create_topic(topic)
    sub = await client.subscribe(topic, "billing")
    await sub.close()
    if lacks(client, CAP_REDRIVE):
        await expect_unsupported(client.dead_letters(topic, "billing"))
        await expect_unsupported(client.redrive(topic, "billing"))
        return
    assert await client.dead_letters(topic, "billing") == []  # the DLQ does not exist yet
    assert await client.redrive(topic, "billing") == 0
    with pytest.raises(NotFound, match=r"group 'nobody'.*does not exist"):
        await client.dead_letters(topic, "nobody")
    with pytest.raises(BadRequest, match="limit must be"):
        await client.dead_letters(topic, "billing", limit=0)
    with pytest.raises(BadRequest, match="not one string"):
        await client.redrive(topic, "billing", ids="m-1")
