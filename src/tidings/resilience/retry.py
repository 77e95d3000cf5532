"""Retry: try a failed call again, with backoff, within caps and the pipeline's retry budget.

A failure is retried when ``retry_on`` says so (exception types or a predicate; by default the
transient ones: timeouts, a lost connection, an unavailable transport; never a remote handler's
error, which a second try usually repeats) or a result when ``retry_if_result`` says so. Tries
stop at ``max_attempts`` (the first included), or when the next delay would pass ``max_time``
seconds since the first try, or when the shared :class:`~.budget.RetryBudget` is used up; then
the last failure propagates (or the last result is returned). A failure carrying a
``retry_after`` hint (seconds, as RateLimited or an HTTP 429/503 does) waits at least that long.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, Closed, ConnectionLost, Timeout, TransportUnavailable
from . import events as ev
from .backoff import Backoff
from .budget import RetryBudget
from .context import Call, Run

TRANSIENT: tuple[type[BaseException], ...] = (Timeout, ConnectionLost, TransportUnavailable)
"""What a retry retries by default (``Closed``, a client closed on purpose, excepted)."""

RetryOn = tuple[type[BaseException], ...] | type[BaseException] | Callable[[BaseException], bool]


def default_retry_on(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT) and not isinstance(exc, Closed)


@dataclass
class Retry:
    max_attempts: int = 3
    max_time: float | None = None
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial=0.05, factor=2.0, max_delay=5.0, jitter="full")
    )
    retry_on: RetryOn = default_retry_on
    retry_if_result: Callable[[Any], bool] | None = None
    budget: RetryBudget | None = field(default_factory=RetryBudget)
    max_retry_after: float = 60.0
    rand: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise BadRequest("retry max_attempts counts the first try too: use 1 or more")
        if self.max_time is not None and self.max_time <= 0:
            raise BadRequest("retry max_time must be > 0 seconds (or None for no cap)")
        on = self.retry_on
        self._should: Callable[[BaseException], bool]
        if isinstance(on, type):
            on = (on,)
        if isinstance(on, tuple):
            types = on
            self._should = lambda exc: isinstance(exc, types)
        else:
            self._should = on

    def should_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, Exception) and bool(self._should(exc))

    async def execute(self, call: Call, run: Run) -> Any:
        timer = run.timer
        started = timer.now()
        budget = self.budget
        if budget is not None:
            budget.request(started)
        previous: float | None = None
        while True:
            hint: float | None = None
            try:
                result = await call()
            except Exception as exc:
                if not self.should_retry(exc) or run.attempt >= self.max_attempts:
                    raise
                failure: BaseException | None = exc
                hint = getattr(exc, "retry_after", None)
            else:
                if self.retry_if_result is None or not self.retry_if_result(result):
                    return result
                if run.attempt >= self.max_attempts:
                    return result
                failure = None
            delay = self.backoff.delay(run.attempt, self.rand, previous)
            if isinstance(hint, int | float) and hint > 0:
                delay = min(max(delay, float(hint)), self.max_retry_after)
            if self.max_time is not None and timer.now() + delay - started > self.max_time:
                return self._give_up(failure, result if failure is None else None)
            if budget is not None and not budget.try_retry(timer.now()):
                run.emit(ev.BUDGET_EXHAUSTED, error=failure)
                return self._give_up(failure, result if failure is None else None)
            run.emit(ev.RETRY, delay=delay, error=failure)
            previous = delay
            await timer.sleep(delay)
            run.attempt += 1

    @staticmethod
    def _give_up(failure: BaseException | None, result: Any) -> Any:
        if failure is not None:
            raise failure
        return result
