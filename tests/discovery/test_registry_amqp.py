"""The registry view on a real RabbitMQ (``amqp://``), which keeps no history for a new group:
heartbeats cannot be read back, so a view asks the live instances over ``$SRV`` and sees a
service started before it at once, not after the service's next heartbeat."""

from __future__ import annotations

import secrets
import time

import pytest

import tidings
from tidings.client.registry import Registry
from tidings.transports.capabilities import replays_history

pytestmark = pytest.mark.timeout(120)

BOUND = 5.0  # seconds: one $SRV round trip (0.5 s) with room for a loaded machine


async def test_a_service_started_before_the_view_is_seen_within_one_round_trip(rabbitmq_server):
    name = f"pricing-{secrets.token_hex(3)}"
    # a heartbeat far longer than the bound: only an answer to the view's question can count
    svc = tidings.Service(name, url=rabbitmq_server.url, heartbeat=600.0)

    @svc.reply(f"{name}.quote")
    async def quote(body: dict) -> dict:
        return body

    async with svc.running(), tidings.connect(rabbitmq_server.url) as client:
        assert not replays_history(client.transport)
        for _ in range(2):  # every view, not only the first reader of the topic
            started = time.monotonic()
            found = await Registry(client).instances(name, ask=False)
            took = time.monotonic() - started
            assert [i.name for i in found] == [name], found
            assert took < BOUND, f"the view took {took:.1f} s"
            [inst] = found
            assert inst.ready is True and inst.answering
            assert [e.topic for e in inst.endpoints] == [f"{name}.quote"]


async def test_a_stopped_service_leaves_the_view(rabbitmq_server):
    name = f"stock-{secrets.token_hex(3)}"
    svc = tidings.Service(name, url=rabbitmq_server.url, heartbeat=600.0)

    @svc.reply(f"{name}.level")
    async def level(body: dict) -> dict:
        return body

    async with tidings.connect(rabbitmq_server.url) as client:
        async with svc.running():
            assert [i.name for i in await Registry(client).instances(name, ask=False)] == [name]
        assert await Registry(client).instances(name, ask=False) == []
