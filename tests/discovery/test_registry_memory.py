"""Registration and $SRV discovery on memory:// (the in-process broker core)."""

from __future__ import annotations

import asyncio

import pydantic
import pytest

import tidings
from tidings.client.registry import Registry
from tidings.transports.memory import reset_memory_brokers


class Quote(pydantic.BaseModel):
    sku: str


class Price(pydantic.BaseModel):
    cents: int


@pytest.fixture(autouse=True)
async def fresh_brokers():
    yield
    await reset_memory_brokers()


def pricing(url: str, version: str = "1.2.0", **options) -> tidings.Service:
    svc = tidings.Service("pricing", url, version=version, **options)

    @svc.reply("pricing.quote")
    async def quote(q: Quote) -> Price:
        if q.sku == "bad":
            raise ValueError("no such sku")
        return Price(cents=100 * int(version.split(".")[0]))

    return svc


async def test_instances_answer_ping_info_and_stats_in_the_micro_shapes():
    url = "memory://srv"
    a, b = pricing(url), pricing(url)
    async with a.running(), b.running(), tidings.connect(url) as client:
        registry = Registry(client)
        pings = await registry.ask("PING")
        assert sorted(p["id"] for p in pings) == sorted(
            [a.registration.instance, b.registration.instance]
        )
        assert {p["type"] for p in pings} == {"io.nats.micro.v1.ping_response"}
        only_a = await registry.ask("INFO", "pricing", a.registration.instance)
        assert [d["id"] for d in only_a] == [a.registration.instance]
        endpoint = only_a[0]["endpoints"][0]
        assert endpoint["subject"] == "pricing.quote"
        assert endpoint["queue_group"] == "pricing"
        assert endpoint["metadata"]["tidings.kind"] == "request"
        assert "sku" in endpoint["metadata"]["tidings.schema"]
        assert await registry.ask("PING", "nobody") == []

        await a.request("pricing.quote", Quote(sku="x"), returns=Price)
        with pytest.raises(tidings.RemoteError):
            await a.request("pricing.quote", Quote(sku="bad"), returns=Price)
        stats = await registry.ask("STATS", "pricing")
        assert len(stats) == 2
        assert sum(s["endpoints"][0]["num_requests"] for s in stats) == 2
        assert sum(s["endpoints"][0]["num_errors"] for s in stats) == 1
        errors = [s["endpoints"][0]["last_error"] for s in stats]
        assert any("no such sku" in e for e in errors)
        assert all(s["started"].endswith("Z") for s in stats)


async def test_services_lists_instances_and_a_graceful_stop_deregisters_at_once():
    url = "memory://list"
    a, b = pricing(url, "1.2.0"), pricing(url, "2.0.0")
    async with tidings.connect(url) as client:
        async with a.running(), b.running():
            views = await client.services()
            assert [v.name for v in views] == ["pricing"]
            assert views[0].versions == ["1.2.0", "2.0.0"]
            assert all(i.ready and "registry" in i.sources for i in views[0].instances)
            found = await client.discover("pricing", version="2")
            assert [i.version for i in found] == ["2.0.0"]
        # stopped gracefully: a "down" record, gone without waiting for the expiry
        assert await client.services() == []
        with pytest.raises(tidings.NoInstance, match="pricing"):
            await client.discover("pricing")


async def test_a_versioned_request_reaches_only_that_major_and_fails_clearly_without_one():
    url = "memory://versions"
    v1, v2 = pricing(url, "1.4.0"), pricing(url, "2.1.0")
    caller = tidings.Service("caller", url)
    async with v1.running(), v2.running(), caller.running():
        got = {(await caller.request("pricing.quote", Quote(sku="a"), returns=Price,
                                     version="2")).cents for _ in range(10)}  # fmt: skip
        assert got == {200}
        assert v1.registration.stats.endpoint("quote").calls == 0
        with pytest.raises(tidings.NoInstance, match="version 3"):
            await caller.request("pricing.quote", Quote(sku="a"), version="3")


async def test_a_silent_instance_leaves_the_registry_after_its_expiry():
    url = "memory://expiry"
    svc = pricing(url, heartbeat=0.2)
    async with tidings.connect(url) as client:
        await svc.start()
        registry = Registry(client)
        assert [i.name for i in await registry.instances(ask=False)] == ["pricing"]
        # a crash: the beats stop and nothing says "down"
        agent = svc.registration
        agent._beats.cancel()
        agent._beats = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await registry.instances(ask=False):
            assert loop.time() < deadline, "the silent instance never expired"
            await asyncio.sleep(0.1)
        await svc.stop()


async def test_third_party_registration_by_name():
    url = "memory://external"
    async with tidings.connect(url) as client:
        registry = Registry(client)
        await registry.register("legacy-billing", "http://127.0.0.1:9", version="3.0.0")
        found = await client.discover("legacy-billing")
        assert [(i.url, i.version) for i in found] == [("http://127.0.0.1:9", "3.0.0")]
        await registry.deregister("legacy-billing", "http://127.0.0.1:9")
        assert await client.services() == []


async def test_readiness_checks_gate_ping():
    url = "memory://health"
    svc = pricing(url)
    healthy = True

    @svc.health_check(timeout=0.5)
    async def database() -> bool:
        return healthy

    async with svc.running(), tidings.connect(url) as client:
        registry = Registry(client)
        assert len(await registry.ping("pricing")) == 1
        healthy = False
        assert await registry.ping("pricing") == []
        assert len(await registry.ask("INFO", "pricing")) == 1  # still there, not ready


async def test_groups_left_by_killed_instances_are_collected_by_the_next_start():
    from tidings.client.registry import SRV_TOPIC

    url = "memory://orphans"
    live = pricing(url)
    async with live.running(), tidings.connect(url) as client:
        # what a SIGKILLed instance leaves: its _srv group, no member, no heartbeat
        sub = await client.subscribe(SRV_TOPIC, "_srv.deadbeef", start="latest", auto_ack=True)
        await sub.close()
        groups = {g.name for g in (await client.topic_info(SRV_TOPIC)).groups}
        assert "_srv.deadbeef" in groups
        async with pricing(url).running():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while "_srv.deadbeef" in {g.name for g in (await client.topic_info(SRV_TOPIC)).groups}:
                assert loop.time() < deadline, "the orphaned group was never collected"
                await asyncio.sleep(0.05)
            names = {g.name for g in (await client.topic_info(SRV_TOPIC)).groups}
            assert f"_srv.{live.registration.instance}" in names  # the live one stays
