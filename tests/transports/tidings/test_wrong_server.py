"""A tidings:// URL pointed at some other server fails at once and says what answered.

Before, a NATS server's INFO greeting was decoded as a frame of 1229866575 bytes ("is this a
tidings client? raise max_frame_size") and the error said "closed by the broker"; an HTTP
server's 400 reply the same. Real servers on 127.0.0.1: uvicorn, nats-server, and a silent
TCP listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import uvicorn
from tests.helpers.nats_server import free_port, nats_server, nats_url  # noqa: F401

from tidings.errors import Timeout, TransportUnavailable
from tidings.protocol.foreign import describe, protocol_of
from tidings.transports.tidings import NativeTransport


async def _asgi(scope, receive, send):  # the smallest HTTP application
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.asynccontextmanager
async def http_server():
    port = free_port()
    config = uvicorn.Config(_asgi, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _connect_error(url: str, **options) -> tuple[BaseException, float]:
    t = NativeTransport(url, **options)
    start = time.monotonic()
    with pytest.raises((TransportUnavailable, Timeout)) as info:
        await t.connect()
    await t.close()
    return info.value, time.monotonic() - start


async def test_an_http_server_is_named(caplog):
    async with http_server() as port:
        exc, took = await _connect_error(f"tidings://127.0.0.1:{port}")
    assert isinstance(exc, TransportUnavailable)
    assert str(exc).startswith(f"not a tidings broker at 127.0.0.1:{port} (it answered like HTTP")
    assert "HTTP/1.1 400" in str(exc)
    assert took < 5  # at once, not after the connect timeout
    assert "max_frame_size" not in caplog.text  # no misleading frame-size advice in the log


async def test_a_nats_server_is_named(nats_server, caplog):  # noqa: F811
    exc, took = await _connect_error(f"tidings://127.0.0.1:{nats_server.port}")
    assert isinstance(exc, TransportUnavailable)
    assert f"not a tidings broker at 127.0.0.1:{nats_server.port}" in str(exc)
    assert "it answered like NATS: 'INFO {" in str(exc)
    assert took < 5
    assert "max_frame_size" not in caplog.text


async def test_a_silent_server_is_suspected():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        exc, _ = await _connect_error(f"tidings://127.0.0.1:{port}", connect_timeout=0.5)
    finally:
        server.close()
    assert isinstance(exc, Timeout)
    assert "did not answer the tidings HELLO within 0.5s: is it a tidings broker?" in str(exc)


def test_answers_are_named():
    assert protocol_of(b"HTTP/1.0 400 Bad Request\r\n") == "HTTP"
    assert protocol_of(b'INFO {"server_id":"x"}\r\n') == "NATS"
    assert protocol_of(b"AMQP\x00\x00\x09\x01") == "AMQP (RabbitMQ)"
    assert protocol_of(b"-ERR unknown command\r\n") == "Redis"
    assert protocol_of(b"\x00\x00\x00\x05") is None
    assert "it answered b'\\x00\\x01'" in describe("h:1", b"\x00\x01")
    assert "speaks TLS" in describe("h:1", b"\x15\x03\x01\x00\x02\x02\x46")
    assert "closed the connection without answering" in describe("h:1", b"")
