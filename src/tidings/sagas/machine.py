"""The saga state machine: what a reply or a timeout does to an instance. No I/O.

    running  --reply ok, more steps-->  running (next step's command sent)
    running  --reply ok, last step-->   completed
    running  --failure, timeout or      running (same step again, if its retry policy says so)
               malformed reply-->       compensating (the completed steps' compensations, one
                                        at a time, last first) -> compensated
    compensating --compensation ok-->   the next lower compensation, or compensated
    compensating --no answer-->         the same compensation again, with backoff (forever)
    compensating --compensation failed-> failed (an operator must look)

Operator actions (:meth:`Machine.act`), each recorded in the history with who and why:

    running|compensating|failed --retry-->  the current command (step or compensation) sent
                                            again as a new attempt
    running (before the pivot) --compensate--> compensating (the step in flight included)
    running|compensating|failed --abort-->  aborted, nothing sent (fixed by hand)

A step after the pivot never gives up: it is tried again until it succeeds. A step that timed
out is compensated too (its command may still take effect later; the participant helper turns a
compensation that overtakes its command into a marker that makes the late command a no-op); so
is a step answered with a malformed reply (not JSON, a result that does not validate, a step
name that is not the awaited one), which fails at once, as a ``StepFailed("malformed reply:
...")``, rather than at its timeout; a reply of the instance for a step it does not have counts
as a malformed reply to the awaited command. A failure reply means the participant rolled its
work back: that step is not compensated. A malformed reply to a compensation fails the saga (an
operator must look). Each transition mutates the :class:`~.store.SagaRecord` and returns the
commands to send; the orchestrator commits both in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from ..errors import SagaConflict, StepFailed, Timeout
from . import protocol as p
from .definition import AFTER_PIVOT_BACKOFF, COMPENSATION_BACKOFF, Saga, Step
from .store import (
    ABORTED,
    COMPENSATED,
    COMPENSATING,
    COMPLETED,
    FAILED,
    RUNNING,
    SagaRecord,
)

MAY_HAVE_TAKEN_EFFECT = ("done", "timed-out", "malformed", "cancelled")
"""The step statuses that are compensated (a failure reply means the step left nothing)."""
ALLOWED = {
    p.RETRY: (RUNNING, COMPENSATING, FAILED),
    "compensate": (RUNNING,),
    p.ABORT: (RUNNING, COMPENSATING, FAILED),
}
WHAT = {
    p.RETRY: "sends the current step's (or compensation's) command again",
    "compensate": "undoes the completed steps of a running saga",
    p.ABORT: "stops a running, compensating or failed saga",
}


def refusal(record: SagaRecord, action: str) -> str | None:
    """Why ``action`` is refused for the instance as it is (status only); None if allowed."""
    if record.status in ALLOWED[action]:
        return None
    hint = ""
    if action == "compensate" and record.status == COMPENSATING:
        hint = "; it is compensating already: retry resends the current compensation"
    return (
        f"saga {record.id} is {record.status}: cannot {action} it ({action} {WHAT[action]}){hint}"
    )


@dataclass(frozen=True)
class Send:
    """A command to write to the outbox in the transition's transaction."""

    topic: str
    payload: Any
    msg_id: str
    key: str
    headers: dict[str, str]
    delay: float | None = None


