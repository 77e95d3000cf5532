"""The registry on a real broker with real service processes: registration, SIGKILL expiry,
a broker restart, a rolling restart, readiness during drain."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

from tests.helpers.nats_server import free_port

import tidings
from tidings.client.registry import Registry

BEAT = "0.5"  # seconds; expiry 1.5 s


async def wait_for(predicate, timeout: float = 30.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(every)


def pids(instances, name=None) -> set[int]:
    return {int(i.metadata["tidings.pid"]) for i in instances if name in (None, i.name)}


async def test_three_services_register_and_a_killed_one_expires(broker, spawn):
    procs = {
        n: spawn(n, broker.url, "--heartbeat", BEAT) for n in ("orders", "inventory", "pricing")
    }
    async with tidings.connect(broker.url) as client:
        registry = Registry(client)

        async def all_three():
            found = await registry.instances()
            return found if {i.name for i in found} == set(procs) else None

        found = await all_three() or await wait_for(all_three)
        for inst in found:
            assert inst.sources == {"registry", "srv"}
            assert inst.expires - inst.last_seen == 1.5
        procs["pricing"].kill()
        killed = time.time()

        async def pricing_gone():
            return "pricing" not in {i.name for i in await registry.instances(ask=False)}

        await wait_for(pricing_gone)
        view = await registry.instances()
        assert {i.name for i in view} == {"orders", "inventory"}
        # nothing listed it past its last beat + expiry (+ the time a read takes)
        assert time.time() - killed < 30


async def test_a_restarted_broker_still_knows_the_registry(broker, spawn):
    spawn("pricing", broker.url, "--heartbeat", "10")
    async with tidings.connect(broker.url) as client:
        registry = Registry(client)
        before = await wait_for(lambda: registry.instances(ask=False))
    broker.restart()
    restarted = time.time()
    async with tidings.connect(broker.url) as client:
        after = await Registry(client).instances(ask=False)
    assert [i.id for i in after] == [i.id for i in before]
    assert after[0].last_seen < restarted  # read back from disk, not a new beat


async def test_a_rolling_restart_keeps_discovery_answers_right(broker, spawn):
    env1, env2 = {"APP_VERSION": "1.0.0"}, {"APP_VERSION": "2.0.0"}
    old = [spawn("pricing", broker.url, "--heartbeat", BEAT, env=env1) for _ in range(2)]
    running = {p.proc.pid for p in old}
    async with tidings.connect(broker.url) as client:

        async def exactly(expected: set[int]):
            try:
                found = await client.discover("pricing")
            except tidings.NoInstance:
                return None
            return found if pids(found) == expected else None

        await wait_for(lambda: exactly(running))
        for proc in old:
            new = spawn("pricing", broker.url, "--heartbeat", BEAT, env=env2)
            running.add(new.proc.pid)
            await wait_for(lambda: exactly(running))
            assert proc.terminate() == 0
            running.discard(proc.proc.pid)
            # deregistered on graceful stop: gone from the very next answer
            found = await client.discover("pricing")
            assert pids(found) == running
        assert {i.version for i in await client.discover("pricing")} == {"2.0.0"}
        assert await client.discover("pricing", version="2")


def http_status(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


async def test_readiness_flips_during_drain(broker, spawn):
    port = free_port()
    proc = spawn("drainer", broker.url, "--health-port", str(port), env={"APP_GRACE": "20"})
    readyz, livez = f"http://127.0.0.1:{port}/readyz", f"http://127.0.0.1:{port}/livez"

    async def ready():
        return (await asyncio.to_thread(http_status, readyz))[0] == 200

    await wait_for(ready)
    assert (await asyncio.to_thread(http_status, livez))[0] == 200
    async with tidings.connect(broker.url) as client:
        registry = Registry(client)
        assert len(await registry.ping("drainer")) == 1
        await client.publish("drain.jobs", json.dumps({"seconds": 4}).encode())

        async def in_flight():
            info = await client.group_info("drain.jobs", "drainer")
            return info.in_flight == 1

        await wait_for(in_flight)
        proc.proc.send_signal(15)

        async def draining():
            status, body = await asyncio.to_thread(http_status, readyz)
            return (status, body) if status == 503 else None

        _, body = await wait_for(draining, every=0.05)
        assert proc.proc.poll() is None, "the instance should still be draining"
        assert any("draining" in p for p in body["problems"])
        assert await registry.ping("drainer") == []
        assert proc.proc.wait(30) == 0
        info = await client.group_info("drain.jobs", "drainer")
        assert info.in_flight == 0 and info.ready == 0  # the job finished during the drain


async def test_a_versioned_request_reaches_only_v2_instances(broker, spawn):
    for version in ("1.3.0", "2.0.1", "2.2.0"):
        spawn("pricing", broker.url, "--heartbeat", BEAT, env={"APP_VERSION": version})
    caller = tidings.Service("checkout", broker.url)
    async with caller.running():

        async def three():
            found = await Registry(caller.client).instances("pricing")
            return len([i for i in found if i.ready]) == 3

        await wait_for(three)
        served = set()
        for i in range(30):
            reply = await caller.request("pricing.quote", {"sku": f"s{i}"}, version="2", timeout=20)
            served.add(reply["version"])
        assert served <= {"2.0.1", "2.2.0"} and served  # never the 1.x instance
        unversioned = set()
        for i in range(30):
            unversioned.add(
                (await caller.request("pricing.quote", {"sku": f"u{i}"}, timeout=20))["version"]
            )
        assert "1.3.0" in unversioned  # unversioned requests go to any instance
        try:
            await caller.request("pricing.quote", {"sku": "x"}, version="3", timeout=20)
        except tidings.NoInstance as exc:
            assert "version 3" in str(exc)
        else:
            raise AssertionError("a request for version 3 must fail at once")
