"""The operator actions of the pure state machine (no I/O): what each sends and records, for
each status, and the refusals (the integration tests run them on a broker and databases)."""

from __future__ import annotations

import pytest

import tidings
from tidings.errors import SagaConflict
from tidings.sagas import protocol as p
from tidings.sagas.machine import Machine


def machine(pivot: bool = False) -> Machine:
    saga = tidings.Saga("ops")
    saga.step(command="a.do", compensate="a.undo", name="a")(lambda state: {"n": 1})
    saga.step(command="b.do", compensate=None if pivot else "b.undo", pivot=pivot, name="b")(
        lambda state: {"n": 2}
    )
    saga.step(command="c.do", name="c")(lambda state: {"n": 3})
    return Machine(saga)


def action(name: str) -> p.Action:
    return p.Action("s-1", name, f"op-{name}", "ann", "why not")


def ok(m: Machine, record, token: str):
    return m.on_reply(record, p.Reply("s-1", token, timeout=False, ok=True, result=None))


def test_retry_sends_the_step_again_and_a_failed_compensation_again():
    m = machine()
    record, _ = m.begin("s-1", {})
    [send] = m.act(record, action(p.RETRY))
    assert (send.topic, send.msg_id, record.token) == ("a.do", "s-1.0.f.2", "s-1.0.f.2")
    assert record.events[-2] == ("a", "operator-retry", "by ann: why not (op-retry)")
    ok(m, record, "s-1.0.f.2")  # a done; b sent; b's compensation then fails
    failure = p.Reply("s-1", record.token, timeout=False, ok=False, error="no")
    m.on_reply(record, failure)
    m.on_reply(record, p.Reply("s-1", record.token, timeout=False, ok=False, error="stuck"))
    assert record.status == "failed"
    [send] = m.act(record, action(p.RETRY))
    assert (record.status, send.topic, send.msg_id) == ("compensating", "a.undo", "s-1.0.c.2")


def test_compensate_includes_the_step_in_flight_and_abort_sends_nothing():
    m = machine()
    record, _ = m.begin("s-1", {})
    ok(m, record, record.token)  # a done, b in flight
    [send] = m.act(record, action("compensate"))
    assert (record.status, send.topic) == ("compensating", "b.undo")
    assert [s["status"] for s in record.steps] == ["done", "compensating", "pending"]
    with pytest.raises(SagaConflict, match="compensating already"):
        m.act(record, action("compensate"))
    assert m.act(record, action(p.ABORT)) == []
    assert (record.status, record.token, record.deadline) == ("aborted", None, None)
    for name in p.ACTIONS:
        with pytest.raises(SagaConflict, match=f"is aborted: cannot {name} it"):
            m.act(record, action(name))


def test_compensate_is_refused_at_and_after_the_pivot():
    m = machine(pivot=True)
    record, _ = m.begin("s-1", {})
    ok(m, record, record.token)  # the pivot b is in flight
    version = (record.status, record.token, list(record.events))
    with pytest.raises(SagaConflict, match="at or past the pivot b: it only moves forward"):
        m.act(record, action("compensate"))
    assert (record.status, record.token, list(record.events)) == version  # unchanged


def test_a_malformed_reply_fails_the_awaited_command_and_a_late_one_is_still_ignored():
    m = machine()
    record, _ = m.begin("s-1", {})
    ok(m, record, record.token)  # a done, b in flight
    late = p.Reply("s-1", "s-1.0.f.1", timeout=False, malformed="the body is not JSON")
    assert m.on_reply(record, late) is None  # for a command no longer awaited: dead-lettered
    stray = p.Reply("s-1", "s-1.0.x.1", timeout=False, ok=True)  # no such command
    [send] = m.on_reply(record, stray)
    assert record.status == "compensating" and record.failed_step == "b"
    assert send.topic == "b.undo"  # b may have taken effect: compensated too
    assert record.steps[1]["status"] == "compensating"
    assert record.events[-2][:2] == ("b", "step-malformed-reply")
    assert "unknown step" in (record.events[-2][2] or "")
    # a malformed answer to a compensation: an operator must look
    broken = p.Reply("s-1", record.token, timeout=False, malformed="the body is not JSON")
    assert m.on_reply(record, broken) == []
    assert record.status == "failed"
    assert record.error == "compensation of b failed: malformed reply: the body is not JSON"