class Machine:
    """Transitions of one saga definition."""

    def __init__(self, saga: Saga) -> None:
        saga.check()
        self.saga = saga

    def begin(
        self, saga_id: str, state: Any, now: float | None = None
    ) -> tuple[SagaRecord, list[Send]]:
        now = time.time() if now is None else now
        saga = self.saga
        record = SagaRecord(
            id=saga_id, name=saga.name, status=RUNNING, step=0, phase=p.FORWARD, attempt=0,
            token=None, deadline=None, state=saga.dump_state(state),
            steps=[{"name": s.name, "status": "pending", "attempts": 0, "compensations": 0}
                   for s in saga.steps],
            created_at=now, updated_at=now,
        )  # fmt: skip
        record.log(None, "started")
        return record, [self._forward(record, saga.steps[0], 1, now)]

    def on_reply(
        self, record: SagaRecord, reply: p.Reply, now: float | None = None
    ) -> list[Send] | None:
        """The commands a reply (or timeout) leads to; None when it is stale (a duplicate, or
        for a step no longer awaited): nothing changes. A malformed reply for the awaited
        command, or a reply of this instance for a step it does not have, fails the awaited
        command at once (the history says why)."""
        if record.status not in (RUNNING, COMPENSATING):
            return None
        if reply.token != record.token:
            unknown = None if reply.timeout else self.unknown_step(record, reply)
            if unknown is None:
                return None
            reply = p.Reply(record.id, reply.token, False, malformed=unknown)
        elif reply.step is not None and reply.step != self.saga.steps[record.step].name:
            reply = p.Reply(record.id, reply.token, False, malformed=(
                f"it says it is for step {reply.step!r}, but its correlation id is the "
                f"command of step {self.saga.steps[record.step].name!r}"))  # fmt: skip
        now = time.time() if now is None else now
        step = self.saga.steps[record.step]
        if record.phase == p.FORWARD:
            if reply.timeout:
                timed_out = Timeout(f"no reply from {step.command} within {step.timeout}s")
                return self._failed(record, step, timed_out, now, outcome="timed-out")
            if reply.malformed is None and reply.ok:
                try:
                    return self._done(record, step, reply.result, now)
                except p.MalformedReply as exc:
                    reply = p.Reply(record.id, reply.token, False, malformed=str(exc))
            if reply.malformed is not None:
                malformed = StepFailed(f"malformed reply: {reply.malformed}")
                return self._failed(record, step, malformed, now, outcome="malformed")
            return self._failed(record, step, StepFailed(reply.error), now, outcome="failed")
        entry = record.steps[step.index]
        if reply.timeout:
            attempt = record.attempt + 1
            delay = COMPENSATION_BACKOFF.delay(record.attempt)
            record.log(step.name, "compensation-timed-out", f"attempt {record.attempt}")
            return [self._compensation(record, step, attempt, now, delay)]
        if reply.malformed is not None or not reply.ok:
            error = reply.error or "failed"
            if reply.malformed is not None:
                error = f"malformed reply: {reply.malformed}"
            entry.update(status="compensation-failed", error=error, finished_at=now)
            record.status, record.token, record.deadline = FAILED, None, None
            record.error = f"compensation of {step.name} failed: {error}"
            record.log(step.name, "compensation-failed", error)
            return []
        entry.update(status="compensated", finished_at=now)
        record.log(step.name, "compensated")
        return self._next_compensation(record, step.index, now)

    def unknown_step(self, record: SagaRecord, reply: p.Reply) -> str | None:
        """Why a reply of this instance that is not for the awaited command is for no command
        the instance could have sent (None: it is a duplicate or a late one, to ignore)."""
        parsed = p.parse_token(reply.token)
        steps = self.saga.steps
        if parsed is None or parsed[0] != record.id or parsed[1] >= len(steps):
            return (
                f"a reply for an unknown step: its correlation id {reply.token!r} is no command "
                f"of saga {record.id} (steps {', '.join(s.name for s in steps)})"
            )
        if reply.step is not None and reply.step != steps[parsed[1]].name:
            return (
                f"a reply for an unknown step: it says it is for step {reply.step!r}, but its "
                f"correlation id {reply.token!r} is the command of step {steps[parsed[1]].name!r}"
            )
        return None

    # operators
    def act(self, record: SagaRecord, action: p.Action, now: float | None = None) -> list[Send]:
        """An operator's action: the commands it sends; SagaConflict (nothing changed) when
        the instance's status, or the pivot, does not allow it."""
        why = refusal(record, action.action)
        if why is not None:
            raise SagaConflict(why)
        now = time.time() if now is None else now
        step = self.saga.steps[record.step]
        detail = f"by {action.by}" + (f": {action.reason}" if action.reason else "")
        detail += f" ({action.request})"
        if action.action == p.ABORT:
            record.log(step.name, "operator-abort", detail)
            record.status, record.token, record.deadline = ABORTED, None, None
            record.error = record.error or f"aborted {detail}"
            return []
        if action.action == p.RETRY:
            record.log(step.name, "operator-retry", detail)
            if record.phase == p.FORWARD:
                return [self._forward(record, step, record.attempt + 1, now)]
            record.status = COMPENSATING  # a failed compensation is tried again
            return [self._compensation(record, step, record.attempt + 1, now)]
        pivot = self.saga.pivot_index
        if pivot is not None and record.step >= pivot:
            raise SagaConflict(
                f"saga {record.id} is at step {step.name}, at or past the pivot "
                f"{self.saga.steps[pivot].name}: it only moves forward; retry it, or abort it "
                "once you have fixed things by hand"
            )
        record.log(step.name, "operator-compensate", detail)
        # the step in flight may still take effect: it is compensated with the completed ones
        record.steps[step.index].update(status="cancelled", finished_at=now)
        record.status, record.failed_step = COMPENSATING, step.name
        record.error = f"{step.name}: compensated {detail}"
        return self._next_compensation(record, step.index + 1, now)

    # forward
    def _forward(
        self, record: SagaRecord, step: Step, attempt: int, now: float, delay: float = 0.0
    ) -> Send:
        state = self.saga.load_state(record.state)
        payload = to_jsonable_python(step.build(state))
        token = p.command_id(record.id, step.index, p.FORWARD, attempt)
        entry = record.steps[step.index]
        entry.update(status="running", attempts=attempt, command=payload)
        entry.setdefault("started_at", now)
        _await(record, step, p.FORWARD, attempt, now + delay + step.timeout)
        detail = f"{step.command} attempt {attempt}" + (f" in {delay:.2f}s" if delay else "")
        record.log(step.name, "command-sent", detail)
        headers = p.command_headers(self.saga.name, record.id, step.name, p.FORWARD, token)
        return Send(step.command, payload, token, record.id, headers, delay or None)

    def _done(self, record: SagaRecord, step: Step, result: Any, now: float) -> list[Send]:
        if step.apply is not None:
            state = self.saga.load_state(record.state)
            try:
                value = step.reply_value(result)
            except ValidationError as exc:
                raise p.MalformedReply(f"it does not fit {step.reply_type!r}: {exc}") from None
            changed = step.apply(state, value)
            record.state = self.saga.dump_state(state if changed is None else changed)
        record.steps[step.index].update(status="done", finished_at=now, error=None)
        record.log(step.name, "step-done")
        following = step.index + 1
        if following < len(self.saga.steps):
            return [self._forward(record, self.saga.steps[following], 1, now)]
        record.status, record.token, record.deadline = COMPLETED, None, None
        record.log(None, "completed")
        return []

    def _failed(
        self, record: SagaRecord, step: Step, error: Exception, now: float, *, outcome: str
    ) -> list[Send]:
        """The awaited command failed (``outcome``: failed, timed-out or malformed): retried
        if the policy says so, else the saga compensates."""
        entry = record.steps[step.index]
        entry["error"] = str(error)
        attempt = record.attempt
        retry = step.retry
        event = {"timed-out": "step-timed-out", "malformed": "step-malformed-reply"}.get(
            outcome, "step-failed"
        )
        if self.saga.after_pivot(step):  # past the pivot: only forward
            backoff = retry.backoff if retry is not None else AFTER_PIVOT_BACKOFF
            record.log(step.name, event, str(error))
            return [self._forward(record, step, attempt + 1, now, backoff.delay(attempt))]
        if retry is not None and attempt < retry.max_attempts and retry.should_retry(error):
            record.log(step.name, event, str(error))
            return [self._forward(record, step, attempt + 1, now, retry.backoff.delay(attempt))]
        entry.update(status=outcome, finished_at=now)
        record.status, record.failed_step = COMPENSATING, step.name
        record.error = f"{step.name}: {error}"
        record.log(step.name, event, str(error))
        # a timed-out command, or one answered with a malformed reply, may have taken effect:
        # it is compensated with the completed ones (a failure reply means it left nothing)
        return self._next_compensation(
            record, step.index if outcome == "failed" else step.index + 1, now
        )

    # backward
    def _next_compensation(self, record: SagaRecord, below: int, now: float) -> list[Send]:
        for index in range(below - 1, -1, -1):
            step = self.saga.steps[index]
            status = record.steps[index]["status"]
            if step.compensate is not None and status in MAY_HAVE_TAKEN_EFFECT:
                return [self._compensation(record, step, 1, now)]
        record.status, record.token, record.deadline = COMPENSATED, None, None
        record.log(None, "compensated")
        return []

    def _compensation(
        self, record: SagaRecord, step: Step, attempt: int, now: float, delay: float = 0.0
    ) -> Send:
        assert step.compensate is not None
        entry = record.steps[step.index]
        if step.build_compensation is not None:
            state = self.saga.load_state(record.state)
            payload = to_jsonable_python(step.build_compensation(state))
        else:
            payload = entry.get("command")
        token = p.command_id(record.id, step.index, p.COMPENSATE, attempt)
        entry.update(status="compensating", compensations=attempt)
        _await(record, step, p.COMPENSATE, attempt, now + delay + step.timeout)
        record.log(step.name, "compensation-sent", f"{step.compensate} attempt {attempt}")
        headers = p.command_headers(
            self.saga.name, record.id, step.name, p.COMPENSATE, token, command=step.command
        )
        return Send(step.compensate, payload, token, record.id, headers, delay or None)


def _await(record: SagaRecord, step: Step, phase: str, attempt: int, deadline: float) -> None:
    """The instance now waits for the reply to this command (its msg_id is the token)."""
    record.step, record.phase, record.attempt = step.index, phase, attempt
    record.token = p.command_id(record.id, step.index, phase, attempt)
    record.deadline = deadline
