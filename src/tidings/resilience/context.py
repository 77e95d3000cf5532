"""The state of one call through a pipeline, handed from strategy to strategy."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from .clocks import Timer
from .events import Event, Observer

Call = Callable[[], Coroutine[Any, Any, Any]]  # a coroutine: hedging runs it as a task


class Run:
    """One call: which policy and callee, its observer and timer, and the attempt number."""

    __slots__ = ("attempt", "callee", "observer", "policy", "timer")

    def __init__(self, policy: str, callee: str | None, observer: Observer, timer: Timer) -> None:
        self.policy = policy
        self.callee = callee
        self.observer = observer
        self.timer = timer
        self.attempt = 1

    def emit(self, name: str, **fields: Any) -> None:
        self.observer.on_event(
            Event(name, self.policy, self.callee, attempt=self.attempt, **fields)
        )


class Strategy(Protocol):
    """A pipeline stage: run ``call`` (the rest of the pipeline) under this stage's rule."""

    async def execute(self, call: Call, run: Run) -> Any: ...
