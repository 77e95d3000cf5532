"""Circuit breaker: stop calling a callee that keeps failing, then probe it back to health.

One :class:`Circuit` per callee key (a topic, a host, ``"topic@instance"``...), created on
first use. *Closed*: calls pass and their outcomes fill a sliding window (the last ``window``
calls, or the last ``window_seconds``); once it holds ``minimum_calls`` and the failure rate
reaches ``failure_rate`` (or the rate of calls slower than ``slow_call_duration`` reaches
``slow_call_rate``) the circuit *opens*: calls fail fast with :class:`~tidings.CircuitOpen`
for ``open_for`` seconds (times ``open_growth`` for each consecutive re-open, up to
``max_open_for``). Then it is *half-open*: exactly ``half_open_probes`` calls are let through;
when all have finished the circuit closes, or opens again if their failure (or slow) rate
reaches the threshold. ``isolate()`` holds it open by hand, ``reset()`` closes it.

State lives in plain attributes changed between awaits, so it is consistent under asyncio
concurrency without locks; an outcome of a call admitted before a state change (its
*generation*) is not counted against the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, CircuitOpen, Rejected
from . import events as ev
from .context import Call, Run
from .events import Event, Observer
from .windows import CountWindow, TimeWindow, Window

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
ISOLATED = "isolated"


def default_failure_on(exc: BaseException) -> bool:
    """Every exception counts against the callee except the caller's own rejections."""
    return not isinstance(exc, Rejected)


@dataclass
class CircuitBreaker:
    failure_rate: float = 0.5
    slow_call_rate: float = 1.0
    slow_call_duration: float = 30.0
    window: int = 100
    window_seconds: float | None = None
    minimum_calls: int = 20
    open_for: float = 10.0
    open_growth: float = 1.0
    max_open_for: float = 300.0
    half_open_probes: int = 1
    failure_on: Callable[[BaseException], bool] = default_failure_on
    circuits: dict[str | None, Circuit] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("failure_rate", "slow_call_rate"):
            if not 0 < getattr(self, name) <= 1:
                raise BadRequest(f"breaker {name} is a fraction: use a value in (0, 1]")
        if self.minimum_calls < 1 or self.half_open_probes < 1:
            raise BadRequest("breaker minimum_calls and half_open_probes must be >= 1")
        if self.open_for <= 0 or self.open_growth < 1:
            raise BadRequest("breaker open_for must be > 0 seconds and open_growth >= 1")
        self._policy = "-"
        self._observer: Observer | None = None
        self._now: Callable[[], float] = lambda: 0.0

    def bind(self, policy: str, observer: Observer | None, now: Callable[[], float]) -> None:
        self._policy, self._observer, self._now = policy, observer, now

    def circuit(self, callee: str | None = None) -> Circuit:
        """The circuit of ``callee`` (created closed on first use)."""
        c = self.circuits.get(callee)
        if c is None:
            c = self.circuits[callee] = Circuit(self, callee)
        return c

    async def execute(self, call: Call, run: Run) -> Any:
        circuit = self.circuits.get(run.callee) or self.circuit(run.callee)
        now = self._now
        generation = circuit.acquire(run)
        started = now()
        try:
            result = await call()
        except Exception as exc:
            circuit.record(generation, now() - started, self.failure_on(exc))
            raise
        except BaseException:
            circuit.release(generation)
            raise
        circuit.record(generation, now() - started, False)
        return result


