"""Hedging: a second attempt after the delay, first success wins, losers are cancelled."""

from __future__ import annotations

import asyncio

import pytest

from tidings import errors
from tidings.resilience import Hedge, Pipeline


def attempts_with(latencies, timer, outcomes=None):
    """Attempt i sleeps latencies[i] then returns i (or raises outcomes[i])."""
    state = {"started": [], "cancelled": []}

    async def call():
        i = len(state["started"])
        state["started"].append(timer.now())
        try:
            await timer.sleep(latencies[i])
        except asyncio.CancelledError:
            state["cancelled"].append(i)
            raise
        if outcomes and outcomes[i] is not None:
            raise outcomes[i]
        return i

    return call, state


async def test_a_hedge_after_the_delay_wins_and_the_slow_attempt_is_cancelled(timer, counters):
    call, state = attempts_with([10.0, 0.5], timer)
    p = Pipeline("h", hedge=Hedge(delay=1.0), timer=timer, observer=counters)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(0.99)
    assert len(state["started"]) == 1
    await timer.run_for(0.01)
    assert len(state["started"]) == 2  # hedged at 1.0 s
    await timer.run_for(0.5)
    assert await task == 1
    await timer.settle()
    assert state["cancelled"] == [0]
    assert counters["hedge"] == 1 and counters["hedge_won"] == 1


async def test_no_hedge_when_the_first_attempt_is_fast(timer, counters):
    call, state = attempts_with([0.2], timer)
    p = Pipeline("h", hedge=Hedge(delay=1.0), timer=timer, observer=counters)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(0.2)
    assert await task == 0
    await timer.run_for(5)
    assert len(state["started"]) == 1 and counters["hedge"] == 0
    assert timer.pending == 0


async def test_a_failed_attempt_hedges_at_once_and_all_failing_raises_the_last(timer):
    boom = errors.ConnectionLost("boom")
    call, state = attempts_with([0.1, 0.1], timer, [boom, errors.Timeout("slow")])
    p = Pipeline("h", hedge=Hedge(delay=5.0), timer=timer)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(0.1)
    assert state["started"] == [1000.0, 1000.1]  # the hedge started when the first failed
    await timer.run_for(0.1)
    with pytest.raises(errors.Timeout):
        await task


async def test_caller_cancellation_cancels_every_attempt(timer):
    call, state = attempts_with([10.0, 10.0], timer)
    p = Pipeline("h", hedge=Hedge(delay=1.0), timer=timer)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(1.0)
    assert len(state["started"]) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await timer.settle()
    assert sorted(state["cancelled"]) == [0, 1]
    assert timer.pending == 0


async def test_percentile_delay_follows_recent_latencies(timer):
    hedge = Hedge(delay=9.0, percentile=90, min_samples=10)
    p = Pipeline("h", hedge=hedge, timer=timer)
    assert hedge.current_delay() == 9.0
    for i in range(10):
        call, _ = attempts_with([0.1 * (i + 1)], timer)
        task = asyncio.create_task(p.run(call))
        await timer.run_for(0.1 * (i + 1))
        await task
    assert hedge.current_delay() == pytest.approx(1.0)  # p90 of 0.1 .. 1.0
