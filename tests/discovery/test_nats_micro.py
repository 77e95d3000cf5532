"""NATS micro interop on a real nats-server, both ways: a tidings service answers $SRV as
nats.micro services do (parsed by nats-py's own micro types), and a nats.micro service
written with nats-py is found by tidings."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats import micro
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats

import tidings
from tidings.client.registry import Registry


async def gather(nc, subject: str, wait: float = 1.0) -> list[dict]:
    inbox = nc.new_inbox()
    got: list[dict] = []

    async def on(msg):
        got.append(json.loads(msg.data))

    sub = await nc.subscribe(inbox, cb=on)
    await nc.publish(subject, b"", reply=inbox)
    await asyncio.sleep(wait)
    await sub.unsubscribe()
    return got


async def test_a_tidings_service_answers_nats_micro_discovery(nats_url):
    svc = tidings.Service("tquote", nats_url, version="2.3.1", description="quotes")

    @svc.reply("tquote.get")
    async def get(q: dict) -> dict:
        return {"ok": True}

    async with svc.running():
        nc = await nats.connect(nats_url)
        try:
            await svc.request("tquote.get", {"a": 1}, timeout=10)
            pings = [d for d in await gather(nc, "$SRV.PING") if d.get("name") == "tquote"]
            assert len(pings) == 1
            ping = ServicePing.from_dict(pings[0])
            assert (ping.name, ping.version, ping.id) == (
                "tquote",
                "2.3.1",
                svc.registration.instance,
            )
            [raw] = await gather(nc, "$SRV.INFO.tquote")
            info = ServiceInfo.from_dict(raw)
            assert info.description == "quotes"
            assert [(e.name, e.subject, e.queue_group) for e in info.endpoints] == [
                ("get", "tquote.get", "tquote")
            ]
            [raw] = await gather(nc, f"$SRV.STATS.tquote.{svc.registration.instance}")
            stats = ServiceStats.from_dict(raw)
            assert stats.endpoints[0].num_requests == 1
            assert stats.endpoints[0].num_errors == 0
            assert stats.endpoints[0].processing_time > 0
        finally:
            await nc.close()


async def test_a_nats_micro_service_is_discovered_by_tidings(nats_url):
    nc = await nats.connect(nats_url)
    service = await micro.add_service(
        nc, name="legacy-echo", version="1.4.0", description="echo", metadata={"team": "core"}
    )

    async def echo(req) -> None:
        await req.respond(req.data)

    await service.add_endpoint(name="echo", subject="legacy.echo", handler=echo)
    try:
        reply = await nc.request("legacy.echo", b"hi", timeout=5)
        assert reply.data == b"hi"
        async with tidings.connect(nats_url) as client:
            found = await client.discover("legacy-echo", timeout=1.0)
            assert len(found) == 1
            inst = found[0]
            assert (inst.version, inst.description) == ("1.4.0", "echo")
            assert inst.metadata["team"] == "core"
            assert inst.sources == {"srv"}
            [ep] = inst.endpoints
            assert (ep.name, ep.subject) == ("echo", "legacy.echo")
            assert ep.num_requests == 1
            pings = await Registry(client, srv_timeout=1.0).ping("legacy-echo")
            assert [p["id"] for p in pings] == [inst.id]
    finally:
        await service.stop()
        await nc.close()


@pytest.mark.parametrize("verb", ["PING", "INFO", "STATS"])
async def test_tidings_and_nats_micro_answer_the_same_subject_levels(nats_url, verb):
    svc = tidings.Service("levels", nats_url)
    async with svc.running():
        nc = await nats.connect(nats_url)
        try:
            iid = svc.registration.instance
            for subject in (f"$SRV.{verb}", f"$SRV.{verb}.levels", f"$SRV.{verb}.levels.{iid}"):
                answers = [d for d in await gather(nc, subject, 0.5) if d.get("id") == iid]
                assert len(answers) == 1, subject
            assert await gather(nc, f"$SRV.{verb}.levels.someone-else", 0.5) == []
        finally:
            await nc.close()


async def test_a_versioned_request_on_nats_reaches_only_that_major(nats_url):
    v1 = tidings.Service("nversions", nats_url, version="1.0.0")
    v2 = tidings.Service("nversions", nats_url, version="2.0.0")
    caller = tidings.Service("ncaller", nats_url)

    @v1.reply("nversions.get")
    async def get_v1(q: dict) -> dict:
        return {"v": 1}

    @v2.reply("nversions.get")
    async def get_v2(q: dict) -> dict:
        return {"v": 2}

    async with v1.running(), v2.running(), caller.running():
        got = {(await caller.request("nversions.get", {}, version="2", timeout=10))["v"]
               for _ in range(10)}  # fmt: skip
        assert got == {2}
        with pytest.raises(tidings.NoInstance):
            await caller.request("nversions.get", {}, version="7", timeout=10)
