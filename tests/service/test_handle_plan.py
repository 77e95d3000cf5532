"""The handle plan: built-in middleware runs as enter/leave hooks around the rest of the chain
and must behave exactly as its ``handle`` coroutine did; handlers are called with the
arguments their signature asks for, however it is written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tidings
from tidings.service import Context, Middleware, TraceContext
from tidings.service.hooks import HookPair
from tidings.service.middleware import handle_chain
from tidings.service.tracing import current_trace, span_of
from tidings.testing import ServiceKit


class Hooked(Middleware):
    """Gives hooks; records what each leave was told; may raise in enter or leave."""

    def __init__(self, name: str, log: list[Any], fail_enter: bool = False, fail_leave=None):
        self.name, self.log = name, log
        self.fail_enter, self.fail_leave = fail_enter, fail_leave

    async def handle(self, ctx, call_next):  # what the hooks stand for
        raise AssertionError("the plan runs the hooks, not handle()")

    def _handle_hooks(self) -> HookPair:
        def enter(ctx):
            self.log.append(f"{self.name}>")
            if self.fail_enter:
                raise RuntimeError(f"{self.name} enter")
            return self.name

        def leave(ctx, token, error):
            self.log.append((f"<{self.name}", token, repr(error)))
            if self.fail_leave is not None:
                raise self.fail_leave

        return enter, leave


class Plain(Middleware):
    def __init__(self, log: list[Any]):
        self.log = log

    async def handle(self, ctx, call_next):
        self.log.append("plain>")
        try:
            return await call_next(ctx)
        finally:
            self.log.append("<plain")


async def test_hooks_run_outermost_first_around_the_other_middleware():
    log: list[Any] = []

    async def endpoint(ctx):
        log.append("handler")
        return 42

    plan = handle_chain([Hooked("a", log), Hooked("b", log), Plain(log)], endpoint)
    assert len(plan.hooks) == 2
    assert await plan(object()) == 42
    assert log == ["a>", "b>", "plain>", "handler", "<plain", ("<b", "b", "None"),
                   ("<a", "a", "None")]  # fmt: skip


async def test_hooks_after_a_plain_middleware_run_as_its_handle():
    log: list[Any] = []

    async def endpoint(ctx):
        return "ok"

    plan = handle_chain([Plain(log), Hooked("late", log)], endpoint)
    assert plan.hooks == ()  # only the outermost run as hooks: order is kept


async def test_a_leave_that_raises_is_what_the_outer_hooks_and_the_caller_see():
    log: list[Any] = []
    replaced = ValueError("from b's leave")

    async def endpoint(ctx):
        raise KeyError("handler")

    plan = handle_chain([Hooked("a", log), Hooked("b", log, fail_leave=replaced)], endpoint)
    with pytest.raises(ValueError, match="from b's leave"):
        await plan(object())
    assert log[2] == ("<b", "b", repr(KeyError("handler")))
    assert log[3] == ("<a", "a", repr(replaced))


async def test_an_enter_that_raises_leaves_only_the_hooks_entered_before():
    log: list[Any] = []

    async def endpoint(ctx):
        log.append("handler")

    plan = handle_chain([Hooked("a", log), Hooked("b", log, fail_enter=True)], endpoint)
    with pytest.raises(RuntimeError, match="b enter"):
        await plan(object())
    assert log == ["a>", "b>", ("<a", "a", repr(RuntimeError("b enter")))]


async def test_a_handler_error_reaches_the_service_through_the_hooks():
    log: list[Any] = []
    svc = tidings.Service("plans", middleware=[Hooked("a", log)])

    @svc.on("boom", max_deliveries=1)
    async def boom(payload: dict) -> None:
        raise RuntimeError("no")

    async with ServiceKit(svc) as kit:
        await kit.publish("boom", {})
        (record,) = await kit.handled("boom", count=1)
    assert record.outcome == "error"
    assert ("<a", "a", repr(RuntimeError("no"))) in log


_hex = st.text("0123456789abcdef", min_size=0, max_size=34)


@given(version=_hex, trace=_hex, span=_hex, flags=_hex, pad=st.sampled_from(["", " ", "\n"]))
def test_span_of_is_a_child_of_the_parsed_traceparent_or_a_new_trace(
    version, trace, span, flags, pad
):
    value = f"{pad}{version}-{trace}-{span}-{flags}{pad}"
    parent = TraceContext.parse(value)
    span_ctx = span_of(value)
    assert len(span_ctx.span_id) == 16 and span_ctx.span_id != "0" * 16
    if parent is None:
        assert span_ctx.flags == "01" and len(span_ctx.trace_id) == 32
    else:
        assert (span_ctx.trace_id, span_ctx.flags) == (parent.trace_id, parent.flags)
        assert span_ctx.span_id != parent.span_id


def test_span_of_a_missing_header_starts_a_trace():
    assert span_of(None).trace_id != span_of(None).trace_id


async def test_the_handlers_span_is_current_only_while_it_runs():
    svc = tidings.Service("plan-trace")
    seen: list[Any] = []

    @svc.on("traced")
    async def traced(payload: dict, ctx: Context) -> None:
        seen.append((ctx.trace, current_trace.get()))

    async with ServiceKit(svc) as kit:
        parent = TraceContext.new()
        await kit.publish("traced", {}, headers={"traceparent": parent.traceparent})
        await kit.handled("traced", count=1)
    ((trace, current),) = seen
    assert trace is current and trace.trace_id == parent.trace_id
    assert current_trace.get() is None


async def test_handlers_get_their_arguments_whatever_the_signature():
    svc = tidings.Service("signatures")
    got: dict[str, Any] = {}

    @svc.on("a")
    async def payload_then_ctx(body: dict, ctx: Context) -> None:
        got["a"] = (body, ctx.topic)

    @svc.on("b")
    async def ctx_then_payload(ctx: Context, body: dict) -> None:
        got["b"] = (body, ctx.topic)

    @svc.on("c")
    async def keyword_only_ctx(body: dict, *, ctx: Context) -> None:
        got["c"] = (body, ctx.topic)

    @svc.on("d")
    async def payload_only(body: dict) -> None:
        got["d"] = (body, None)

    @svc.on("e")
    async def ctx_only(ctx: Context) -> None:
        got["e"] = (None, ctx.topic)

    @svc.on("f")
    async def nothing() -> None:
        got["f"] = (None, None)

    @svc.on("g")
    async def extra_default_between(body: dict, scale: int = 2, ctx=None):  # type: ignore[no-untyped-def]
        got["g"] = (body, ctx.topic, scale)

    async with ServiceKit(svc) as kit:
        for topic in "abcdefg":
            await kit.publish(topic, {"t": topic})
        for topic in "abcdefg":
            (record,) = await kit.handled(topic, count=1)
            assert record.outcome == "ok", (topic, record)
    assert got == {
        "a": ({"t": "a"}, "a"),
        "b": ({"t": "b"}, "b"),
        "c": ({"t": "c"}, "c"),
        "d": ({"t": "d"}, None),
        "e": (None, "e"),
        "f": (None, None),
        "g": ({"t": "g"}, "g", 2),
    }
