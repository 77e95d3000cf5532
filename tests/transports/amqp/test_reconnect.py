"""amqp:// after a lost connection (docs/transports.md A12): the transport reconnects, the
subscriptions resume on new channels, nothing whose publish was confirmed is lost.

RabbitMQ returns every un-acknowledged message of a closed connection to its queue, so a
message received before the drop comes again (its delivery count raised) and settling the
old delivery raises ``LeaseLost`` (its delivery tag belonged to the old channel). The
connection is cut two ways on a real rabbitmq-server: ``rabbitmqctl close_all_connections``
while a producer publishes and a consumer acks (shared and ordered groups), and a shutdown of
the node followed by a restart on the same data dir (quorum queues keep what they confirmed;
publishes meanwhile fail with ``TransportUnavailable`` after ``reconnect_wait``).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.rabbitmq_server import RabbitServer, require_rabbitmq

import tidings
from tidings.errors import LeaseLost, TidingsError, TransportUnavailable
from tidings.transports.amqp import reconnect

pytestmark = pytest.mark.timeout(300)


def topic_name() -> str:
    return f"reconnect.{secrets.token_hex(4)}"


async def _reconnected(client: tidings.AsyncClient, before: int, timeout: float = 60) -> None:
    """Wait until the client's transport has reconnected once more than ``before`` times."""
    link = client._transport.link  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while link.reconnects <= before:
        assert time.monotonic() < deadline, "the transport did not reconnect"
        await asyncio.sleep(0.05)


