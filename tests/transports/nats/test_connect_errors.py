"""nats:// connects fail at once with an error that says what is wrong, and a clean close logs
no "disconnected; reconnecting" warning.

Before, a nats:// URL at a port nobody listens on retried three times, one at a port of
another server (a silent one) took three connect timeouts (16.7 s), both ending in "no NATS
server reachable"; every clean close() logged a WARNING that the connection was reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from tests.helpers.nats_server import free_port

from tidings.errors import Timeout, TransportUnavailable
from tidings.transports.nats import NatsTransport


async def test_a_dead_port_fails_at_once_saying_refused():
    port = free_port()
    t = NatsTransport(f"nats://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(TransportUnavailable) as info:
        await t.connect()
    took = time.monotonic() - start
    assert str(info.value).startswith(f"cannot connect to nats://127.0.0.1:{port}: connection")
    assert "Is nats-server running there" in str(info.value)
    assert took < 0.4  # one attempt: no reconnect loop with its 0.5 s waits


async def test_credentials_stay_out_of_the_message():
    port = free_port()
    t = NatsTransport(f"nats://alice:s3cret@127.0.0.1:{port},127.0.0.1:{free_port()}")
    with pytest.raises(TransportUnavailable) as info:
        await t.connect()
    assert "s3cret" not in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


async def test_a_silent_server_is_one_connect_timeout_and_named():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t = NatsTransport(f"nats://127.0.0.1:{port}", connect_timeout=0.5)
    start = time.monotonic()
    try:
        with pytest.raises(Timeout) as info:
            await t.connect()
    finally:
        server.close()
    took = time.monotonic() - start
    assert "did not greet with NATS INFO within 0.5s: is it a NATS server?" in str(info.value)
    assert took < 1.4  # once, not three times the connect timeout


async def test_a_server_answering_something_else_is_not_nats():
    async def http_like(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_like, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransportUnavailable) as info:
            await NatsTransport(f"nats://127.0.0.1:{port}").connect()
    finally:
        server.close()
    assert str(info.value).startswith(f"not a NATS server at 127.0.0.1:{port}")


async def test_a_clean_close_logs_no_reconnect_warning(nats_url, caplog):
    caplog.set_level(logging.DEBUG, logger="tidings.transports.nats")
    t = NatsTransport(nats_url)
    await t.connect()
    await t.close()
    await asyncio.sleep(0.1)  # nats-py runs its callbacks in tasks
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]
