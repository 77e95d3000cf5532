"""Running handlers: lease auto-extension, hard timeouts, concurrency, ordered key lanes and
graceful shutdown."""

from __future__ import annotations

import asyncio
import json

import tidings
from tidings.errors import Timeout
from tidings.testing import ServiceKit


async def test_long_handler_keeps_its_lease():
    """A handler running 4 leases long is never redelivered: its lease is extended."""
    svc = tidings.Service("slow")
    calls = []

    @svc.on("work", lease=0.1)
    async def work(payload: dict, ctx: tidings.Context) -> None:
        calls.append(ctx.delivery_count)
        await asyncio.sleep(0.4)  # the work itself, not synchronisation

    async with ServiceKit(svc) as kit:
        await kit.publish("work", {"n": 1})
        [done] = await kit.handled("work")
        assert done.outcome == "ok" and calls == [1]
        info = await kit.client.group_info("work", "slow")
        assert info.in_flight == 0 and info.ready == 0 and info.lag == 0


async def test_handler_past_its_hard_timeout_is_cancelled_and_nacked():
    svc = tidings.Service("stuck", backoff=tidings.Backoff(initial=0))
    release = asyncio.Event()
    cancelled = []

    @svc.on("jobs", timeout=0.1)
    async def job(payload: dict, ctx: tidings.Context) -> None:
        if ctx.delivery_count == 1:
            try:
                await release.wait()  # hangs forever
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

    async with ServiceKit(svc) as kit:
        await kit.publish("jobs", {"n": 1})
        first, second = await kit.handled("jobs", count=2)
    assert cancelled == [True]
    assert first.outcome == "error" and isinstance(first.error, Timeout)
    assert "timeout of 0.1s" in str(first.error)
    assert second.outcome == "ok" and second.ctx.delivery_count == 2


async def test_concurrency_runs_handlers_in_parallel():
    svc = tidings.Service("parallel")
    barrier = asyncio.Barrier(4)

    @svc.on("tasks", concurrency=4)
    async def task(payload: dict) -> None:
        async with asyncio.timeout(5):
            await barrier.wait()  # passes only when 4 handlers run at once

    async with ServiceKit(svc) as kit:
        for i in range(4):
            await kit.publish("tasks", {"i": i})
        records = await kit.handled("tasks", count=4)
    assert all(r.outcome == "ok" for r in records)


async def test_ordered_mode_keeps_key_order_and_runs_keys_in_parallel():
    svc = tidings.Service("ledger", backoff=tidings.Backoff(initial=0.01, jitter=0))
    svc.topic("accounts", partitions=1)
    log: list[tuple[str, int]] = []
    b_started = asyncio.Event()
    failed_once = set()

    @svc.on("accounts", mode="ordered", concurrency=4)
    async def apply(entry: dict, ctx: tidings.Context) -> None:
        key, seq = entry["account"], entry["seq"]
        if key == "b":
            b_started.set()
        if (key, seq) == ("a", 0):
            async with asyncio.timeout(5):
                await b_started.wait()  # only possible if key b runs while a is busy
        if (key, seq) == ("a", 1) and (key, seq) not in failed_once:
            failed_once.add((key, seq))
            raise RuntimeError("transient")  # retried in place: a/2 must wait for it
        log.append((key, seq))

    async with ServiceKit(svc) as kit:
        for seq in range(3):
            for key in ("a", "b"):
                await kit.publish("accounts", {"account": key, "seq": seq}, key=key)
        await kit.handled("accounts", outcome="ok", count=6)
    assert [s for k, s in log if k == "a"] == [0, 1, 2]
    assert [s for k, s in log if k == "b"] == [0, 1, 2]
    assert log.index(("b", 0)) < log.index(("a", 0))  # b ran while a/0 waited


async def test_ordered_failure_past_max_deliveries_is_dead_lettered_in_place():
    svc = tidings.Service("ledger", backoff=tidings.Backoff(initial=0.01, jitter=0))

    @svc.on("entries", mode="ordered", max_deliveries=3)
    async def apply(entry: dict) -> None:
        if entry["seq"] == 0:
            raise ValueError("corrupt entry")

    async with ServiceKit(svc) as kit:
        await kit.publish("entries", {"seq": 0}, key="k")
        await kit.publish("entries", {"seq": 1}, key="k")
        [dead] = await kit.dead_letters("entries", "ledger")
        [ok] = await kit.handled("entries", outcome="ok")
    assert "failed 3 times" in dead.headers["tidings-dlq-error"]
    assert "ValueError: corrupt entry" in dead.headers["tidings-dlq-error"]
    assert ok.ctx.payload == {"seq": 1}


