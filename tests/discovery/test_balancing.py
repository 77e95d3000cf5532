"""Client-side balancing through the registry: an httpx transport resolving
http://<service>/ to registered HTTP instances (real uvicorn servers on loopback)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import tidings
from tidings.client.registry import Registry
from tidings.discovery import OutlierEjection, PeakEwma, RoundRobin
from tidings.discovery.http import DiscoveryTransport
from tidings.transports.memory import reset_memory_brokers

from .http_instances import instances

GOOD = 0.005  # seconds of work; over loopback on a loaded 2-core machine ~20 ms per call
SLOW = 0.2  # ~10x a good instance's observed latency
CONCURRENCY = 2


@pytest.fixture(autouse=True)
async def fresh_brokers():
    yield
    await reset_memory_brokers()


async def drive(http: httpx.AsyncClient, total: int, concurrency: int = 4) -> dict[str, int]:
    calls: dict[str, int] = {}
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            name = (await http.get("http://quotes/work")).json()["instance"]
            calls[name] = calls.get(name, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls


async def shares(balancer, total: int = 400) -> dict[str, float]:
    specs = [("good-1", GOOD, False), ("good-2", GOOD, False), ("slow", SLOW, False),
             ("failing", 0.0, True)]  # fmt: skip
    async with instances(*specs) as running, tidings.connect("memory://lb") as client:
        registry = Registry(client)
        for inst in running:
            await registry.register("quotes", inst.url, id=inst.name)
        transport = DiscoveryTransport(client, balancer=RoundRobin())
        async with httpx.AsyncClient(transport=transport) as http:
            await drive(http, 20)  # warm the connections up
            transport.balancer = balancer
            calls = await drive(http, total, CONCURRENCY)
        return {inst.name: calls.get(inst.name, 0) / total for inst in running}


async def test_p2c_sends_a_small_share_to_a_slow_and_to_a_fast_failing_instance():
    p2c = await shares(PeakEwma())
    rr = await shares(RoundRobin(ejection=OutlierEjection(consecutive=10**9)))  # plain RR
    print(f"\nshares p2c={p2c} round-robin={rr}")
    assert rr["slow"] == pytest.approx(0.25, abs=0.01)  # what the bad ones get without P2C
    assert rr["failing"] == pytest.approx(0.25, abs=0.01)
    assert p2c["slow"] < 0.12  # round-robin: 0.25
    assert p2c["failing"] < 0.05
    assert p2c["good-1"] + p2c["good-2"] > 0.9


async def test_hosts_that_name_no_service_pass_through_and_unknown_ones_fail_clearly():
    async with instances(("plain", 0.0, False)) as [inst], tidings.connect("memory://lb2") as c:
        transport = DiscoveryTransport(c)
        async with httpx.AsyncClient(transport=transport) as http:
            r = await http.get(f"{inst.url}/work")  # a real address: no lookup
            assert r.json() == {"instance": "plain"}
            with pytest.raises(httpx.ConnectError):
                await http.get("http://quotes/work")  # not registered: a plain DNS name
            await Registry(c).register("quotes", inst.url, id="one")
            transport._fetched = 0.0  # see the registration now, not after the refresh
            r = await http.get("http://quotes/work")
            assert r.json() == {"instance": "plain"}


def test_outlier_ejection_ejects_after_five_errors_growing_and_bounded():
    now = [0.0]
    ej = OutlierEjection(consecutive=5, base=30.0, max_share=0.5, clock=lambda: now[0])
    keys = ["a", "b", "c", "d"]
    assert ej.eligible(keys) == keys
    for _ in range(4):
        ej.observe("a", False)
    assert not ej.ejected("a")
    ej.observe("a", False)
    assert ej.ejected("a") and ej.eligible(keys) == ["b", "c", "d"]
    now[0] = 30.1
    assert not ej.ejected("a")
    for _ in range(5):
        ej.observe("a", False)
    now[0] += 59.9
    assert ej.ejected("a")  # ejected again: 2 x 30 s
    for _ in range(5):
        ej.observe("b", False)
    for _ in range(5):
        ej.observe("c", False)  # a third would pass the bound of half of the instances
    assert ej.ejected("b") and not ej.ejected("c")


def test_peak_ewma_sees_a_slowdown_at_once_and_a_failure_as_slow():
    lb = PeakEwma(decay=10.0)
    lb.observe("a", 0.5, True)  # a peak replaces the average at once
    assert lb.cost("a") == pytest.approx(0.5, rel=0.01)
    import time

    later = time.monotonic() + 10.0  # and fades between calls: tried again, not starved
    assert lb.cost("a", later) == pytest.approx(0.5 * 0.3679, rel=0.01)
    lb.observe("b", 0.001, False)  # a fast failure costs the penalty ...
    assert lb.cost("b") >= 0.99
    assert lb.pick(["a", "b"]) == "a"  # ... and benches it until its probe is due


def test_an_open_instance_circuit_takes_it_out_of_the_choice():
    from tidings.discovery import InstanceBreakers
    from tidings.resilience import CircuitBreaker

    breakers = InstanceBreakers(CircuitBreaker(minimum_calls=4, failure_rate=0.5, open_for=60))
    lb = RoundRobin(breakers=breakers, ejection=OutlierEjection(consecutive=10**9))
    keys = ["a", "b", "c"]
    for _ in range(4):
        lb.observe("a", 0.01, False)
    assert breakers.state("a") == "open"
    picks = {lb.pick(keys) for _ in range(30)}
    assert picks == {"b", "c"}
