"""LoggingMiddleware's lines at each logger level: the built-in chain steps skip its coroutine
when nothing would be logged, and must still log exactly what it always did."""

from __future__ import annotations

import logging

import pytest

import tidings
from tidings.service import LoggingMiddleware, TraceContext
from tidings.service.tracing import current_trace
from tidings.testing import ServiceKit


async def _run(level: int, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    caplog.set_level(level, logger="tidings.service")
    svc = tidings.Service("logged")

    @svc.on("jobs")
    async def job(payload: dict) -> None:
        if payload["n"] == 1:
            raise ValueError("boom")

    async with ServiceKit(svc) as kit:
        await svc.publish("jobs", {"n": 0})  # through the service's publish middleware
        await svc.publish("jobs", {"n": 1})
        await kit.handled("jobs", count=2)
    return [r for r in caplog.records if r.name == "tidings.service"]


async def test_info_logs_each_handling_and_warning_each_failure(caplog):
    records = await _run(logging.INFO, caplog)
    ok = [r.getMessage() for r in records if r.getMessage().startswith("ok jobs/")]
    failed = [r for r in records if r.getMessage().startswith("error jobs/")]
    assert len(ok) == 1 and "delivery=1" in ok[0] and "ms" in ok[0]
    assert failed and failed[0].levelno == logging.WARNING
    assert failed[0].getMessage().endswith(": ValueError: boom")
    assert not any(r.getMessage().startswith("published") for r in records)  # DEBUG only


async def test_warning_logs_failures_only_and_debug_adds_publishes(caplog):
    records = await _run(logging.WARNING, caplog)
    lines = [r.getMessage() for r in records]
    assert not any(line.startswith("ok ") for line in lines)
    assert any(line.startswith("error jobs/") and "ValueError: boom" in line for line in lines)
    caplog.clear()
    records = await _run(logging.DEBUG, caplog)
    lines = [r.getMessage() for r in records]
    assert any(line.startswith("published event to jobs msg_id=") for line in lines)
    assert any(line.startswith("ok jobs/") for line in lines)


async def test_nothing_logged_above_warning(caplog):
    records = await _run(logging.ERROR, caplog)
    assert not [r for r in records if "jobs/" in r.getMessage()]


async def test_a_subclass_overriding_handle_is_still_called():
    seen: list[str] = []

    class Mine(LoggingMiddleware):
        async def handle(self, ctx, call_next):
            seen.append(ctx.topic)
            return await super().handle(ctx, call_next)

        async def publish(self, call, call_next):
            seen.append(f"pub {call.topic}")
            return await super().publish(call, call_next)

    svc = tidings.Service("mine", middleware=[Mine()], default_middleware=False)

    @svc.on("jobs")
    async def job(payload: dict) -> None: ...

    async with ServiceKit(svc) as kit:
        await svc.publish("jobs", {"n": 0})
        await kit.handled("jobs", count=1)
    assert seen[:2] == ["pub jobs", "jobs"]


async def test_published_traceparent_is_a_child_of_the_current_trace_or_a_new_trace():
    got: list[str] = []
    svc = tidings.Service("traced")

    @svc.on("jobs")
    async def job(payload: dict, ctx: tidings.Context) -> None:
        got.append(ctx.headers["traceparent"])

    parent = TraceContext.new()
    async with ServiceKit(svc) as kit:
        await svc.publish("jobs", {"n": 0})
        token = current_trace.set(parent)
        try:
            await svc.publish("jobs", {"n": 1})
        finally:
            current_trace.reset(token)
        await kit.handled("jobs", count=2)
    spans = {TraceContext.parse(v) for v in got}
    assert None not in spans
    child = [s for s in spans if s is not None and s.trace_id == parent.trace_id]
    assert len(child) == 1 and child[0].span_id != parent.span_id and child[0].flags == "01"
    other = [s for s in spans if s is not None and s.trace_id != parent.trace_id]
    assert len(other) == 1 and type(other[0]) is TraceContext
