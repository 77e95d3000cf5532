"""Shared handlers run on a pool of worker tasks: each handling still behaves as if it had a
task of its own (its own context, its own cancellation), and a handling that suspends never
holds the others up."""

from __future__ import annotations

import asyncio
import contextvars

import tidings
from tidings.testing import ServiceKit

seen: contextvars.ContextVar[str | None] = contextvars.ContextVar("seen", default=None)


async def test_a_handlers_context_variables_do_not_reach_the_next_message():
    svc = tidings.Service("ctxvars")
    found: list[tuple[int, str | None]] = []

    @svc.on("notes", concurrency=1)  # one worker: the messages run one after the other in it
    async def note(payload: dict) -> None:
        found.append((payload["n"], seen.get()))
        seen.set(f"set by {payload['n']}")  # never reset
        await asyncio.sleep(0)  # a step after a suspension runs in the same copy

        found.append((payload["n"], seen.get()))

    async with ServiceKit(svc) as kit:
        await kit.publish_many("notes", [{"n": 1}, {"n": 2}, {"n": 3}])
        records = await kit.handled("notes", count=3)
    assert all(r.outcome == "ok" for r in records)
    assert found == [
        (1, None),
        (1, "set by 1"),
        (2, None),
        (2, "set by 2"),
        (3, None),
        (3, "set by 3"),
    ]
    assert seen.get() is None


async def test_a_suspended_handling_does_not_hold_up_the_messages_behind_it():
    svc = tidings.Service("unblocked")
    release = asyncio.Event()
    order: list[int] = []

    @svc.on("jobs", concurrency=8)
    async def job(payload: dict) -> None:
        if payload["n"] == 0:
            async with asyncio.timeout(5):
                await release.wait()  # set only once every other message was handled
        order.append(payload["n"])
        if len(order) == 4:
            release.set()

    async with ServiceKit(svc) as kit:
        await kit.publish_many("jobs", [{"n": n} for n in range(5)])
        records = await kit.handled("jobs", count=5)
    assert all(r.outcome == "ok" for r in records)
    assert sorted(order[:4]) == [1, 2, 3, 4] and order[4] == 0


async def test_a_handler_cancelling_its_own_task_is_nacked_and_the_consumer_goes_on():
    svc = tidings.Service("selfcancel", backoff=tidings.Backoff(initial=0))
    deliveries: list[tuple[int, int]] = []

    @svc.on("jobs", concurrency=1)
    async def job(payload: dict, ctx: tidings.Context) -> None:
        deliveries.append((payload["n"], ctx.delivery_count))
        if payload["n"] == 1 and ctx.delivery_count == 1:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(1)  # the cancellation lands here

    async with ServiceKit(svc) as kit:
        await kit.publish_many("jobs", [{"n": 1}, {"n": 2}])
        async with asyncio.timeout(10):
            while sorted(deliveries) != [(1, 1), (1, 2), (2, 1)]:
                await asyncio.sleep(0.02)
        info = await kit.client.group_info("jobs", "selfcancel")
        async with asyncio.timeout(10):
            while info.in_flight or info.ready:
                await asyncio.sleep(0.05)
                info = await kit.client.group_info("jobs", "selfcancel")
