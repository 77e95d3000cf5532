"""The handshake: version negotiation errors, what must come first, silent connections."""

from __future__ import annotations

import asyncio

import pytest

from tidings.errors import VersionMismatch
from tidings.protocol import FrameDecoder, constants, decode_body, frame_bytes
from tidings.protocol import messages as m
from tidings.transports.tidings import NativeTransport

from .rawclient import RawClient


async def _expect_error_then_close(client: RawClient, code: int) -> str:
    frame = await client.next_frame()
    assert frame.type == constants.ERROR and frame.request_id == 1
    error = decode_body(frame)
    assert error.code == code, error
    assert await client.closed_by_peer()
    return error.message


async def test_a_newer_client_gets_version_mismatch(broker):
    client = await RawClient.open(broker.url, handshake=False)
    client.send(constants.HELLO, 1, m.Hello(magic=constants.MAGIC, min_version=7, max_version=9))
    message = await _expect_error_then_close(client, VersionMismatch.code)
    assert "upgrade the broker" in message


async def test_the_native_transport_reports_a_version_mismatch(broker, monkeypatch):
    monkeypatch.setattr(constants, "MIN_PROTOCOL_VERSION", 7)
    monkeypatch.setattr(constants, "PROTOCOL_VERSION", 9)
    with pytest.raises(VersionMismatch, match="upgrade the broker"):
        await NativeTransport(broker.url, reconnect=False).connect()


async def test_bad_magic_and_missing_hello(broker):
    client = await RawClient.open(broker.url, handshake=False)
    client.send(constants.HELLO, 1, m.Hello(magic="amqp", min_version=1, max_version=1))
    assert "not a tidings client" in await _expect_error_then_close(client, 403)
    client = await RawClient.open(broker.url, handshake=False)
    client.send(constants.PING, 1, m.Ping(1))
    assert "expected HELLO" in await _expect_error_then_close(client, 400)


async def test_welcome_carries_the_limits(broker):
    client = await RawClient.open(broker.url, handshake=False)
    frame, welcome = await client.request(
        constants.HELLO, 3, m.Hello(magic=constants.MAGIC, min_version=1, max_version=5)
    )
    assert frame.request_id == 3 and welcome.version == constants.PROTOCOL_VERSION
    assert welcome.heartbeat == 1.0 and welcome.max_frame_size >= welcome.max_message_size
    assert "ordered" in welcome.capabilities
    client.close()


async def test_silent_connections_close_while_idle_clients_stay(broker, transport):
    silent = await RawClient.open(broker.url)  # says HELLO, then nothing more
    closed = asyncio.create_task(silent.closed_by_peer(timeout=8.0))
    await asyncio.sleep(4.0)  # > 3 heartbeat intervals without a request from either
    assert await closed  # the raw client never answered heartbeats: dropped
    assert await transport.ping() < 1  # the transport's heartbeats kept it alive


async def test_native_transport_raises_version_mismatch():
    """A client facing an older broker that does not speak its version gets the error."""

    async def old_broker(reader, writer):
        decoder = FrameDecoder(constants.CLIENT_TO_SERVER)
        frames = decoder.feed(await reader.read(1 << 16))
        error = m.Error(code=404, message="the client speaks 1..1 but this broker only 0..0")
        writer.write(frame_bytes(constants.ERROR, frames[0].request_id, error))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(old_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(VersionMismatch, match="this broker only"):
            await NativeTransport(f"tidings://127.0.0.1:{port}").connect()
    finally:
        server.close()