async def test_graceful_shutdown_finishes_in_flight_work():
    svc = tidings.Service("worker", grace_period=5)
    started = asyncio.Event()
    finished = []

    @svc.on("jobs")
    async def job(payload: dict) -> None:
        started.set()
        await asyncio.sleep(0.2)  # the work
        finished.append(payload["n"])

    async with ServiceKit(svc) as kit:
        await kit.publish("jobs", {"n": 1})
        await started.wait()
        await svc.stop()  # waits for the handler, then leaves
        assert finished == [1]
        info = await kit.client.group_info("jobs", "worker")
        assert info.lag == 0 and info.in_flight == 0


async def test_shutdown_past_the_grace_period_nacks_in_flight_work():
    svc = tidings.Service("worker")
    started = asyncio.Event()

    @svc.on("jobs")
    async def job(payload: dict) -> None:
        started.set()
        await asyncio.Event().wait()  # never finishes on its own

    async with ServiceKit(svc) as kit:
        await kit.publish("jobs", {"n": 1})
        await started.wait()
        await svc.stop(grace=0.05)
        info = await kit.client.group_info("jobs", "worker")
        assert info.in_flight == 0 and info.ready == 1  # back in the group for another member
        sub = await kit.client.subscribe("jobs", "worker")
        again = await sub.next(2)
        assert again.delivery_count == 2
        assert again.headers.get("tidings-type") == "event"


async def test_concurrent_first_publishes_share_one_connection(monkeypatch):
    """Fifty publishes racing on a fresh Service open one connection, not fifty."""
    opened = []
    original = tidings.AsyncClient.connect

    async def counting_connect(self):
        opened.append(self)
        return await original(self)

    monkeypatch.setattr(tidings.AsyncClient, "connect", counting_connect)
    url = "memory://connect-race"
    svc = tidings.Service("producer", url=url)
    async with tidings.connect(url) as admin:
        await admin.create_topic("events")
        opened.clear()
        await asyncio.gather(*(svc.publish("events", {"n": i}) for i in range(50)))
        assert len(opened) == 1
        assert (await admin.topic_info("events")).messages == 50
    await svc.stop(grace=0)


async def test_a_backlog_runs_at_most_concurrency_handlers_at_once():
    """Messages fetched in batches still start only as slots free up."""
    url = "memory://bounded-backlog"
    svc = tidings.Service("bounded", url=url)
    running = 0
    peak = 0
    handled: list[int] = []
    all_handled = asyncio.Event()

    @svc.on("tasks", concurrency=3)
    async def task(payload: dict) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)  # the work: long enough for the others to pile up
        running -= 1
        handled.append(payload["i"])
        if len(handled) == 12:
            all_handled.set()

    async with tidings.connect(url) as admin:
        await admin.create_topic("tasks")
        for i in range(12):  # the backlog is there before the handler starts
            await admin.publish("tasks", json.dumps({"i": i}).encode())
        async with svc.running():
            await asyncio.wait_for(all_handled.wait(), 5)
        info = await admin.group_info("tasks", "bounded")
    assert sorted(handled) == list(range(12))
    assert peak == 3
    assert info.lag == 0 and info.in_flight == 0


async def test_graceful_shutdown_drains_a_full_batch_and_returns_the_rest():
    """Stopping with every slot busy lets the running handlers finish; the messages not
    started yet go back to the group, none lost and none left leased."""
    svc = tidings.Service("drainer", grace_period=5)
    started: list[int] = []
    finished: list[int] = []
    all_busy = asyncio.Event()
    release = asyncio.Event()

    @svc.on("jobs", concurrency=4)
    async def job(payload: dict) -> None:
        started.append(payload["n"])
        if len(started) == 4:
            all_busy.set()
        await release.wait()
        finished.append(payload["n"])

    async with ServiceKit(svc) as kit:
        for n in range(10):
            await kit.publish("jobs", {"n": n})
        await asyncio.wait_for(all_busy.wait(), 5)
        stopping = asyncio.create_task(svc.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # waiting for the four running handlers
        release.set()
        await stopping
        assert sorted(finished) == sorted(started) and len(started) == 4
        info = await kit.client.group_info("jobs", "drainer")
        assert info.in_flight == 0 and info.ready == 6
