"""Service.publish_many: many typed payloads in one round trip, each through the publish
middleware; all or none when a middleware refuses one."""

from __future__ import annotations

import pytest

import tidings
from tidings import headers as h
from tidings.errors import BadRequest
from tidings.service import Middleware
from tidings.testing import ServiceKit


class CountingClient:
    """Counts the client's publish_many calls (one round trip each)."""

    def __init__(self, svc: tidings.Service) -> None:
        self.calls: list[int] = []
        client = svc.client
        assert client is not None
        real = client.publish_many

        async def publish_many(topic, messages, **kw):
            if not topic.startswith("_"):  # not the registry's heartbeats
                self.calls.append(len(messages))
            return await real(topic, messages, **kw)

        client.publish_many = publish_many  # type: ignore[method-assign]


async def test_many_payloads_go_in_one_round_trip_each_through_the_middleware():
    seen: list[dict] = []

    class Tag(Middleware):
        async def publish(self, call, call_next):
            call.message.headers["x-n"] = str(call.payload["n"])
            return await call_next(call)

    svc = tidings.Service("batcher", middleware=[Tag()])

    @svc.on("jobs")
    async def job(payload: dict, ctx: tidings.Context) -> None:
        seen.append({**payload, "tag": ctx.headers["x-n"], "id": ctx.message.msg_id})

    async with ServiceKit(svc) as kit:
        counter = CountingClient(svc)
        payloads = [{"n": i} for i in range(20)]
        receipts = await svc.publish_many("jobs", payloads, keys=[f"k{i % 3}" for i in range(20)])
        await kit.handled("jobs", count=20)
    assert counter.calls == [20]  # one round trip
    assert [r.duplicate for r in receipts] == [False] * 20
    assert len({(r.partition, r.offset) for r in receipts}) == 20
    assert sorted(s["n"] for s in seen) == list(range(20))
    assert all(s["tag"] == str(s["n"]) for s in seen)  # the middleware ran for each
    assert len({s["id"] for s in seen}) == 20  # each has its own producer id


async def test_a_middleware_that_raises_stops_the_whole_batch():
    class NoOdd(Middleware):
        async def publish(self, call, call_next):
            if call.payload["n"] % 2:
                raise BadRequest(f"odd {call.payload['n']}")
            return await call_next(call)

    svc = tidings.Service("strict", middleware=[NoOdd()])

    @svc.on("jobs")
    async def job(payload: dict) -> None: ...

    async with ServiceKit(svc):
        counter = CountingClient(svc)
        with pytest.raises(BadRequest, match="odd"):
            await svc.publish_many("jobs", [{"n": 0}, {"n": 1}, {"n": 2}])
        assert counter.calls == []  # nothing was sent
        await svc.publish_many("jobs", [{"n": 0}, {"n": 2}])
        assert counter.calls == [2]


async def test_a_middleware_may_leave_a_message_out():
    class DropDrafts(Middleware):
        async def publish(self, call, call_next):
            if call.payload.get("draft"):
                return None  # answered without publishing
            return await call_next(call)

    handled: list[int] = []
    svc = tidings.Service("drafts", middleware=[DropDrafts()])

    @svc.on("docs")
    async def doc(payload: dict) -> None:
        handled.append(payload["n"])

    async with ServiceKit(svc) as kit:
        results = await svc.publish_many(
            "docs", [{"n": 1}, {"n": 2, "draft": True}, {"n": 3}], kind="document"
        )
        await kit.handled("docs", count=2)
    assert results[1] is None and results[0] is not None and results[2] is not None
    assert sorted(handled) == [1, 3]


async def test_from_a_handler_and_argument_errors():
    svc = tidings.Service("fan")
    got: list[str] = []

    @svc.on("orders")
    async def order(payload: dict, ctx: tidings.Context) -> None:
        await ctx.publish_many("lines", [{"sku": s} for s in payload["skus"]])

    @svc.on("lines")
    async def line(payload: dict, ctx: tidings.Context) -> None:
        got.append(payload["sku"])
        assert ctx.headers[h.MESSAGE_TYPE] == "event"

    async with ServiceKit(svc) as kit:
        await kit.publish("orders", {"skus": ["a", "b", "c"]})
        await kit.handled("lines", count=3)
        with pytest.raises(BadRequest, match="give one key each"):
            await svc.publish_many("lines", [{"sku": "x"}], keys=["k1", "k2"])
        assert await svc.publish_many("lines", []) == []
    assert sorted(got) == ["a", "b", "c"]


async def test_middleware_that_waits_on_its_way_and_context_per_message():
    """Calls are stepped without a Task each: one that awaits something else (before and after
    the batch) goes on in a Task; each call sees its own context, as in a Task of its own."""
    import asyncio
    import contextvars

    current: contextvars.ContextVar[int | None] = contextvars.ContextVar("n", default=None)
    leaked: list[int | None] = []

    class Slow(Middleware):
        async def publish(self, call, call_next):
            leaked.append(current.get())  # another call's value would show here
            n = call.payload["n"]
            current.set(n)
            if n % 2:
                await asyncio.sleep(0.01)  # I/O on its way in
            result = await call_next(call)
            if n % 3 == 0:
                await asyncio.sleep(0.01)  # and on its way out
            assert current.get() == n
            return (n, result)

    svc = tidings.Service("slowpoke", middleware=[Slow()])

    @svc.on("jobs")
    async def job(payload: dict) -> None: ...

    async with ServiceKit(svc) as kit:
        counter = CountingClient(svc)
        results = await svc.publish_many("jobs", [{"n": i} for i in range(10)])
        await kit.handled("jobs", count=10)
    assert counter.calls == [10]  # still one round trip
    assert [n for n, _ in results] == list(range(10))  # in call order
    assert len({(r.partition, r.offset) for _, r in results}) == 10
    assert leaked == [None] * 10


async def test_a_middleware_raising_after_it_waited_stops_the_batch_and_cancel_is_clean():
    import asyncio

    class LateNo(Middleware):
        async def publish(self, call, call_next):
            await asyncio.sleep(0.01)
            if call.payload["n"] == 3:
                raise BadRequest("no 3")
            return await call_next(call)

    svc = tidings.Service("lateno", middleware=[LateNo()])

    @svc.on("jobs")
    async def job(payload: dict) -> None: ...

    async with ServiceKit(svc):
        counter = CountingClient(svc)
        with pytest.raises(BadRequest, match="no 3"):
            await svc.publish_many("jobs", [{"n": i} for i in range(5)])
        assert counter.calls == []

        ended: list[str] = []

        class Hold(Middleware):
            async def publish(self, call, call_next):
                try:
                    return await call_next(call)
                finally:
                    ended.append("ended")

        gate = asyncio.Event()
        svc.middleware.append(Hold())
        client = svc.client
        assert client is not None
        real = client.publish_many

        async def stuck(topic, messages, **kw):
            if topic.startswith("_"):
                return await real(topic, messages, **kw)
            gate.set()
            await asyncio.sleep(30)

        client.publish_many = stuck  # type: ignore[method-assign]
        task = asyncio.ensure_future(svc.publish_many("jobs", [{"n": 0}, {"n": 1}]))
        await asyncio.wait_for(gate.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ended == ["ended", "ended"]  # each waiting call was cancelled, its finally ran
        client.publish_many = real  # type: ignore[method-assign]
