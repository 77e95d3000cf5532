"""The test kit itself: the pytest fixture, waiting helpers and clear failures."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings.errors import Timeout
from tidings.testing import ServiceKit, payloads
from tidings.testing.plugin import tidings_kit  # noqa: F401  (the fixture)


async def test_fixture_starts_and_stops_services(tidings_kit):  # noqa: F811
    svc = tidings.Service("fixture")

    @svc.on("greetings")
    async def greet(payload: dict) -> None: ...

    kit = await tidings_kit(svc)
    await kit.publish("greetings", {"hello": "world"})
    records = await kit.handled("greetings")
    assert payloads(records) == [{"hello": "world"}]
    assert svc.client is not None


async def test_waiting_fails_with_a_clear_message():
    async with ServiceKit() as kit:
        with pytest.raises(Timeout, match="topic=nothing"):
            await kit.handled("nothing", timeout=0.05)
        with pytest.raises(RuntimeError, match="clock=True"):
            await kit.advance(1)
        with pytest.raises(Timeout, match="dead letter"):
            await kit.dead_letters("nothing", "nobody", timeout=0.05)


async def test_fake_clock_controls_delayed_messages():
    svc = tidings.Service("later")

    @svc.on("reminders")
    async def remind(payload: dict) -> None: ...

    async with ServiceKit(svc, clock=True) as kit:
        await kit.publish("reminders", {"n": 1}, delay=3600)
        assert (await kit.client.group_info("reminders", "later")).delayed == 1
        await kit.advance(3600)
        [done] = await kit.handled("reminders")
        assert done.ctx.payload == {"n": 1}


async def test_kits_are_isolated():
    async with ServiceKit() as a, ServiceKit() as b:
        await a.client.create_topic("only-in-a")
        assert "only-in-a" not in [t.name for t in await b.client.list_topics()]


async def test_service_url_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("TIDINGS_URL", "memory://from-env")
    producer, consumer = tidings.Service("producer"), tidings.Service("consumer")
    got = []

    @consumer.on("env.events")
    async def handle(payload: dict) -> None:
        got.append(payload)
        done.set()

    done = asyncio.Event()
    async with consumer.running():
        await producer.publish("env.events", {"n": 1})
        await asyncio.wait_for(done.wait(), 5)
        await producer.stop()
    assert got == [{"n": 1}] and consumer.client is None