async def test_close_all_connections_while_publishing_and_consuming_loses_nothing(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name()
    total = 300
    async with (
        tidings.connect(rabbitmq_server.url) as producer,
        tidings.connect(rabbitmq_server.url) as consumer,
    ):
        await producer.create_topic(topic)
        sub = await consumer.subscribe(topic, "work", prefetch=20, lease=30)
        await producer.publish(topic, b"kept")
        kept = await sub.next(timeout=10)
        assert kept is not None and kept.body == b"kept"  # held across the drop, not acked
        before = consumer._transport.link.reconnects  # type: ignore[attr-defined]

        acked: dict[bytes, int] = {}  # body -> delivery count of the ack that returned
        published: list[bytes] = []
        cut = asyncio.Event()

        async def produce() -> None:
            for i in range(total):
                body = b"m%d" % i
                await producer.publish(topic, body)  # waits (bounded) through the outage
                published.append(body)
                if i == total // 3:
                    cut.set()
                await asyncio.sleep(0.002)

        async def consume() -> None:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                msg = await sub.next(timeout=1)
                if msg is None:
                    if len(published) == total and set(published) <= set(acked):
                        return
                    continue
                try:
                    await msg.ack()
                except LeaseLost:
                    continue  # received just before the drop: RabbitMQ delivers it again
                acked[msg.body] = msg.delivery_count

        producing = asyncio.create_task(produce())
        consuming = asyncio.create_task(consume())
        await cut.wait()
        await asyncio.to_thread(rabbitmq_server.close_all_connections)
        await _reconnected(consumer, before)
        with pytest.raises(LeaseLost, match="connection it came on was lost"):
            await kept.ack()  # never applied to a delivery of the new channel
        await producing
        await consuming
        assert len(published) == total
        missing = [b for b in published if b not in acked]
        assert missing == []
        assert acked.get(b"kept", 0) >= 2  # redelivered after the drop, then acked
        await sub.close()


async def test_an_ordered_group_resumes_in_order_after_the_connections_closed(
    rabbitmq_server: RabbitServer,
) -> None:
    topic = topic_name()
    async with tidings.connect(rabbitmq_server.url) as client:
        await client.create_topic(topic, partitions=2)
        sub = await client.subscribe(topic, "audit", mode="ordered", prefetch=10)
        keys = ["a", "b", "c", "d"]
        await client.publish_many(
            topic, [tidings.Outgoing(b"%d" % i, key=keys[i % 4]) for i in range(40)]
        )
        seen: dict[str, list[int]] = {}
        for _ in range(10):
            msg = await sub.next(timeout=10)
            assert msg is not None
            seen.setdefault(msg.key or "", []).append(int(msg.body))
            await msg.ack()
        before = client._transport.link.reconnects  # type: ignore[attr-defined]
        await asyncio.to_thread(rabbitmq_server.close_all_connections)
        await _reconnected(client, before)
        await client.publish_many(
            topic, [tidings.Outgoing(b"%d" % i, key=keys[i % 4]) for i in range(40, 60)]
        )
        while sum(len(set(v)) for v in seen.values()) < 60:
            msg = await sub.next(timeout=20)
            assert msg is not None, seen
            try:
                await msg.ack()
            except LeaseLost:
                continue
            seen.setdefault(msg.key or "", []).append(int(msg.body))
        for key, bodies in seen.items():
            # in order per key, from its first message on; an ack lost with the connection
            # may bring one back (at least once), never out of order
            firsts = list(dict.fromkeys(bodies))
            assert firsts == sorted(firsts) and len(firsts) == 15, (key, bodies)
        await sub.close()


async def test_a_resume_that_hangs_is_dropped_and_tried_again(
    rabbitmq_server: RabbitServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node still recovering may leave a consume unanswered: the reconnect gives up on that
    connection after RESTORE_TIMEOUT and starts over, rather than waiting for ever."""
    monkeypatch.setattr(reconnect, "RESTORE_TIMEOUT", 1.0)
    topic = topic_name()
    async with tidings.connect(rabbitmq_server.url) as client:
        await client.create_topic(topic)
        sub = await client.subscribe(topic, "work")
        inner = sub._inner  # type: ignore[attr-defined]
        resume = inner.reconnected
        calls = 0

        async def hang_once() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                await asyncio.Event().wait()  # never answered
            await resume()

        monkeypatch.setattr(inner, "reconnected", hang_once)
        before = client._transport.link.reconnects  # type: ignore[attr-defined]
        await asyncio.to_thread(rabbitmq_server.close_all_connections)
        await _reconnected(client, before)
        assert calls == 2
        await client.publish(topic, b"after")
        msg = await sub.next(timeout=10)
        assert msg is not None and msg.body == b"after"
        await msg.ack()
        await sub.close()


@pytest.fixture
def own_rabbitmq() -> Iterator[RabbitServer]:
    """A node of this test's own: it is killed and restarted."""
    require_rabbitmq()
    tmp = Path(tempfile.mkdtemp(prefix="tidings-rabbitmq-restart-"))
    server = RabbitServer(tmp)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def test_a_node_stopped_and_restarted_keeps_what_was_confirmed(
    own_rabbitmq: RabbitServer,
) -> None:
    server = own_rabbitmq
    topic = topic_name()
    async with tidings.connect(server.url, publish_retries=0, reconnect_wait=1.0) as client:
        await client.create_topic(topic)
        sub = await client.subscribe(topic, "work", prefetch=5, lease=30)
        await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(20)])
        held = await sub.next(timeout=10)
        assert held is not None
        before = client._transport.link.reconnects  # type: ignore[attr-defined]
        # a clean shutdown: after a SIGKILL, RabbitMQ 3.10.8 restarted on the same data dir
        # does not start the quorum queues' Ra servers again (basic.consume times out with
        # INTERNAL_ERROR for any client), which no client can work around
        await asyncio.to_thread(server.kill, signal.SIGTERM)
        began = time.monotonic()
        errors: list[TidingsError] = []
        while time.monotonic() - began < 10:  # bounded by reconnect_wait, never hanging
            try:
                await client.publish(topic, b"during")
            except TidingsError as exc:  # the first may meet the dying socket
                errors.append(exc)
                if "keeps reconnecting" in str(exc):
                    break
        assert errors, "a publish to a dead node succeeded"
        assert isinstance(errors[-1], TransportUnavailable), errors
        assert "keeps reconnecting: retry later" in str(errors[-1]), errors
        with pytest.raises(TransportUnavailable, match="may be restarting or unreachable"):
            await client.group_info(topic, "work")  # stats: the management API is down too
        await asyncio.to_thread(server.start)
        await _reconnected(client, before, timeout=120)
        with pytest.raises(LeaseLost):
            await held.ack()
        await client.publish(topic, b"after")
        got: set[bytes] = set()
        while len(got) < 21:
            msg = await sub.next(timeout=30)
            assert msg is not None, sorted(got)
            await msg.ack()
            got.add(msg.body)
        assert got == {b"%d" % i for i in range(20)} | {b"after"}
        await sub.close()
