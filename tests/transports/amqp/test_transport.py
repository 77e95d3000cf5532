"""amqp:// at its boundary: URLs, connection errors that say what to do, the declared
limits (dedup within one connection, groups from their declaration, reserved headers), and
where messages wait while a topic has no group."""

from __future__ import annotations

import secrets

import pytest
from tests.conformance.scenarios import collect, quiet
from tests.helpers.nats_server import free_port
from tests.helpers.rabbitmq_server import RabbitServer

import tidings
from tidings.errors import BadRequest, NotFound, TransportUnavailable, Unsupported
from tidings.transports.amqp import AmqpTransport
from tidings.transports.amqp.transport import split_url
from tidings.transports.registry import transport_for


@pytest.fixture
def topic() -> str:
    return f"amqp.{secrets.token_hex(5)}"


def test_the_url_names_vhost_credentials_and_management() -> None:
    amqp, management, vhost, user, password = split_url(
        "amqp://app:s%40cret@mq.example:5673/orders?management=http://mq.example:15000&heartbeat=30"
    )
    assert (vhost, user, password) == ("orders", "app", "s@cret")
    assert management == "http://mq.example:15000"
    assert amqp == "amqp://app:s%40cret@mq.example:5673/orders?heartbeat=30"
    assert split_url("amqp://h")[1:3] == ("http://h:15672", "/")
    assert isinstance(transport_for("amqp://guest:guest@127.0.0.1:5672/"), AmqpTransport)


async def test_nothing_listening_is_transport_unavailable() -> None:
    transport = AmqpTransport(f"amqp://guest:guest@127.0.0.1:{free_port()}/", connect_timeout=2)
    with pytest.raises(TransportUnavailable, match=r"cannot connect to RabbitMQ at 127\.0\.0\.1"):
        await transport.connect()


async def test_a_missing_management_api_says_how_to_enable_it(
    rabbitmq_server: RabbitServer,
) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{rabbitmq_server.port}/?management=http://127.0.0.1:{free_port()}"
    with pytest.raises(TransportUnavailable, match="rabbitmq-plugins enable rabbitmq_management"):
        await AmqpTransport(url).connect()


async def test_dedup_holds_within_one_connection_only(
    rabbitmq_server: RabbitServer, topic: str
) -> None:
    """The declared limit (docs/transports.md, A7): another connection's retry is stored."""
    async with tidings.connect(rabbitmq_server.url) as first:
        await first.create_topic(topic, dedup_window=60)
        sub = await first.subscribe(topic, "g")
        a = await first.publish(topic, b"charge", msg_id="pay-1")
        assert (await first.publish(topic, b"charge", msg_id="pay-1")).duplicate
        async with tidings.connect(rabbitmq_server.url) as second:
            b = await second.publish(topic, b"charge", msg_id="pay-1")
        assert not b.duplicate and b.offset != a.offset
        assert len(await collect(sub, 2)) == 2
        await sub.close()


async def test_a_later_group_starts_at_its_declaration(
    rabbitmq_server: RabbitServer, topic: str
) -> None:
    """Before the first group, messages wait for it; a group declared after that receives
    only what is published once it exists (A1)."""
    async with tidings.connect(rabbitmq_server.url) as client:
        await client.create_topic(topic, partitions=3)
        await client.publish_many(topic, [tidings.Outgoing(b"early-%d" % i) for i in range(6)])
        assert (await client.topic_info(topic)).messages == 6  # kept for the first group
        first = await client.subscribe(topic, "first")
        assert sorted(m.body for m in await collect(first, 6)) == [
            b"early-%d" % i for i in range(6)
        ]
        late = await client.subscribe(topic, "late")
        assert await quiet(late, 0.5) is None
        await client.publish(topic, b"after")
        assert [m.body for m in await collect(late, 1)] == [b"after"]
        assert [m.body for m in await collect(first, 1)] == [b"after"]
        latest = await client.subscribe(topic, "first-latest", start="latest")
        assert await quiet(latest, 0.3) is None
        for sub in (first, late, latest):
            await sub.close()


async def test_boundary_refusals(rabbitmq_server: RabbitServer, topic: str) -> None:
    async with tidings.connect(rabbitmq_server.url) as client:
        with pytest.raises(NotFound):
            await client.publish(topic, b"nowhere")
        await client.create_topic(topic)
        with pytest.raises(BadRequest, match="reserved on amqp://"):
            await client.publish(topic, b"x", headers={"x-death": "forged"})
        sub = await client.subscribe(topic, "g")
        await sub.close()
        with pytest.raises(BadRequest, match="mode cannot change"):
            await client.subscribe(topic, "g", mode="ordered")
        await client.delete_topic(topic)
        with pytest.raises(NotFound):
            await client.topic_info(topic)


async def test_refusals_name_what_to_do_instead(rabbitmq_server: RabbitServer, topic: str) -> None:
    async with tidings.connect(rabbitmq_server.url) as client:
        await client.create_topic(topic)
        with pytest.raises(Unsupported, match="a message delay is not supported by amqp://") as e:
            await client.publish(topic, b"later", delay=5)
        assert "publish when the message is due" in str(e.value)
        with pytest.raises(Unsupported, match="declare it before publishing"):
            await client.subscribe(topic, "g", start=3)
        sub = await client.subscribe(topic, "g")
        await sub.close()
        with pytest.raises(Unsupported, match="delete the group and subscribe again"):
            await client.reset_group(topic, "g")