class Circuit:
    """The breaker state of one callee."""

    def __init__(self, config: CircuitBreaker, callee: str | None) -> None:
        self.config = config
        self.callee = callee
        self.window: Window = (
            TimeWindow(config.window_seconds)
            if config.window_seconds is not None
            else CountWindow(config.window)
        )
        self._state = CLOSED
        self.generation = 0
        self.opened_at = 0.0
        self.open_duration = config.open_for
        self.reopens = 0
        self.probes_admitted = 0
        self.probes = [0, 0, 0]  # finished, failed, slow
        self.listeners: list[Callable[[Circuit, str, str], None]] = []

    @property
    def state(self) -> str:
        """closed, open, half_open or isolated (an open circuit whose time is up is
        half-open)."""
        if self._state == OPEN and self.config._now() >= self.opened_at + self.open_duration:
            self._move(HALF_OPEN)
        return self._state

    def _move(self, state: str, why: str = "") -> None:
        old, self._state = self._state, state
        self.generation += 1
        if state == HALF_OPEN:
            self.probes_admitted = 0
            self.probes = [0, 0, 0]
        elif state in (OPEN, ISOLATED):
            self.opened_at = self.config._now()
        elif state == CLOSED:
            self.window.clear()
            self.reopens = 0
            self.open_duration = self.config.open_for
        observer = self.config._observer
        if observer is not None:
            detail = f"from={old}" + (f" {why}" if why else "")
            observer.on_event(
                Event(
                    ev.BREAKER_STATE, self.config._policy, self.callee, state=state, detail=detail
                )
            )
        for listener in self.listeners:
            listener(self, old, state)

    def acquire(self, run: Run | None = None) -> int:
        """Admit one call (returns its generation) or raise CircuitOpen."""
        state = self._state if self._state == CLOSED else self.state
        if state == CLOSED:
            return self.generation
        if state == HALF_OPEN and self.probes_admitted < self.config.half_open_probes:
            self.probes_admitted += 1
            return self.generation
        if run is not None:
            run.emit(ev.BREAKER_REJECTED, state=state)
        retry_after = None
        if state == OPEN:
            retry_after = max(0.0, self.opened_at + self.open_duration - self.config._now())
        what = f"the circuit of {self.callee!r}" if self.callee else "the circuit"
        raise CircuitOpen(
            f"{what} is {state.replace('_', '-')} (policy {self.config._policy!r}): recent calls "
            "failed too often, so this call failed fast without reaching the callee"
            + (f"; it lets a probe through in {retry_after:.1f}s" if retry_after else ""),
            retry_after=retry_after,
        )

    def release(self, generation: int) -> None:
        """A call ended without an outcome (cancelled): free its probe slot."""
        if generation == self.generation and self._state == HALF_OPEN:
            self.probes_admitted -= 1

    def record(self, generation: int, duration: float, failed: bool) -> None:
        if generation != self.generation:
            return  # admitted under an earlier state
        cfg = self.config
        slow = duration >= cfg.slow_call_duration
        if self._state == CLOSED:
            self.window.record(cfg._now(), failed, slow)
            calls, failures, slows = self.window.totals(cfg._now())
            if calls < cfg.minimum_calls:
                return
            if failures / calls >= cfg.failure_rate:
                self._move(OPEN, f"failure rate {failures}/{calls}")
            elif slows / calls >= cfg.slow_call_rate:
                self._move(OPEN, f"slow-call rate {slows}/{calls}")
        elif self._state == HALF_OPEN:
            p = self.probes
            p[0] += 1
            p[1] += failed
            p[2] += slow
            if p[0] < cfg.half_open_probes:
                return
            n = p[0]
            if p[1] / n >= cfg.failure_rate or p[2] / n >= cfg.slow_call_rate:
                self.reopens += 1
                self.open_duration = min(
                    cfg.max_open_for, cfg.open_for * cfg.open_growth**self.reopens
                )
                self._move(OPEN, f"{p[1]} of {n} probes failed, {p[2]} slow")
            else:
                self._move(CLOSED, f"{n} probes passed")

    def isolate(self) -> None:
        """Hold the circuit open (every call fails fast) until :meth:`reset`."""
        self._move(ISOLATED, "isolated by hand")

    def reset(self) -> None:
        """Close the circuit and forget its window."""
        self._move(CLOSED, "reset by hand")
