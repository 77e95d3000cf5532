"""Token-bucket rate limiter: burst, refill, retry-after, waiting, per key."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings.resilience import Pipeline, RateLimiter


async def ok():
    return "ok"


async def test_burst_then_rejection_with_a_retry_after_then_refill(timer, counters):
    p = Pipeline("rl", rate_limit=RateLimiter(rate=2, burst=3), timer=timer, observer=counters)
    for _ in range(3):
        assert await p.run(ok) == "ok"
    with pytest.raises(tidings.RateLimited) as info:
        await p.run(ok)
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.http_status == 429 and counters["rate_limited"] == 1
    timer.advance(0.5)
    assert await p.run(ok) == "ok"
    timer.advance(10)  # refill stops at the burst
    for _ in range(3):
        await p.run(ok)
    with pytest.raises(tidings.RateLimited):
        await p.run(ok)


async def test_waits_for_a_token_within_max_wait(timer):
    p = Pipeline("rl", rate_limit=RateLimiter(rate=10, burst=1, max_wait=0.25), timer=timer)
    await p.run(ok)
    task = asyncio.create_task(p.run(ok))
    await timer.settle()
    assert not task.done()
    await timer.run_for(0.1)
    assert await task == "ok"
    second = asyncio.create_task(p.run(ok))
    third = asyncio.create_task(p.run(ok))
    await timer.settle()
    assert not second.done()
    await timer.run_for(0.2)
    assert await second == "ok" and await third == "ok"


async def test_per_callee_buckets(timer):
    p = Pipeline("rl", rate_limit=RateLimiter(rate=1, burst=1, per_callee=True), timer=timer)
    await p.run(ok, callee="a")
    with pytest.raises(tidings.RateLimited, match="to 'a'"):
        await p.run(ok, callee="a")
    assert await p.run(ok, callee="b") == "ok"
