"""Declaring a saga: its name, its state type and its steps, in order.

    saga = tidings.Saga("refund-order", state=RefundState)

    @saga.step(command="payment.refund", compensate="payment.cancel-refund", timeout=30,
               retry=tidings.resilience.Retry(max_attempts=3, retry_on=tidings.StepFailed))
    def refund(state: RefundState) -> RefundPayment:
        return RefundPayment(order=state.order, amount=state.amount)

    @refund.on_reply
    def refunded(state: RefundState, reply: PaymentRefunded) -> None:
        state.refund_id = reply.refund_id

A step's function builds the command sent to ``command`` from the state; its ``on_reply``
function (optional) folds the participant's reply into the state. ``compensate`` is the
topic of the command that undoes the step (sent with the same body unless ``@step.compensation``
builds another). ``pivot=True`` marks the go/no-go step: the steps before it can be
compensated, the pivot and the steps after it cannot, and the steps after it are retried
until they succeed. Nothing here does I/O; :mod:`.machine` drives the steps.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

from pydantic import TypeAdapter

from ..errors import BadRequest
from ..names import validate_name
from ..resilience.backoff import Backoff
from ..resilience.retry import Retry

DEFAULT_TIMEOUT = 60.0
AFTER_PIVOT_BACKOFF = Backoff(initial=1.0, factor=2.0, max_delay=60.0, jitter=0.2)
"""How a step after the pivot (which cannot give up) is retried when it has no retry=."""
COMPENSATION_BACKOFF = Backoff(initial=1.0, factor=2.0, max_delay=60.0, jitter=0.2)
"""How an unanswered compensation is sent again (compensations are retried until answered)."""

ApplyFn = TypeVar("ApplyFn", bound=Callable[[Any, Any], Any])
BuildFn = TypeVar("BuildFn", bound=Callable[[Any], Any])


@dataclass
class Step:
    """One step of a saga (made by :meth:`Saga.step`)."""

    name: str
    index: int
    command: str
    build: Callable[[Any], Any]
    compensate: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    retry: Retry | None = None
    pivot: bool = False
    reply_type: Any = None
    apply: Callable[[Any, Any], Any] | None = None
    build_compensation: Callable[[Any], Any] | None = None
    _reply_adapter: TypeAdapter[Any] | None = field(default=None, repr=False)

    def on_reply(self, fn: ApplyFn) -> ApplyFn:
        """Decorate ``fn(state, reply)``: it folds a successful reply into the state (the
        reply is validated against ``fn``'s second parameter's annotation, if any)."""
        self.apply = fn
        hints = _hints(fn)
        params = list(inspect.signature(fn).parameters)
        if len(params) >= 2 and params[1] in hints:
            self.reply_type = hints[params[1]]
            self._reply_adapter = TypeAdapter(self.reply_type)
        return fn

    def compensation(self, fn: BuildFn) -> BuildFn:
        """Decorate ``fn(state)``: it builds the compensating command's body (by default the
        step's own command body, as it was sent)."""
        if self.compensate is None:
            raise BadRequest(f"step {self.name} has no compensate= topic to send this to")
        self.build_compensation = fn
        return fn

    def reply_value(self, data: Any) -> Any:
        """The reply as the ``on_reply`` function takes it (validated when it is typed)."""
        if self._reply_adapter is None:
            return data
        return self._reply_adapter.validate_python(data)

    def __call__(self, state: Any) -> Any:
        return self.build(state)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return get_type_hints(fn)
    except Exception:  # forward references that do not resolve: treat as untyped
        return {}


class Saga:
    """A named saga definition: the state type and the steps in the order they run."""

    def __init__(self, name: str, *, state: Any = dict, timeout: float = DEFAULT_TIMEOUT) -> None:
        validate_name("saga", name)
        self.name = name
        self.state_type = state
        self.state_adapter: TypeAdapter[Any] = TypeAdapter(state)
        self.timeout = timeout
        self.steps: list[Step] = []

    def step(
        self,
        *,
        command: str,
        compensate: str | None = None,
        timeout: float | None = None,
        retry: Retry | None = None,
        pivot: bool = False,
        name: str | None = None,
    ) -> Callable[[Callable[[Any], Any]], Step]:
        """Add a step that sends a command to ``command`` and waits ``timeout`` seconds (the
        saga's default) for the reply; ``retry`` (a :class:`tidings.resilience.Retry`) says
        how often and how soon a failed or unanswered step is tried again before the saga
        compensates: its ``retry_on`` sees :class:`tidings.StepFailed` for a failure reply and
        :class:`tidings.Timeout` for no reply (by default only timeouts are retried)."""
        validate_name("topic", command)
        if compensate is not None:
            validate_name("topic", compensate)
        if timeout is not None and timeout <= 0:
            raise BadRequest(f"step timeout must be > 0 seconds, got {timeout!r}")

        def add(fn: Callable[[Any], Any]) -> Step:
            step_name = name or fn.__name__
            if any(s.name == step_name for s in self.steps):
                raise BadRequest(f"saga {self.name} has two steps named {step_name!r}")
            after_pivot = any(s.pivot for s in self.steps)
            if after_pivot and pivot:
                raise BadRequest(f"saga {self.name}: only one step can be the pivot")
            if (after_pivot or pivot) and compensate is not None:
                where = "the pivot" if pivot else "a step after the pivot"
                raise BadRequest(
                    f"saga {self.name}: step {step_name} is {where}, which is never "
                    "compensated (the saga only moves forward from the pivot): drop compensate="
                )
            step = Step(
                name=step_name,
                index=len(self.steps),
                command=command,
                build=fn,
                compensate=compensate,
                timeout=self.timeout if timeout is None else timeout,
                retry=retry,
                pivot=pivot,
            )
            self.steps.append(step)
            return step

        return add

    @property
    def pivot_index(self) -> int | None:
        return next((s.index for s in self.steps if s.pivot), None)

    def after_pivot(self, step: Step) -> bool:
        pivot = self.pivot_index
        return pivot is not None and step.index > pivot

    def dump_state(self, state: Any) -> str:
        return self.state_adapter.dump_json(state).decode()

    def load_state(self, text: str) -> Any:
        return self.state_adapter.validate_json(text)

    def check(self) -> None:
        if not self.steps:
            raise BadRequest(f"saga {self.name} has no steps: add some with @saga.step(...)")

    def __repr__(self) -> str:
        return f"Saga({self.name!r}, steps={[s.name for s in self.steps]})"
