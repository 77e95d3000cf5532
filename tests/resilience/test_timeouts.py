"""Timeouts cancel the work for real and raise tidings.Timeout (also a TimeoutError)."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings import errors
from tidings.resilience import Backoff, Pipeline, Retry


async def test_attempt_timeout_cancels_the_callee_and_raises_a_typed_timeout(timer, counters):
    p = Pipeline("t", timeout=1.0, timer=timer, observer=counters)
    state = {"cancelled": False, "finished": False}

    async def slow():
        try:
            await timer.sleep(5)
            state["finished"] = True
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    task = asyncio.create_task(p.run(slow, callee="svc.slow"))
    await timer.run_for(1.0)
    with pytest.raises(tidings.Timeout, match=r"attempt 1 to 'svc.slow' took longer than 1.0s"):
        await task
    assert state == {"cancelled": True, "finished": False}
    assert issubclass(tidings.Timeout, TimeoutError)
    assert counters["timeout"] == 1 and counters["failure"] == 1


async def test_a_fast_call_is_not_touched(timer):
    p = Pipeline("t", timeout=1.0, timer=timer)

    async def quick(x):
        await timer.sleep(0.5)
        return x * 2

    task = asyncio.create_task(p.run(quick, 21))
    await timer.run_for(0.5)
    assert await task == 42
    assert timer.pending == 0  # the timeout's timer was withdrawn


async def test_the_callees_own_timeout_error_passes_through_unchanged(timer):
    p = Pipeline("t", timeout=10.0, timer=timer)

    async def raises():
        raise TimeoutError("mine")

    with pytest.raises(TimeoutError, match="mine") as info:
        await p.run(raises)
    assert not isinstance(info.value, tidings.Timeout)


async def test_total_timeout_beats_retries(timer, counters):
    calls = []

    async def failing():
        calls.append(timer.now())
        raise errors.ConnectionLost("down")

    p = Pipeline(
        "t",
        total_timeout=2.5,
        retry=Retry(max_attempts=100, backoff=Backoff(initial=1, factor=1, jitter=0), budget=None),
        timer=timer,
        observer=counters,
    )
    task = asyncio.create_task(p.run(failing))
    await timer.run_for(10)
    with pytest.raises(tidings.Timeout, match=r"with its retries took longer than 2\.5s"):
        await task
    assert len(calls) == 3  # at 0, 1 and 2 s; the sleep toward 3 s was cut by the total timeout
    assert counters["retry"] == 3 and counters["timeout"] == 1
