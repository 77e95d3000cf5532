"""Live statistics of one instance: per endpoint (requests, errors, last error, processing
time) and per outgoing flow (what the service publishes, sends and requests), collected by
:class:`StatsMiddleware` around every handling and every publish."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..middleware import Middleware, PublishCall, PublishNext

if TYPE_CHECKING:
    from ..context import Context
    from ..hooks import HookPair
    from ..middleware import HandleNext


@dataclass
class Counter:
    """Calls, errors and time of one endpoint or one outgoing flow."""

    calls: int = 0
    errors: int = 0
    last_error: str = ""
    nanos: int = 0
    # the previous heartbeat's snapshot, for rates
    _mark: tuple[float, int, int] = field(default=(0.0, 0, 0), repr=False)

    def add(self, nanos: int, error: BaseException | None) -> None:
        self.calls += 1
        self.nanos += nanos
        if error is not None:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error}"[:500]

    def rates(self, now: float, started: float) -> tuple[float, float]:
        """Calls/s and errors/s since the previous call of ``rates`` (since start at first)."""
        then, calls, errors = self._mark
        if then == 0.0:
            then = started
        self._mark = (now, self.calls, self.errors)
        span = max(now - then, 1e-3)
        return (self.calls - calls) / span, (self.errors - errors) / span

    @property
    def average(self) -> int:
        return self.nanos // self.calls if self.calls else 0


class InstanceStats:
    """Counters by endpoint name and by (kind, topic) of outgoing messages."""

    def __init__(self) -> None:
        self.started = time.time()
        self.endpoints: dict[str, Counter] = {}
        self.outgoing: dict[tuple[str, str], Counter] = {}
        self.rates: dict[str, Any] = {"endpoints": {}, "outgoing": {}}

    def endpoint(self, name: str) -> Counter:
        counter = self.endpoints.get(name)
        if counter is None:
            counter = self.endpoints[name] = Counter()
        return counter

    def flow(self, kind: str, topic: str) -> Counter:
        counter = self.outgoing.get((kind, topic))
        if counter is None:
            counter = self.outgoing[(kind, topic)] = Counter()
        return counter

    def refresh_rates(self) -> dict[str, Any]:
        """Recompute calls/s and errors/s since the previous refresh (each heartbeat)."""
        now = time.time()
        self.rates = {
            "endpoints": {
                name: dict(zip(("rate", "error_rate"), c.rates(now, self.started), strict=True))
                for name, c in self.endpoints.items()
            },
            "outgoing": {
                f"{kind} {topic}": dict(
                    zip(("rate", "error_rate"), c.rates(now, self.started), strict=True)
                )
                for (kind, topic), c in self.outgoing.items()
            },
        }
        return self.rates

    def outgoing_list(self) -> list[dict[str, Any]]:
        rates = self.rates["outgoing"]
        return [
            {
                "kind": kind,
                "topic": topic,
                "calls": c.calls,
                "errors": c.errors,
                "last_error": c.last_error,
                "average_time": c.average,
                **rates.get(f"{kind} {topic}", {"rate": 0.0, "error_rate": 0.0}),
            }
            for (kind, topic), c in sorted(self.outgoing.items())
        ]


_now_ns = time.perf_counter_ns


class StatsMiddleware(Middleware):
    """Counts every handling per endpoint and every publish/send/request per topic."""

    def __init__(self, stats: InstanceStats) -> None:
        self.stats = stats

    async def handle(self, ctx: Context, call_next: HandleNext) -> Any:
        name = ctx.handler.name
        counter = self.stats.endpoints.get(name) or self.stats.endpoint(name)
        start = _now_ns()
        try:
            result = await call_next(ctx)
        except Exception as exc:
            counter.add(_now_ns() - start, exc)
            raise
        counter.calls += 1  # Counter.add(..., None) inlined: this runs for every message
        counter.nanos += _now_ns() - start
        return result

    def _handle_hooks(self) -> HookPair | None:
        if type(self).handle is not StatsMiddleware.handle:
            return None
        endpoints, endpoint = self.stats.endpoints, self.stats.endpoint

        def enter(ctx: Context) -> tuple[Counter, int]:
            name = ctx.handler.name
            return endpoints.get(name) or endpoint(name), _now_ns()

        def leave(ctx: Context, token: tuple[Counter, int], error: BaseException | None) -> None:
            counter, start = token
            if error is None:
                counter.calls += 1
                counter.nanos += _now_ns() - start
            elif isinstance(error, Exception):  # a cancellation is not counted
                counter.add(_now_ns() - start, error)

        return enter, leave

    def _publish_hooks(self) -> HookPair | None:
        if type(self).publish is not StatsMiddleware.publish:
            return None
        outgoing, flow = self.stats.outgoing, self.stats.flow

        def enter(call: PublishCall) -> tuple[Counter, int] | None:
            kind, topic = call.kind, call.topic
            if kind == "reply" or topic.startswith("_"):
                return None
            return outgoing.get((kind, topic)) or flow(kind, topic), _now_ns()

        def leave(
            call: PublishCall, token: tuple[Counter, int] | None, error: BaseException | None
        ) -> None:
            if token is None:
                return
            counter, start = token
            if error is None:  # Counter.add(..., None) inlined: this runs for every message
                counter.calls += 1
                counter.nanos += _now_ns() - start
            elif isinstance(error, Exception):  # a cancellation is not counted
                counter.add(_now_ns() - start, error)

        return enter, leave

    async def publish(self, call: PublishCall, call_next: PublishNext) -> Any:
        if call.kind == "reply" or call.topic.startswith("_"):
            return await call_next(call)
        counter = self.stats.flow(call.kind, call.topic)
        start = time.perf_counter_ns()
        try:
            result = await call_next(call)
        except Exception as exc:
            counter.add(time.perf_counter_ns() - start, exc)
            raise
        counter.add(time.perf_counter_ns() - start, None)
        return result
