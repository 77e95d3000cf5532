"""The nats-server test helpers: missing binary handling, restart, cluster readiness."""

from __future__ import annotations

import asyncio

import pytest
from tests.helpers import nats_server as helpers

from tidings.errors import TransportUnavailable
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.nats import NatsTransport


def test_missing_server_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setenv("NATS_SERVER", "/nonexistent/nats-server")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        helpers.require_nats_server()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        helpers.require_nats_server()


async def test_messages_survive_a_server_restart(fresh_nats_server, name):
    topic = name("durable")
    t = NatsTransport(fresh_nats_server.url)
    await t.connect()
    try:
        await t.create_topic(TopicSpec(name=topic))
        await t.publish(topic, [Outgoing(b"kept")])
        fresh_nats_server.kill()  # SIGKILL: no clean shutdown
        fresh_nats_server.start()
        for _ in range(100):  # the client notices and reconnects by itself
            if t.nc.stats["reconnects"] and t.nc.is_connected:
                break
            await asyncio.sleep(0.05)
        sub = await t.subscribe(GroupSpec(topic=topic, name="g"))
        m = await sub.next(timeout=10)
        assert m.body == b"kept"
        await m.ack()
    finally:
        await t.close()


async def test_clear_errors_without_a_server_or_without_jetstream(tmp_path):
    with pytest.raises(TransportUnavailable, match="connection refused"):
        await NatsTransport(f"nats://127.0.0.1:{helpers.free_port()}").connect()
    plain = helpers.start_server(tmp_path / "plain", jetstream=False)
    try:
        with pytest.raises(TransportUnavailable, match="-js"):
            await NatsTransport(plain.url).connect()
    finally:
        plain.stop()
