"""Coalesced publishes over a real broker: a batch retried after a dropped connection keeps
its producer ids (the broker deduplicates it, nothing is stored twice), and the sync twin's
``publish_async`` returns a thread-safe future of the receipt."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
from tests.helpers.proxy import FaultyProxy
from tests.server.conftest import broker, name  # noqa: F401 - fixtures

import tidings
from tidings.client.pipeline import PublishPipeline
from tidings.errors import BadRequest, StorageError
from tidings.model import Outgoing, Receipt


async def _wait_for(predicate, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_retried_batch_is_deduplicated(broker, name):  # noqa: F811
    proxy = FaultyProxy(broker.url)
    url = await proxy.start()
    async with tidings.connect(broker.url) as observer, tidings.connect(url) as client:
        await client.create_topic(name)
        await client.publish(name, b"warm-up")
        proxy.hold_replies = True  # the broker stores the batch; its answer never comes back
        futures = [client.publish_async(name, b"m%d" % i, key="k") for i in range(50)]

        async def stored() -> bool:
            return (await observer.topic_info(name)).messages == 51

        await _wait_for(stored)
        proxy.hold_replies = False
        proxy.cut()  # the client reconnects and sends the same batch again
        receipts = await asyncio.wait_for(asyncio.gather(*futures), 30)
        assert all(r.duplicate for r in receipts)  # the broker recognised every producer id
        assert (await observer.topic_info(name)).messages == 51
        sub = await observer.subscribe(name, "g", prefetch=100)
        bodies = []
        while len(bodies) < 51:
            msg = await sub.next(timeout=10)
            assert msg is not None
            bodies.append(msg.body)
            await msg.ack()
        assert bodies == [b"warm-up"] + [b"m%d" % i for i in range(50)]
        await sub.close()
    await proxy.close()


def test_sync_publish_async_returns_a_thread_safe_future(broker, name):  # noqa: F811
    with tidings.connect_sync(broker.url) as client:
        client.create_topic(name)
        futures = [client.publish_async(name, b"s%d" % i) for i in range(20)]
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)
        receipts = [f.result(timeout=30) for f in futures]
        assert [r.offset for r in receipts] == sorted(r.offset for r in receipts)
        client.flush()
        assert client.topic_info(name).messages == 20
        failed = client.publish_async(f"{name}.missing", b"x")
        with pytest.raises(tidings.errors.NotFound):
            failed.result(timeout=30)


async def test_batches_resend_each_message_alone_only_for_per_message_errors():
    """What the pipeline does with a refused batch: BadRequest -> each message alone, in
    order; a storage error -> every message of the batch fails with it, none is resent."""
    sent: list[list[bytes]] = []

    async def send(topic: str, batch: list[Outgoing]) -> list[Receipt]:
        sent.append([m.body for m in batch])
        if any(m.body == b"bad" for m in batch):
            raise BadRequest("bad message")
        if any(m.body == b"disk" for m in batch):
            raise StorageError("disk failed")
        return [Receipt(topic, 0, i, m.msg_id or "") for i, m in enumerate(batch)]

    pipeline = PublishPipeline(send, stable_ids=True)
    futures = [pipeline.submit("t", Outgoing(b)) for b in (b"a", b"bad", b"c")]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[1], BadRequest)
    assert [type(r) for r in (results[0], results[2])] == [Receipt, Receipt]
    assert sent == [[b"a", b"bad", b"c"], [b"a"], [b"bad"], [b"c"]]
    ids = {results[0].id, results[2].id}
    assert len(ids) == 2 and all(ids)  # stable Snowflake ids were given before the send

    sent.clear()
    futures = [pipeline.submit("t", Outgoing(b)) for b in (b"x", b"disk")]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, StorageError) for r in results)
    assert sent == [[b"x", b"disk"]]
