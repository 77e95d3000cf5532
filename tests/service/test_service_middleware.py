"""Middleware around real handling: trace context flows from publisher through handlers,
custom middleware and metrics hooks see every publish and handling."""

from __future__ import annotations

import tidings
from tidings import headers as h
from tidings.service import MetricsMiddleware, Middleware, TraceContext
from tidings.testing import ServiceKit


async def test_traceparent_flows_through_a_chain_of_services():
    orders, billing = tidings.Service("orders"), tidings.Service("billing")

    @orders.on("order.placed")
    async def placed(order: dict, ctx: tidings.Context) -> None:
        await ctx.publish("invoice.requested", {"order": order["id"]})

    @billing.on("invoice.requested")
    async def invoice(request: dict) -> None: ...

    origin = TraceContext.new()
    async with ServiceKit(orders, billing) as kit:
        await kit.publish("order.placed", {"id": 1}, headers={h.TRACEPARENT: origin.traceparent})
        [first] = await kit.handled("order.placed")
        [second] = await kit.handled("invoice.requested")
    hop = TraceContext.parse(second.ctx.headers[h.TRACEPARENT])
    assert first.ctx.trace.trace_id == origin.trace_id
    assert hop.trace_id == origin.trace_id and hop.span_id != origin.span_id
    assert second.ctx.trace.trace_id == origin.trace_id


async def test_custom_middleware_and_metrics_hooks():
    events = []

    class Tag(Middleware):
        async def publish(self, call, call_next):
            call.message.headers["x-tenant"] = "acme"
            return await call_next(call)

        async def handle(self, ctx, call_next):
            events.append(("handle", ctx.headers.get("x-tenant")))
            return await call_next(ctx)

    metrics = MetricsMiddleware(
        on_publish=lambda topic, kind, seconds, error: events.append(("published", topic, kind)),
        on_handled=lambda topic, group, outcome, seconds: events.append(("handled", outcome)),
    )
    svc = tidings.Service("tenant", middleware=[Tag(), metrics])

    @svc.on("jobs")
    async def job(payload: dict) -> None:
        if payload["fail"]:
            raise tidings.Reject("bad job")

    async with ServiceKit(svc) as kit:
        await svc.publish("jobs", {"fail": False})
        await svc.publish("jobs", {"fail": True})
        await kit.handled("jobs", count=2)
    assert ("published", "jobs", "event") in events
    assert events.count(("handle", "acme")) == 2
    assert ("handled", "ok") in events and ("handled", "reject") in events


async def test_metrics_tell_a_cancelled_handling_from_a_timed_out_one():
    """A handler cut off by shutdown is "cancelled" (its message will come again), one past its
    timeout is an "error" (it failed with Timeout), neither is "ok"."""
    import asyncio

    handled: list[tuple[str, str]] = []
    published: list[BaseException | None] = []
    metrics = MetricsMiddleware(
        on_publish=lambda topic, kind, seconds, error: published.append(error),
        on_handled=lambda topic, group, outcome, seconds: handled.append((topic, outcome)),
    )
    svc = tidings.Service("slow", middleware=[metrics])
    started = asyncio.Event()

    @svc.on("slow.timeout", timeout=0.2)
    async def too_slow(payload: dict) -> None:
        await asyncio.sleep(60)

    @svc.on("slow.stop")
    async def cut_off(payload: dict) -> None:
        started.set()
        await asyncio.sleep(60)

    kit = ServiceKit(svc)
    async with kit:
        await svc.publish("slow.timeout", {})
        await kit.wait_until(lambda: ("slow.timeout", "error") in handled, timeout=10)
        await svc.publish("slow.stop", {})
        await asyncio.wait_for(started.wait(), 10)
        await svc.stop(grace=0.1)
    assert ("slow.stop", "cancelled") in handled
    assert ("slow.stop", "ok") not in handled and ("slow.timeout", "ok") not in handled
    assert len(published) == 2 and all(error is None for error in published)
