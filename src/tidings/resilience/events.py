"""What the strategies report: one :class:`Event` type and one :class:`Observer` interface.

Every strategy tells the pipeline's observer what it did (an attempt, a retry and its delay,
an exhausted retry budget, a breaker transition, a rejection, a hedge, a timeout, a fallback),
naming the policy and the callee. :class:`LogObserver` (the default) writes log lines;
:class:`Counters` keeps per-event metrics; a metrics exporter is one more observer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("tidings.resilience")

#: Event names (``Event.name``), each emitted by one strategy.
ATTEMPT = "attempt"  # a call reached the callee (one per attempt, hedges included)
SUCCESS = "success"  # the pipeline returned a result
FAILURE = "failure"  # the pipeline raised (after retries and fallback)
RETRY = "retry"  # a failed attempt will be tried again after ``delay``
BUDGET_EXHAUSTED = "retry_budget_exhausted"  # a retry was refused by the retry budget
TIMEOUT = "timeout"  # an attempt or the whole call ran out of time (``detail``: which)
BREAKER_STATE = "breaker_state"  # a circuit changed state (``state``, ``detail`` = old state)
BREAKER_REJECTED = "breaker_rejected"  # a call failed fast on an open circuit
BULKHEAD_REJECTED = "bulkhead_rejected"  # full bulkhead, or its queue timeout fired
RATE_LIMITED = "rate_limited"  # no token in the bucket
HEDGE = "hedge"  # a hedged attempt was sent
HEDGE_WON = "hedge_won"  # a hedged attempt answered first
FALLBACK = "fallback"  # the fallback replaced a failure

_WARN = {BUDGET_EXHAUSTED, BREAKER_STATE, BULKHEAD_REJECTED, RATE_LIMITED, FALLBACK, TIMEOUT}
_QUIET = {ATTEMPT, SUCCESS, HEDGE_WON}


@dataclass(slots=True)
class Event:
    name: str
    policy: str
    callee: str | None
    attempt: int = 0
    delay: float | None = None
    duration: float | None = None
    state: str | None = None
    detail: str | None = None
    error: BaseException | None = field(default=None, repr=False)


class Observer(Protocol):
    """Gets every event. An observer with a false ``routine`` attribute is spared the
    ``attempt`` and ``success`` events (the hot path); the log observer is, unless DEBUG."""

    def on_event(self, event: Event) -> None: ...


class LogObserver:
    """Log lines naming policy and callee: state changes, rejections and exhausted budgets at
    WARNING, retries and failures at INFO, attempts and successes at DEBUG."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    @property
    def routine(self) -> bool:
        """Whether it wants the routine events (attempt, success): only when DEBUG is on."""
        return self.logger.isEnabledFor(logging.DEBUG)

    def on_event(self, event: Event) -> None:
        level = (
            logging.WARNING
            if event.name in _WARN
            else logging.DEBUG
            if event.name in _QUIET
            else logging.INFO
        )
        if not self.logger.isEnabledFor(level):
            return
        parts: list[Any] = [f"policy={event.policy}", f"callee={event.callee or '-'}"]
        if event.attempt:
            parts.append(f"attempt={event.attempt}")
        if event.state:
            parts.append(f"state={event.state}")
        if event.delay is not None:
            parts.append(f"delay={event.delay:.3f}s")
        if event.detail:
            parts.append(event.detail)
        if event.error is not None:
            parts.append(f"error={type(event.error).__name__}: {event.error}")
        self.logger.log(level, "resilience %s %s", event.name, " ".join(parts))


class Counters:
    """Counts events by name (and by ``(name, callee)``): the metrics a test or bench reads."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_callee: Counter[tuple[str, str | None]] = Counter()
        self.events: list[Event] = []
        self.keep = False

    def on_event(self, event: Event) -> None:
        self.counts[event.name] += 1
        self.by_callee[(event.name, event.callee)] += 1
        if self.keep:
            self.events.append(event)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]


class Observers:
    """Several observers as one."""

    def __init__(self, observers: Iterable[Observer]) -> None:
        self.observers = list(observers)

    def on_event(self, event: Event) -> None:
        for observer in self.observers:
            observer.on_event(event)
