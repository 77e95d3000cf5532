"""AsyncClient over memory:// (the real broker core in-process): topics, publish, groups."""

from __future__ import annotations

import pytest

import tidings
from tidings import headers as h
from tidings.errors import BadRequest, Closed, NotFound


async def test_publish_subscribe_ack(client):
    await client.create_topic("orders", partitions=4)
    receipt = await client.publish(
        "orders", b"body", key="order-42", headers={"type": "event"}, msg_id="m-1"
    )
    assert receipt.topic == "orders" and not receipt.duplicate
    sub = await client.subscribe("orders", group="billing", lease=30, prefetch=10)
    msg = await sub.next(timeout=2)
    assert (msg.body, msg.key, msg.headers["type"], msg.msg_id) == (
        b"body",
        "order-42",
        "event",
        "m-1",
    )
    await msg.ack()
    info = await client.group_info("orders", "billing")
    assert info.in_flight == 0 and info.lag == 0
    await sub.close()


async def test_publish_many_and_iterate(client):
    await client.create_topic("batch")
    receipts = await client.publish_many(
        "batch", [tidings.Outgoing(b"a", key="k1"), tidings.Outgoing(b"b")]
    )
    assert len(receipts) == 2
    bodies = []
    async with await client.subscribe("batch", "g") as sub:
        async for msg in sub:
            bodies.append(msg.body)
            await msg.ack()
            if len(bodies) == 2:
                break
    assert sorted(bodies) == [b"a", b"b"]


async def test_nack_redelivers_and_reject_dead_letters(client):
    await client.create_topic("jobs")
    await client.publish("jobs", b"job")
    sub = await client.subscribe("jobs", "workers", max_deliveries=5)
    first = await sub.next(2)
    await first.nack()
    again = await sub.next(2)
    assert again.delivery_count == 2
    await again.reject("poison")
    dlq = await client.subscribe(h.dead_letter_topic("jobs", "workers"), "inspect")
    dead = await dlq.next(2)
    assert dead.body == b"job" and dead.headers[h.DLQ_REASON] == "rejected"


async def test_client_sets_a_msg_id_so_retries_deduplicate(client):
    await client.create_topic("dedup")
    await client.publish("dedup", b"x")
    sub = await client.subscribe("dedup", "g")
    msg = await sub.next(2)
    assert msg.msg_id  # a Snowflake id, assigned by the client
    again = await client.publish("dedup", b"x", msg_id=msg.msg_id)
    assert again.duplicate


async def test_start_positions(client):
    await client.create_topic("positions")
    for body in (b"0", b"1", b"2"):
        await client.publish("positions", body)
    latest = await client.subscribe("positions", "from-latest", start="latest")
    at_two = await client.subscribe("positions", "from-two", start=2)
    assert (await at_two.next(2)).body == b"2"
    assert await latest.next(0.05) is None
    await client.publish("positions", b"3")
    assert (await latest.next(2)).body == b"3"


async def test_topic_admin(client):
    spec = await client.create_topic("admin", partitions=2, retention="work-queue", dedup_window=5)
    assert (spec.partitions, spec.retention, spec.dedup_window) == (2, "work-queue", 5)
    assert "admin" in [t.name for t in await client.list_topics()]
    await client.publish("admin", b"x")
    info = await client.topic_info("admin")
    assert info.messages == 1 and len(info.partitions) == 2
    await client.subscribe("admin", "g")
    await client.reset_group("admin", "g", "latest")
    await client.delete_group("admin", "g")
    await client.delete_topic("admin")
    with pytest.raises(NotFound):
        await client.topic_info("admin")


async def test_bad_arguments_say_what_is_wrong(client):
    with pytest.raises(BadRequest, match="known options"):
        await client.create_topic("t", partitionz=3)
    with pytest.raises(BadRequest, match="ttl"):
        await client.publish("t", b"x", ttl=-1)
    with pytest.raises(BadRequest, match="body"):
        await client.publish("t", 42)


async def test_url_from_environment(monkeypatch, memory_url):
    monkeypatch.setenv("TIDINGS_URL", memory_url)
    async with tidings.connect() as c:
        assert c.url == memory_url
        await c.create_topic("env")


async def test_closed_client_refuses_calls(memory_url):
    c = await tidings.connect(memory_url)
    await c.close()
    with pytest.raises(Closed):
        await c.publish("t", b"x")
