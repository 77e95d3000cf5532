"""Pipeline: the strategies of one policy composed in a fixed order, outer to inner::

    fallback -> total timeout -> retry -> circuit breaker -> bulkhead -> rate limiter
             -> hedging -> attempt timeout -> the call

Why this order: the fallback sees every failure, including the total timeout's; the total
timeout bounds the retries and their sleeps; each retry passes the breaker (an open circuit
fails a retry fast) and the bulkhead and rate limiter (a retry takes a slot and a token like
any call); hedged attempts share their call's slot; each attempt, hedges included, has its
own timeout. Every stage is optional; an empty pipeline just awaits the call.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from ..errors import BadRequest
from . import events as ev
from .breaker import Circuit, CircuitBreaker
from .bulkhead import Bulkhead
from .clocks import LoopTimer, Timer
from .context import Call, Run, Strategy
from .events import LogObserver, Observer
from .fallback import Fallback
from .hedging import Hedge
from .ratelimit import RateLimiter
from .retry import Retry
from .timeouts import TimeoutStrategy

P = ParamSpec("P")
T = TypeVar("T")


class Pipeline:
    """A named resilience policy: ``await pipeline.run(fn, *args)`` or ``@pipeline``."""

    def __init__(
        self,
        name: str = "default",
        *,
        timeout: float | None = None,
        total_timeout: float | None = None,
        retry: Retry | None = None,
        breaker: CircuitBreaker | None = None,
        bulkhead: Bulkhead | None = None,
        rate_limit: RateLimiter | None = None,
        hedge: Hedge | None = None,
        fallback: Fallback | None = None,
        observer: Observer | None = None,
        timer: Timer | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.retry = retry
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.rate_limit = rate_limit
        self.hedge = hedge
        self.fallback = fallback
        self.observer: Observer = observer if observer is not None else LogObserver()
        self.timer: Timer = timer if timer is not None else LoopTimer()
        if breaker is not None:
            breaker.bind(name, self.observer, self.timer.now)
        stages: list[Strategy | None] = [
            fallback,
            TimeoutStrategy(total_timeout, "total") if total_timeout is not None else None,
            retry,
            breaker,
            bulkhead,
            rate_limit,
            hedge,
            TimeoutStrategy(timeout, "attempt") if timeout is not None else None,
        ]
        self.stages: list[Strategy] = [s for s in stages if s is not None]
        self._sync: Any = None

    def __repr__(self) -> str:
        names = ", ".join(type(s).__name__ for s in self.stages) or "empty"
        return f"Pipeline({self.name!r}: {names})"

    async def run(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        callee: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the pipeline. ``callee`` names what is
        called (a topic, a host): breakers, per-callee bulkheads and buckets, and log lines
        are keyed by it."""
        if not self.stages:
            return await fn(*args, **kwargs)
        run = Run(self.name, callee, self.observer, self.timer)
        routine = getattr(self.observer, "routine", True)
        started = self.timer.now()

        async def attempt() -> T:
            if routine:
                run.emit(ev.ATTEMPT)
            return await fn(*args, **kwargs)

        call: Call = attempt
        for stage in reversed(self.stages):
            call = functools.partial(stage.execute, call, run)
        try:
            result: T = await call()
        except Exception as exc:
            run.emit(ev.FAILURE, error=exc, duration=self.timer.now() - started)
            raise
        if routine:
            run.emit(ev.SUCCESS, duration=self.timer.now() - started)
        return result

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function: each call runs through the pipeline, with the
        function's qualified name as the callee."""
        callee = getattr(fn, "__qualname__", None)

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.run(fn, *args, callee=callee, **kwargs)

        return wrapper

    def circuit(self, callee: str | None = None) -> Circuit:
        """The breaker circuit of ``callee`` (to read its state, isolate or reset it)."""
        if self.breaker is None:
            raise BadRequest(f"pipeline {self.name!r} has no circuit breaker")
        return self.breaker.circuit(callee)

    @property
    def sync(self) -> Any:
        """The sync twin (:class:`~tidings.resilience.sync.SyncPipeline`) of this pipeline."""
        if self._sync is None:
            from .sync import SyncPipeline

            self._sync = SyncPipeline(self)
        return self._sync
