"""Limits and backpressure over the wire: message and batch size, per-topic limits with
their overflow policy, and the broker-wide memory and disk alarms that refuse publishes.
(max connections: tests/server/test_config.py; a reader that stops reading:
tests/server/test_flow_control.py.)"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from tests.server.rawclient import RawClient

from tidings.errors import BadRequest, MessageTooLarge, Overloaded, StorageFull, TopicFull
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.protocol import constants, frame_bytes
from tidings.protocol import messages as m
from tidings.server import BrokerServer, ServerConfig
from tidings.transports.tidings import NativeTransport


@contextlib.asynccontextmanager
async def serving(tmp_path, **config):
    server = BrokerServer(ServerConfig(port=0, data_dir=str(tmp_path / "data"), **config))
    await server.start()
    t = NativeTransport(server.url, timeout=5.0, reconnect=False)
    await t.connect()
    try:
        yield server, t
    finally:
        await t.close()
        await server.stop()


async def test_message_and_batch_size_limits(tmp_path):
    async with serving(tmp_path, max_batch=10) as (server, t):
        await t.create_topic(TopicSpec(name="t", max_message_size=1024))
        with pytest.raises(MessageTooLarge, match=r"max_message_size of topic .t. \(1024 bytes\)"):
            await t.publish("t", [Outgoing(b"x" * 2000)])
        with pytest.raises(BadRequest, match="above this broker's limit"):
            await t.create_topic(TopicSpec(name="huge", max_message_size=64 * 1024 * 1024))
        receipts = await t.publish("t", [Outgoing(b"%d" % i) for i in range(35)])  # split
        assert [r.offset for r in receipts] == list(range(35))
        raw = await RawClient.open(server.url)
        try:
            batch = [m.WireOutgoing(b"y") for _ in range(11)]
            frame, error = await raw.request(constants.PUBLISH, 9, m.Publish("t", batch))
            assert frame.type == constants.ERROR and error.code == BadRequest.code
            assert "max batch of 10" in error.message
        finally:
            raw.close()


async def test_topic_limit_reject_policy(tmp_path):
    async with serving(tmp_path) as (_, t):
        spec = TopicSpec(name="capped", max_messages=5, overflow="reject")
        await t.create_topic(spec)
        await t.publish("capped", [Outgoing(b"%d" % i) for i in range(5)])
        with pytest.raises(TopicFull, match="max_messages of 5"):
            await t.publish("capped", [Outgoing(b"too many")])
        await t.create_topic(TopicSpec(name="bytes", max_bytes=4096, overflow="reject"))
        with pytest.raises(TopicFull, match="max_bytes"):
            for _ in range(10):
                await t.publish("bytes", [Outgoing(b"z" * 1000)])


async def test_topic_limit_drop_oldest_policy(tmp_path):
    async with serving(tmp_path) as (_, t):
        await t.create_topic(TopicSpec(name="ring", max_messages=5, overflow="drop-oldest"))
        for i in range(12):
            await t.publish("ring", [Outgoing(b"%d" % i)])
        info = await t.topic_info("ring")
        assert info.messages == 5
        sub = await t.subscribe(GroupSpec(topic="ring", name="g", auto_ack=True))
        got = [msg.body for msg in await sub.next_batch(100, timeout=2)]
        assert got == [b"%d" % i for i in range(7, 12)]


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_memory_alarm_refuses_publishes_and_clears(tmp_path):
    async with serving(tmp_path, memory_high_watermark=2.0) as (server, t):  # 2 bytes: raised
        await t.create_topic(TopicSpec(name="t"))
        with pytest.raises(Overloaded, match="above its high watermark"):
            await t.publish("t", [Outgoing(b"x")])
        assert await t.ping() < 1  # everything else goes on
        server.alarms.memory_limit = 1 << 50  # consumers caught up
        await _wait_for(lambda: server.alarms.memory is None)
        [receipt] = await t.publish("t", [Outgoing(b"x")])
        assert receipt.offset == 0


async def test_disk_alarm_refuses_publishes_and_clears(tmp_path):
    async with serving(tmp_path, disk_free_limit=1 << 60) as (server, t):  # never that much
        await t.create_topic(TopicSpec(name="t"))
        with pytest.raises(StorageFull, match="below its --disk-free-limit"):
            await t.publish("t", [Outgoing(b"x")])
        sub = await t.subscribe(GroupSpec(topic="t", name="g"))  # consuming still works
        server.alarms.disk_free_limit = 1  # space is back
        await _wait_for(lambda: server.alarms.disk is None)
        await t.publish("t", [Outgoing(b"after")])
        assert (await sub.next(timeout=5)).body == b"after"


async def test_handshake_timeout_closes_a_slowloris(tmp_path):
    async with serving(tmp_path, handshake_timeout=1.0, heartbeat=0.5) as (server, t):
        host, port = server.address
        reader, writer = await asyncio.open_connection(host, port)
        hello = frame_bytes(
            constants.HELLO, 1, m.Hello(magic=constants.MAGIC, min_version=1, max_version=1)
        )
        closed = False
        for byte in hello[:-1]:  # one byte every 0.2 s: never a complete HELLO
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait_for(reader.read(1 << 16), 0.2)
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
                break
            closed = True  # an ERROR (handshake timeout) or EOF
            break
        assert closed, "a client that never completes HELLO was kept"
        writer.close()
        assert await t.ping() < 1


async def test_frame_timeout_closes_a_client_that_trickles_one_frame(tmp_path):
    """After the handshake, a frame sent a byte at a time keeps the connection 'alive' (bytes
    keep coming) but must arrive whole within --frame-timeout, or the broker lets it go."""
    async with serving(tmp_path, frame_timeout=1.0, heartbeat=0.5) as (server, t):
        raw = await RawClient.open(server.url)
        publish = frame_bytes(constants.PUBLISH, 7, m.Publish("t", [m.WireOutgoing(b"x" * 64)]))
        loop = asyncio.get_running_loop()
        started = loop.time()
        closed_after = None
        for byte in publish[:-1]:  # one byte every 0.1 s: never a whole frame
            try:
                raw.writer.write(bytes([byte]))
                await raw.writer.drain()
                data = await asyncio.wait_for(raw.reader.read(1 << 16), 0.1)
            except TimeoutError:
                continue
            except ConnectionError:
                data = b""
            if not data or b"frame did not arrive whole" in data:
                closed_after = loop.time() - started
                break
        assert closed_after is not None, "a client trickling one frame forever was kept"
        assert 1.0 <= closed_after < 5.0
        raw.writer.close()
        assert await t.ping() < 1  # the broker serves everyone else


async def test_a_client_sending_whole_frames_slowly_is_kept(tmp_path):
    """The frame timeout is per frame: a client sending small whole frames now and then,
    with a partial one in between, is not cut off."""
    async with serving(tmp_path, frame_timeout=1.0, heartbeat=0.5) as (server, _t):
        raw = await RawClient.open(server.url)
        ping = frame_bytes(constants.PING, 9, m.Ping())
        for _ in range(6):  # 2.4 s in all, each frame split over 0.4 s
            raw.writer.write(ping[:3])
            await raw.writer.drain()
            await asyncio.sleep(0.4)
            raw.writer.write(ping[3:])
            await raw.writer.drain()
            reply = await asyncio.wait_for(raw.reader.read(1 << 16), 2)
            assert reply, "the broker closed a client that sends whole frames"
        raw.writer.close()


async def test_a_redrive_is_refused_while_the_disk_alarm_is_raised(tmp_path):
    async with serving(tmp_path) as (server, t):
        await t.create_topic(TopicSpec(name="t"))
        await t.publish("t", [Outgoing(b"poison")])
        sub = await t.subscribe(GroupSpec(topic="t", name="g", max_deliveries=1))
        await (await sub.next(timeout=5)).reject("bad")
        await sub.close()
        await _wait_for(lambda: server.runtime.broker.dead_letters("t", "g") != [])
        server.alarms.disk_free_limit = 1 << 60  # never that much free
        await _wait_for(lambda: server.alarms.disk is not None, timeout=15)
        with pytest.raises(StorageFull, match="below its --disk-free-limit"):
            await t.redrive("t", "g")
        assert len(await t.dead_letters("t", "g")) == 1  # listing still works; nothing moved
        server.alarms.disk_free_limit = 1
        await _wait_for(lambda: server.alarms.disk is None, timeout=15)
        assert len(await t.redrive("t", "g")) == 1
