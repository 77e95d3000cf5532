"""Middleware chain order, W3C traceparent handling and metrics hooks (no transport)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.errors import InvalidPayload
from tidings.model import Outgoing
from tidings.service import MetricsMiddleware, Middleware, PublishCall, TraceContext
from tidings.service.middleware import TracingMiddleware, outcome_of, publish_chain
from tidings.service.outcomes import Reject, Retry
from tidings.service.tracing import current_trace
from tidings.service.watchdog import TIMEOUT_CANCEL


class Recorder(Middleware):
    def __init__(self, name, log):
        self.name, self.log = name, log

    async def publish(self, call, call_next):
        self.log.append(f"{self.name}>")
        call.message.headers[self.name] = "seen"
        result = await call_next(call)
        self.log.append(f"<{self.name}")
        return result


async def test_first_middleware_is_outermost():
    log: list[str] = []

    async def endpoint(call):
        log.append("send")
        return dict(call.message.headers)

    chain = publish_chain([Recorder("a", log), Recorder("b", log)], endpoint)
    headers = await chain(PublishCall("t", Outgoing(b""), "event"))
    assert log == ["a>", "b>", "send", "<b", "<a"]
    assert headers == {"a": "seen", "b": "seen"}


def test_traceparent_parse_and_child():
    ctx = TraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert ctx is not None and ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    child = ctx.child()
    assert child.trace_id == ctx.trace_id and child.span_id != ctx.span_id
    assert TraceContext.parse(child.traceparent) == child
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
        assert TraceContext.parse(bad) is None


async def test_tracing_starts_or_continues_a_trace_on_publish():
    tracing = TracingMiddleware()

    async def endpoint(call):
        return call.message.headers["traceparent"]

    fresh = TraceContext.parse(
        await tracing.publish(PublishCall("t", Outgoing(b""), "event"), endpoint)
    )
    assert fresh is not None
    parent = TraceContext.new()
    token = current_trace.set(parent)
    try:
        inner = await tracing.publish(PublishCall("t", Outgoing(b""), "event"), endpoint)
    finally:
        current_trace.reset(token)
    assert TraceContext.parse(inner).trace_id == parent.trace_id


async def test_metrics_hooks_get_outcome_and_duration():
    seen = []
    metrics = MetricsMiddleware(on_publish=lambda *a: seen.append(a))

    async def ok(call):
        return "receipt"

    async def boom(call):
        raise RuntimeError("down")

    await metrics.publish(PublishCall("t", Outgoing(b""), "command"), ok)
    with pytest.raises(RuntimeError):
        await metrics.publish(PublishCall("t", Outgoing(b""), "event"), boom)
    assert [(s[0], s[1], s[3] is None) for s in seen] == [
        ("t", "command", True),
        ("t", "event", False),
    ]
    assert all(s[2] >= 0 for s in seen)


def test_outcome_names():
    assert outcome_of(None) == "ok"
    assert outcome_of(Reject("x")) == "reject"
    assert outcome_of(Retry(1)) == "retry"
    assert outcome_of(InvalidPayload("x")) == "invalid"
    assert outcome_of(ValueError()) == "error"
    assert outcome_of(asyncio.CancelledError()) == "cancelled"
    assert outcome_of(asyncio.CancelledError(TIMEOUT_CANCEL)) == "error"  # past its timeout


async def test_a_cancelled_publish_is_reported_with_its_cancellation():
    seen = []
    metrics = MetricsMiddleware(on_publish=lambda *a: seen.append(a))

    async def hangs(call):
        await asyncio.sleep(60)

    task = asyncio.ensure_future(metrics.publish(PublishCall("t", Outgoing(b""), "event"), hangs))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [(topic, kind, _seconds, error)] = seen
    assert (topic, kind) == ("t", "event") and isinstance(error, asyncio.CancelledError)


HEX32 = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)
HEX16 = st.from_regex(r"[0-9a-f]{16}", fullmatch=True)


@given(HEX32, HEX16)
def test_traceparent_round_trips(trace_id, span_id):
    ctx = TraceContext.parse(f"00-{trace_id}-{span_id}-01")
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        assert ctx is None  # all-zero ids are invalid per W3C
    else:
        assert ctx is not None and TraceContext.parse(ctx.traceparent) == ctx
