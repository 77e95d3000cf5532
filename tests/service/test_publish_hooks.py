"""``svc.publish`` and ``svc.publish_many`` run the built-in publish middleware as hooks when
every publish middleware gives them: the same headers, statistics, log lines and errors as
the chain of coroutines, without a coroutine per message."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import tidings
from tidings import headers as h
from tidings.errors import BadRequest
from tidings.service import MetricsMiddleware, Middleware
from tidings.service.hooks import HookPair
from tidings.service.middleware import LoggingMiddleware, TracingMiddleware, publish_hooks
from tidings.service.registration.stats import InstanceStats, StatsMiddleware
from tidings.testing import ServiceKit


class Refuser(Middleware):
    """Gives hooks; refuses the payloads named in ``refuse`` in its enter."""

    def __init__(self, refuse: set[int], log: list[Any]) -> None:
        self.refuse, self.log = refuse, log

    async def publish(self, call, call_next):
        raise AssertionError("the hooks run, not publish()")

    def _publish_hooks(self) -> HookPair:
        def enter(call):
            if call.payload["n"] in self.refuse:
                raise BadRequest(f"refused {call.payload['n']}")
            return call.payload["n"]

        def leave(call, n, error):
            self.log.append((n, repr(error)))

        return enter, leave


class Plain(Middleware):
    async def publish(self, call, call_next):
        return await call_next(call)


def test_the_hooks_are_used_only_when_every_publish_middleware_gives_them():
    builtins = [StatsMiddleware(InstanceStats()), TracingMiddleware(), LoggingMiddleware()]
    hooks = publish_hooks([*builtins, Middleware()])  # a pass-through does not count
    assert hooks is not None and len(hooks.hooks) == 3
    assert publish_hooks([*builtins, Plain()]) is None


async def test_publish_many_with_hooks_stamps_counts_and_logs_each_message(caplog):
    svc = tidings.Service("hooked", default_middleware=True)
    seen: list[dict[str, str]] = []

    @svc.on("jobs")
    async def job(payload: dict, ctx: tidings.Context) -> None:
        seen.append(dict(ctx.headers))

    async with ServiceKit(svc) as kit:
        assert svc._hooks() is not None  # registration statistics, tracing, logging
        with caplog.at_level(logging.DEBUG, logger="tidings.service"):
            receipts = await svc.publish_many("jobs", [{"n": i} for i in range(5)])
        await kit.handled("jobs", count=5)
        stats = svc.registration.stats if svc.registration else None
    assert len(receipts) == 5
    assert all(h.TRACEPARENT in headers for headers in seen)
    assert stats is not None and stats.outgoing[("event", "jobs")].calls == 5
    published = [r for r in caplog.records if r.getMessage().startswith("published event to jobs")]
    assert len(published) == 5


async def test_an_enter_that_refuses_one_message_stops_the_batch():
    log: list[Any] = []
    svc = tidings.Service("refusing", middleware=[Refuser({1}, log)])

    @svc.on("jobs")
    async def job(payload: dict) -> None: ...

    async with ServiceKit(svc):
        sent: list[int] = []
        client = svc.client
        assert client is not None
        real = client.publish_many

        async def publish_many(topic, messages, **kw):
            if not topic.startswith("_"):
                sent.append(len(messages))
            return await real(topic, messages, **kw)

        client.publish_many = publish_many  # type: ignore[method-assign]
        with pytest.raises(BadRequest, match="refused 1"):
            await svc.publish_many("jobs", [{"n": 0}, {"n": 1}, {"n": 2}])
        assert sent == []  # all or none
        # the messages that got through left with the refusal, as a chain's would
        assert log == [(0, repr(BadRequest("refused 1"))), (2, repr(BadRequest("refused 1")))]
        log.clear()
        await svc.publish_many("jobs", [{"n": 0}, {"n": 2}])
        assert sent == [2] and log == [(0, "None"), (2, "None")]


async def test_a_failed_send_reaches_every_messages_hooks():
    log: list[Any] = []
    svc = tidings.Service("failing", middleware=[Refuser(set(), log)])

    @svc.on("jobs")
    async def job(payload: dict) -> None: ...

    async with ServiceKit(svc):
        client = svc.client
        assert client is not None

        async def publish_many(topic, messages, **kw):
            raise BadRequest("the broker said no")

        async def publish_async(topic, body, **kw):
            raise BadRequest("the broker said no")

        client.publish_many = publish_many  # type: ignore[method-assign]
        client.publish_async = publish_async  # type: ignore[assignment, method-assign]
        client._submit = publish_async  # type: ignore[assignment, method-assign]  # svc.publish's
        with pytest.raises(BadRequest, match="said no"):
            await svc.publish_many("jobs", [{"n": 0}, {"n": 1}])
        with pytest.raises(BadRequest, match="said no"):
            await svc.publish("jobs", {"n": 2})
    error = repr(BadRequest("the broker said no"))
    assert log == [(0, error), (1, error), (2, error)]


async def test_metrics_middleware_keeps_the_hooks_and_reports_every_message():
    published: list[tuple[str, str, BaseException | None]] = []
    handled: list[tuple[str, str]] = []
    metrics = MetricsMiddleware(
        on_publish=lambda topic, kind, seconds, error: published.append((topic, kind, error)),
        on_handled=lambda topic, group, outcome, seconds: handled.append((topic, outcome)),
    )
    svc = tidings.Service("metered", middleware=[metrics])

    @svc.on("jobs", max_deliveries=1)
    async def job(payload: dict) -> None:
        if payload["n"] == 2:
            raise RuntimeError("no")

    async with ServiceKit(svc) as kit:
        assert svc._hooks() is not None
        plan = svc._handle_chain(svc.handlers[0])
        assert len(plan.hooks) == 4  # statistics, tracing, logging, metrics: no coroutine
        await svc.publish_many("jobs", [{"n": 0}, {"n": 1}])
        await svc.publish("jobs", {"n": 2})
        await kit.handled("jobs", count=3)
    assert [p for p in published if not p[0].startswith("_")] == [("jobs", "event", None)] * 3
    assert sorted(handled) == [("jobs", "error"), ("jobs", "ok"), ("jobs", "ok")]
