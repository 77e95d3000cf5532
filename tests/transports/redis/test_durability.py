"""redis:// against real redis-server processes: what survives a consumer's SIGKILL and a
server's SIGKILL with AOF (appendfsync always), and the warning at connect when the server
keeps nothing on disk."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from tests.helpers.redis_server import RedisServer

import tidings
from tidings.transports.redis import RedisTransport

CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    import tidings

    async def main(url, topic):
        async with tidings.connect(url) as client:
            sub = await client.subscribe(topic, "work", lease=2.0, prefetch=20, confirm_acks=True)
            for _ in range(10):
                msg = await sub.next(timeout=10)
                await msg.ack()
            held = [await sub.next(timeout=10) for _ in range(20)]
            assert all(m is not None for m in held)
            print("holding", flush=True)
            await asyncio.sleep(600)  # holds its 20 leases (kept alive) until killed

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def _line(proc: asyncio.subprocess.Process, timeout: float) -> bytes:
    assert proc.stdout is not None
    return await asyncio.wait_for(proc.stdout.readline(), timeout)


async def test_a_consumer_killed_while_holding_leases_loses_nothing(redis_server) -> None:
    url, topic = redis_server.url, f"kill.{secrets.token_hex(4)}"
    async with tidings.connect(url) as client:
        await client.create_topic(topic)
        await client.publish_many(topic, [tidings.Outgoing(b"%d" % i) for i in range(50)])
        env = {**os.environ, "PYTHONPATH": str(Path(tidings.__file__).parents[1])}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CONSUMER, url, topic, stdout=subprocess.PIPE, env=env
        )
        try:
            assert await _line(proc, 30) == b"holding\n"
            proc.send_signal(signal.SIGKILL)  # with 20 leases held, 30 never read
            await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        killed_at = time.monotonic()
        sub = await client.subscribe(topic, "work", prefetch=50)
        got: dict[bytes, int] = {}
        deadline = time.monotonic() + 30
        while len(got) < 40 and time.monotonic() < deadline:
            msg = await sub.next(timeout=5)
            if msg is None:
                break
            got[msg.body] = msg.delivery_count
            await msg.ack()
        assert sorted(got) == sorted(b"%d" % i for i in range(10, 50))  # nothing lost
        held = [b"%d" % i for i in range(10, 30)]
        assert all(got[b] == 2 for b in held)  # the killed member's, after its lease
        assert all(got[b"%d" % i] == 1 for i in range(30, 50))
        assert time.monotonic() - killed_at >= 1.0  # not before the lease ran out
        assert await sub.next(timeout=1.0) is None  # the 10 acked before the kill stay acked
        info = await client.group_info(topic, "work")
        assert (info.ready, info.in_flight, info.dead_lettered) == (0, 0, 0)
        await sub.close()


async def test_what_survives_a_server_crash_with_aof(fresh_redis_server: RedisServer) -> None:
    server, topic = fresh_redis_server, "orders"
    async with tidings.connect(server.url) as client:
        await client.create_topic(topic, partitions=2, dedup_window=600)
        receipts = await client.publish_many(
            topic, [tidings.Outgoing(b"%d" % i, key=f"k{i}", msg_id=f"m{i}") for i in range(20)]
        )
        sub = await client.subscribe(topic, "billing", lease=1.0, prefetch=5, confirm_acks=True)
        acked = set()
        for _ in range(5):
            msg = await sub.next(timeout=5)
            assert msg is not None
            await msg.ack()  # returned: on disk (appendfsync always)
            acked.add(msg.body)
        await asyncio.sleep(0)
    server.kill()  # SIGKILL: no shutdown, no final fsync
    server.start()
    async with tidings.connect(server.url) as client:
        info = await client.topic_info(topic)
        assert info.messages == 20 and info.spec.partitions == 2 and info.spec.dedup_window == 600
        again = await client.publish(topic, b"0", key="k0", msg_id="m0")
        assert again.duplicate and again.id == receipts[0].id  # the dedup window survived
        sub = await client.subscribe(topic, "billing", prefetch=20)
        rest = set()
        deadline = time.monotonic() + 20
        while len(rest) < 15 and time.monotonic() < deadline:
            msg = await sub.next(timeout=5)
            if msg is None:
                break
            rest.add(msg.body)
            await msg.ack()
        assert rest == {b"%d" % i for i in range(20)} - acked  # acked stay acked, none lost
        await sub.close()


async def test_connect_warns_when_the_server_keeps_nothing_on_disk(caplog) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bare = RedisServer(tmp, persistence=False).start()
        try:
            caplog.set_level(logging.WARNING, "tidings.transports.redis")
            t = RedisTransport(bare.url)
            await t.connect()
            await t.close()
            [record] = [r for r in caplog.records if "persistence" in r.getMessage()]
            assert "runs without persistence" in record.getMessage()
            assert "--appendonly yes" in record.getMessage()
        finally:
            bare.stop()


async def test_no_warning_with_aof(redis_server, caplog) -> None:
    caplog.set_level(logging.WARNING, "tidings.transports.redis")
    t = RedisTransport(redis_server.url)
    await t.connect()
    await t.close()
    assert not [r for r in caplog.records if "persistence" in r.getMessage()]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0"])
async def test_a_refused_connection_says_where(url: str) -> None:
    from tidings.errors import TransportUnavailable

    with pytest.raises(TransportUnavailable, match=r"cannot connect to redis://127.0.0.1:1"):
        await RedisTransport(url).connect()


async def test_a_member_carries_on_after_the_server_restarts(fresh_redis_server) -> None:
    server = fresh_redis_server
    async with tidings.connect(server.url) as client:
        await client.create_topic("jobs")
        sub = await client.subscribe("jobs", "workers", confirm_acks=True)
        await client.publish("jobs", b"before")
        msg = await sub.next(timeout=5)
        assert msg is not None and msg.body == b"before"
        await msg.ack()
        server.restart()  # same port, same AOF
        deadline = time.monotonic() + 20
        while True:  # the first commands after the restart may fail: the client retries
            try:
                await client.publish("jobs", b"after")
                break
            except tidings.TidingsError:
                assert time.monotonic() < deadline, "publishing never worked again"
                await asyncio.sleep(0.2)
        again = await sub.next(timeout=15)
        assert again is not None and again.body == b"after" and again.delivery_count == 1
        await again.ack()
        assert await sub.next(timeout=1.0) is None  # 'before' stayed acked
        await sub.close()


ORDERED_CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    import tidings

    async def main(url, topic):
        async with tidings.connect(url) as client:
            sub = await client.subscribe(
                topic, "audit", mode="ordered", lease=2.0, session_timeout=2.0,
                prefetch=10, confirm_acks=True,
            )
            for _ in range(6):
                msg = await sub.next(timeout=10)
                await msg.ack()
            held = [await sub.next(timeout=10) for _ in range(2)]  # one per partition
            assert all(m is not None for m in held)
            print("holding", flush=True)
            await asyncio.sleep(600)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_an_ordered_member_killed_mid_partition_loses_nothing_and_keeps_order(
    redis_server,
) -> None:
    url, topic = redis_server.url, f"okill.{secrets.token_hex(4)}"
    async with tidings.connect(url) as client:
        await client.create_topic(topic, partitions=2)
        receipts = await client.publish_many(
            topic,
            [tidings.Outgoing(b"%d" % i) for i in range(40)],  # both partitions
        )
        env = {**os.environ, "PYTHONPATH": str(Path(tidings.__file__).parents[1])}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ORDERED_CONSUMER, url, topic, stdout=subprocess.PIPE, env=env
        )
        try:
            assert await _line(proc, 30) == b"holding\n"
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        sub = await client.subscribe(topic, "audit", mode="ordered", prefetch=10)
        got: list[tidings.Message] = []
        deadline = time.monotonic() + 30
        while len(got) < 34 and time.monotonic() < deadline:
            msg = await sub.next(timeout=5)
            if msg is None:
                break
            got.append(msg)
            await msg.ack()
        assert await sub.next(timeout=1.0) is None  # the 6 acked before the kill stay acked
        offsets = {r.partition: [] for r in receipts}
        for m in got:
            offsets[m.partition].append(m.offset)
        for p, seen in offsets.items():  # each partition resumes in order after the last ack
            everything = sorted(r.offset for r in receipts if r.partition == p)
            assert seen == everything[len(everything) - len(seen) :], (p, seen)
        assert len(got) == 34  # nothing lost: 40 published, 6 acked by the killed member
        assert sorted(m.delivery_count for m in got)[-2:] == [2, 2]  # the two it held
        await sub.close()
