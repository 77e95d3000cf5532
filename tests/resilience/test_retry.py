"""Retry: caps, predicates, retry-after hints, budget, cancellation."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings import errors
from tidings.resilience import Backoff, Pipeline, Retry, RetryBudget

NO_JITTER = Backoff(initial=0.1, factor=2, max_delay=10, jitter=0)


def flaky(failures: int, exc: BaseException, result="ok"):
    state = {"calls": 0}

    async def call():
        state["calls"] += 1
        if state["calls"] <= failures:
            raise exc
        return result

    return call, state


async def test_retries_transient_failures_with_backoff_then_succeeds(timer, counters):
    call, state = flaky(2, errors.ConnectionLost("gone"))
    retry = Retry(max_attempts=3, backoff=NO_JITTER)
    p = Pipeline("r", retry=retry, timer=timer, observer=counters)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(0.09)
    assert state["calls"] == 1
    await timer.run_for(0.01)
    assert state["calls"] == 2  # after 0.1 s
    await timer.run_for(0.2)
    assert await task == "ok" and state["calls"] == 3  # after another 0.2 s
    assert [e.delay for e in counters.events if e.name == "retry"] == [0.1, 0.2]


async def test_gives_up_after_max_attempts_with_the_last_failure(timer):
    call, state = flaky(10, tidings.Timeout("slow"))
    p = Pipeline("r", retry=Retry(max_attempts=3, backoff=NO_JITTER), timer=timer)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(5)
    with pytest.raises(tidings.Timeout):
        await task
    assert state["calls"] == 3


async def test_a_remote_error_is_not_retried_unless_the_policy_says_so(timer):
    call, state = flaky(1, tidings.RemoteError("boom", "ValueError"))
    with pytest.raises(tidings.RemoteError):
        await Pipeline("r", retry=Retry(), timer=timer).run(call)
    assert state["calls"] == 1
    p = Pipeline("r", retry=Retry(retry_on=(tidings.RemoteError,), backoff=NO_JITTER), timer=timer)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(1)
    assert await task == "ok" and state["calls"] == 2


async def test_result_predicate_retries_results_and_returns_the_last(timer):
    results = iter([None, None, "late", "never"])

    async def call():
        return next(results)

    p = Pipeline(
        "r",
        retry=Retry(max_attempts=5, backoff=NO_JITTER, retry_if_result=lambda r: r is None),
        timer=timer,
    )
    task = asyncio.create_task(p.run(call))
    await timer.run_for(5)
    assert await task == "late"
    counter = iter(range(10))

    async def count():
        return next(counter)

    always = Retry(max_attempts=2, backoff=NO_JITTER, retry_if_result=lambda r: True)
    task = asyncio.create_task(Pipeline("r", retry=always, timer=timer).run(count))
    await timer.run_for(5)
    assert await task == 1  # out of attempts: the last result is returned, not an error


async def test_retry_after_hint_is_honoured(timer, counters):
    call, state = flaky(1, tidings.RateLimited("slow down", retry_after=3.0))
    p = Pipeline(
        "r",
        retry=Retry(retry_on=tidings.RateLimited, backoff=NO_JITTER),
        timer=timer,
        observer=counters,
    )
    task = asyncio.create_task(p.run(call))
    await timer.run_for(2.9)
    assert state["calls"] == 1
    await timer.run_for(0.1)
    assert await task == "ok"
    assert [e.delay for e in counters.events if e.name == "retry"] == [3.0]


async def test_max_time_stops_retrying_before_the_cap(timer):
    call, state = flaky(100, errors.ConnectionLost("x"))
    backoff = Backoff(initial=1, factor=1, jitter=0)
    p = Pipeline("r", retry=Retry(max_attempts=100, max_time=3.5, backoff=backoff), timer=timer)
    task = asyncio.create_task(p.run(call))
    await timer.run_for(10)
    with pytest.raises(errors.ConnectionLost):
        await task
    assert state["calls"] == 4  # at 0, 1, 2, 3 s; a try at 4 s would pass max_time


async def test_caller_cancellation_interrupts_the_retry_sleep(timer):
    call, state = flaky(100, errors.ConnectionLost("x"))
    retry = Retry(max_attempts=10, backoff=Backoff(initial=60, jitter=0))
    p = Pipeline("r", retry=retry, timer=timer)
    task = asyncio.create_task(p.run(call))
    await timer.settle()
    assert state["calls"] == 1 and timer.pending == 1  # sleeping 60 s
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert timer.pending == 0  # the sleep is gone, no retry will happen
    await timer.run_for(120)
    assert state["calls"] == 1


async def test_budget_caps_amplification_under_a_total_failure_storm(timer, counters):
    """1000 requests, every attempt fails, up to 5 attempts each: without a budget 5000
    attempts; with Finagle's 20 % (no floor) about 1200."""
    attempts = 0

    async def dead():
        nonlocal attempts
        attempts += 1
        raise errors.ConnectionLost("dead")

    budget = RetryBudget(ratio=0.2, min_per_second=0, ttl=10)
    p = Pipeline(
        "storm",
        retry=Retry(max_attempts=5, backoff=Backoff(initial=0.01, jitter=0), budget=budget),
        timer=timer,
        observer=counters,
    )

    async def one():
        with pytest.raises(errors.ConnectionLost):
            await p.run(dead)

    tasks = []
    for _ in range(100):  # 10 requests every 0.1 s for 10 s
        tasks += [asyncio.create_task(one()) for _ in range(10)]
        await timer.run_for(0.1)
    await timer.run_for(5)
    await asyncio.gather(*tasks)
    requests = 1000
    assert attempts / requests <= 1.2 + 1e-9
    assert attempts > requests  # some retries were still allowed
    assert counters["retry_budget_exhausted"] > 0

    no_budget = Retry(max_attempts=5, backoff=Backoff(initial=0.01, jitter=0), budget=None)
    naive = Pipeline("naive", retry=no_budget, timer=timer)
    attempts = 0
    tasks = [asyncio.create_task(naive.run(dead)) for _ in range(100)]
    await timer.run_for(5)
    await asyncio.gather(*tasks, return_exceptions=True)
    assert attempts == 500


async def test_budget_floor_allows_retries_at_low_traffic(timer):
    budget = RetryBudget(ratio=0.2, min_per_second=1, ttl=10)
    now = timer.now()
    budget.request(now)
    allowed = sum(budget.try_retry(now) for _ in range(20))
    assert allowed == 10  # the floor: 1/s over the 10 s window (0.2 x 1 request < 1)
    timer.advance(11)
    assert budget.try_retry(timer.now())  # the window moved on
