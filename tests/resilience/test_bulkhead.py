"""Bulkhead: N in flight, a bounded queue with a timeout, immediate typed rejection."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings.resilience import Bulkhead, Pipeline


async def test_rejects_call_n_plus_1_at_once(timer, counters):
    gate = asyncio.Event()
    inside = 0

    async def held():
        nonlocal inside
        inside += 1
        await gate.wait()
        return "ok"

    p = Pipeline("bh", bulkhead=Bulkhead(max_concurrent=3), timer=timer, observer=counters)
    tasks = [asyncio.create_task(p.run(held, callee="slow")) for _ in range(3)]
    await timer.settle()
    assert inside == 3
    with pytest.raises(tidings.BulkheadFull, match="'slow' is full"):
        await p.run(held, callee="slow")
    assert inside == 3 and counters["bulkhead_rejected"] == 1
    gate.set()
    assert await asyncio.gather(*tasks) == ["ok"] * 3
    assert await p.run(held) == "ok"  # the slots came back
    assert p.bulkhead.compartment().active == 0


async def test_queue_admits_waiters_in_order_and_times_them_out(timer):
    gate = asyncio.Event()
    order = []

    async def held(i):
        order.append(i)
        await gate.wait()
        return i

    bulkhead = Bulkhead(max_concurrent=1, max_queue=2, queue_timeout=5.0)
    p = Pipeline("bh", bulkhead=bulkhead, timer=timer)
    first = asyncio.create_task(p.run(held, 0))
    await timer.settle()
    queued = [asyncio.create_task(p.run(held, i)) for i in (1, 2)]
    await timer.settle()
    with pytest.raises(tidings.BulkheadFull):  # 1 in flight + 2 queued: the 4th is rejected
        await p.run(held, 3)
    await timer.run_for(4.9)
    assert order == [0] and not any(t.done() for t in queued)
    await timer.run_for(0.1)  # the queue timeout fires for both waiters
    for t in queued:
        with pytest.raises(tidings.BulkheadFull, match=r"queue timeout after 5\.0s"):
            await t
    gate.set()
    assert await first == 0
    assert bulkhead.compartment().active == 0 and not bulkhead.compartment().waiters


async def test_a_released_slot_goes_to_the_first_waiter(timer):
    gates = [asyncio.Event() for _ in range(3)]
    order = []

    async def held(i):
        order.append(i)
        await gates[i].wait()
        return i

    p = Pipeline("bh", bulkhead=Bulkhead(max_concurrent=1, max_queue=5), timer=timer)
    tasks = [asyncio.create_task(p.run(held, i)) for i in range(3)]
    await timer.settle()
    assert order == [0]
    gates[0].set()
    await timer.settle()
    assert order == [0, 1]
    gates[1].set()
    gates[2].set()
    assert await asyncio.gather(*tasks) == [0, 1, 2]


async def test_a_cancelled_waiter_leaves_the_queue(timer):
    gate = asyncio.Event()

    async def held():
        await gate.wait()

    bulkhead = Bulkhead(max_concurrent=1, max_queue=1)
    p = Pipeline("bh", bulkhead=bulkhead, timer=timer)
    first = asyncio.create_task(p.run(held))
    await timer.settle()
    waiter = asyncio.create_task(p.run(held))
    await timer.settle()
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert not bulkhead.compartment().waiters
    again = asyncio.create_task(p.run(held))  # the queue place is free again
    await timer.settle()
    assert not again.done()
    gate.set()
    await asyncio.gather(first, again)
    assert bulkhead.compartment().active == 0


async def test_per_callee_compartments(timer):
    gate = asyncio.Event()

    async def held():
        await gate.wait()
        return "ok"

    p = Pipeline("bh", bulkhead=Bulkhead(max_concurrent=1, per_callee=True), timer=timer)
    stuck = asyncio.create_task(p.run(held, callee="a"))
    await timer.settle()
    with pytest.raises(tidings.BulkheadFull):
        await p.run(held, callee="a")
    other = asyncio.create_task(p.run(held, callee="b"))
    await timer.settle()
    gate.set()
    assert await asyncio.gather(stuck, other) == ["ok", "ok"]
