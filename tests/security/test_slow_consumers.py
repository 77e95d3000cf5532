"""Clients that never read their sockets cannot make the broker buffer without bound (issue
#23, hole 6): above its write high-water mark a connection gets no more deliveries (shared
groups too, whatever their prefetch), and one that stays above it past --write-deadline is
closed with a reason, its un-acked deliveries going back to the group."""

from __future__ import annotations

import asyncio
import time

from tests.helpers.broker_process import BrokerProcess
from tests.server.rawclient import RawClient

from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.protocol import constants as c
from tidings.protocol import messages as m
from tidings.transports.tidings import NativeTransport

SIZE = 64 * 1024
HIGH_WATER = 256 * 1024


async def _until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def _keep_alive(raws: list[RawClient]) -> None:
    """Heartbeats from readers that never read: they are alive, only not reading (else the
    broker's silence timeout, not the write deadline, would close them)."""
    while True:
        for raw in raws:
            if not raw.writer.is_closing():
                raw.send(c.HEARTBEAT, c.NO_REPLY, m.Empty())
        await asyncio.sleep(0.3)


async def test_readers_that_never_read_are_paused_then_closed(tmp_path):
    broker = BrokerProcess(
        tmp_path / "data",
        args=["--heartbeat", "1.0", "--write-high-water", str(HIGH_WATER),
              "--write-deadline", "3"],
    )  # fmt: skip
    await asyncio.to_thread(broker.start)
    t = NativeTransport(broker.url, timeout=10.0, reconnect=False)
    await t.connect()
    stalled: list[RawClient] = []
    alive = asyncio.create_task(_keep_alive(stalled))
    try:
        await t.create_topic(TopicSpec(name="big"))
        for _ in range(2):  # two readers that never read, a prefetch of 10,000 each
            raw = await RawClient.open(broker.url, limit=SIZE)
            raw.send(c.SUBSCRIBE, 2, m.Subscribe(GroupSpec(topic="big", name="g"), 10_000))
            await raw.writer.drain()
            stalled.append(raw)
        await asyncio.sleep(0.5)
        body = b"x" * SIZE
        snapshots = []
        for n in range(400):  # 25 MiB published one message at a time
            await t.publish("big", [Outgoing(body)])
            if n % 20 == 19:  # seen while publishing: on a loaded machine 400 publishes can
                snapshots.append(await t.server_stats())  # outlast --write-deadline
        # Each stalled connection holds at most the high-water mark plus the delivery that
        # crossed it (the kernel's socket buffers hold the rest of what they were sent).
        worst = max(s.max_write_buffer_bytes for s in snapshots)
        assert worst < HIGH_WATER + 4 * SIZE, snapshots
        assert any(s.paused_connections == 2 for s in snapshots), snapshots
        info = await t.group_info("big", "g")
        assert info.ready > 200, "the broker kept dispatching to readers that do not read"

        async def closed() -> bool:
            return (await t.server_stats()).connections == 1

        await _until(closed)  # past --write-deadline: both closed
        assert "slow consumer" in broker.log() or "bytes waiting to be read" in broker.log()
        assert "--write-deadline 3s" in broker.log()

        async def returned() -> bool:
            return (await t.group_info("big", "g")).in_flight == 0

        await _until(returned)  # their deliveries went back to the group
        sub = await t.subscribe(GroupSpec(topic="big", name="g"), prefetch=50)
        got = 0
        while got < 400:
            batch = await sub.next_batch(50, timeout=5)
            assert batch, f"only {got} of 400 messages came back"
            got += len(batch)
            await asyncio.gather(*(msg.ack() for msg in batch))
    finally:
        alive.cancel()
        for raw in stalled:
            raw.close()
        await t.close()
        await asyncio.to_thread(broker.stop)


async def test_during_a_memory_alarm_a_reader_over_high_water_is_closed_at_once(tmp_path):
    broker = BrokerProcess(tmp_path / "data", args=["--heartbeat", "1.0"])
    await asyncio.to_thread(broker.start)
    t = NativeTransport(broker.url, timeout=10.0, reconnect=False)
    await t.connect()
    await t.create_topic(TopicSpec(name="big"))
    for _ in range(10):
        await t.publish("big", [Outgoing(b"x" * SIZE) for _ in range(40)])
    await t.close()
    await asyncio.to_thread(broker.stop)
    # the same data, with a memory watermark the broker is always above: publishing is
    # refused, consuming goes on, and a consumer that does not read is not kept waiting
    broker.args = ["--heartbeat", "1.0", "--memory-high-watermark", "1000000",
                   "--write-high-water", str(HIGH_WATER), "--write-deadline", "600"]  # fmt: skip
    await asyncio.to_thread(broker.start)
    t = NativeTransport(broker.url, timeout=10.0, reconnect=False)
    await t.connect()
    raw = await RawClient.open(broker.url, limit=SIZE)
    alive = asyncio.create_task(_keep_alive([raw]))
    try:
        raw.send(c.SUBSCRIBE, 2, m.Subscribe(GroupSpec(topic="big", name="g"), 10_000))
        await raw.writer.drain()

        async def closed() -> bool:
            return (await t.server_stats()).connections == 1

        await _until(closed, timeout=20)  # long before --write-deadline
        assert "the memory alarm is raised" in broker.log()
    finally:
        alive.cancel()
        raw.close()
        await t.close()
        await asyncio.to_thread(broker.stop)
