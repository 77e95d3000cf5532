"""redis:// refuses at declare time what it cannot do (docs/transports.md, R4, R7, R8), with
the alternative named, and keeps a topic's keys under one hash tag (Redis Cluster slot)."""

from __future__ import annotations

import secrets

import pytest

import tidings
from tidings.errors import NotFound, Unsupported
from tidings.transports.redis import RedisTransport
from tidings.transports.registry import transport_for


def test_the_url_picks_the_redis_transport() -> None:
    assert isinstance(transport_for("redis://127.0.0.1:6379/0"), RedisTransport)
    assert isinstance(transport_for("rediss://127.0.0.1:6380/1"), RedisTransport)


async def test_declarations_redis_cannot_serve_are_refused(redis_server) -> None:
    topic = f"decl.{secrets.token_hex(4)}"
    async with tidings.connect(redis_server.url) as client:
        with pytest.raises(Unsupported, match="retention='work-queue' is not supported"):
            await client.create_topic(topic, retention="work-queue")
        with pytest.raises(Unsupported, match=r"max_bytes .* use max_messages or max_age"):
            await client.create_topic(topic, max_bytes=1_000_000)
        with pytest.raises(NotFound):  # nothing was created by the refused declarations
            await client.topic_info(topic)
        await client.create_topic(topic)
        with pytest.raises(Unsupported, match="key_ordered=True is not supported by redis://"):
            await client.subscribe(topic, "g", key_ordered=True)


async def test_a_topics_keys_and_its_dead_letters_share_one_hash_tag(redis_server) -> None:
    topic = f"tag.{secrets.token_hex(4)}"
    async with tidings.connect(redis_server.url) as client:
        await client.create_topic(topic, partitions=2)
        sub = await client.subscribe(topic, "g")
        await client.publish(topic, b"poison", key="k")
        msg = await sub.next(timeout=5)
        assert msg is not None
        await msg.reject("bad")
        await sub.close()
        r = client.transport.r
        keys = [k.decode() async for k in r.scan_iter(match="tidings:*", count=1000)]
        mine = [k for k in keys if topic in k]
        assert mine and all(k.startswith(f"tidings:{{{topic}}}:") for k in mine), mine
        dlq = f"{topic}.g.dlq"
        assert any(k.startswith(f"tidings:{{{topic}}}:{dlq}:") for k in mine)
        assert (await client.group_info(topic, "g")).dead_lettered == 1
        [letter] = await client.dead_letters(topic, "g")
        assert (letter.reason, letter.error, letter.body) == ("rejected", "bad", b"poison")


async def test_members_leave_no_consumer_behind(redis_server) -> None:
    topic = f"prune.{secrets.token_hex(4)}"
    async with tidings.connect(redis_server.url) as client:
        await client.create_topic(topic, partitions=2)
        await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(4)])
        for _ in range(3):  # members come and go, leaving what they buffered behind
            sub = await client.subscribe(topic, "g", prefetch=1)
            msg = await sub.next(timeout=5)
            assert msg is not None
            await msg.ack()
            await sub.close()
        last = await client.subscribe(topic, "g", prefetch=10)
        while (msg := await last.next(timeout=1.0)) is not None:
            await msg.ack()
        await last.close()
        r = client.transport.r
        for p in range(2):
            assert await r.xinfo_consumers(f"tidings:{{{topic}}}:{topic}:p:{p}", "g") == []
        info = await client.group_info(topic, "g")
        assert (info.members, info.ready, info.in_flight) == (0, 0, 0)
