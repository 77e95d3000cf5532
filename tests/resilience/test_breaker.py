"""Circuit breaker: exact opening thresholds, half-open probes, keys, manual control."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings import errors
from tidings.resilience import CircuitBreaker, Pipeline


async def ok():
    return "ok"


async def boom():
    raise errors.ConnectionLost("down")


async def call(p, fn, callee="callee"):
    try:
        return await p.run(fn, callee=callee)
    except tidings.TidingsError as exc:
        return exc


async def test_opens_exactly_when_the_failure_rate_reaches_the_threshold(timer, counters):
    breaker = CircuitBreaker(failure_rate=0.5, minimum_calls=10, window=10)
    p = Pipeline("b", breaker=breaker, timer=timer, observer=counters)
    circuit = p.circuit("callee")
    for _ in range(5):
        await call(p, boom)
    assert circuit.state == "closed"  # 5 calls, all failed, but fewer than minimum_calls
    circuit.reset()
    for _ in range(6):
        await call(p, ok)
    for _ in range(3):
        await call(p, boom)
    assert circuit.state == "closed"  # 9 calls: still below minimum_calls
    await call(p, boom)
    assert circuit.state == "closed"  # 10 calls, 4 failed: 40 % < 50 %
    await call(p, boom)  # the oldest success slides out: 5 of the last 10 failed
    assert circuit.state == "open"
    assert [e.state for e in counters.events if e.name == "breaker_state"] == ["closed", "open"]
    rejected = await call(p, ok)
    assert isinstance(rejected, tidings.CircuitOpen) and isinstance(rejected, tidings.Rejected)
    assert rejected.retry_after == pytest.approx(breaker.open_for)
    assert counters["breaker_rejected"] == 1


async def test_never_opens_before_minimum_calls(timer):
    p = Pipeline("b", breaker=CircuitBreaker(minimum_calls=5), timer=timer)
    for _ in range(4):
        await call(p, boom)
    assert p.circuit("callee").state == "closed"  # 100 % failed but only 4 calls
    await call(p, boom)
    assert p.circuit("callee").state == "open"


async def test_slow_call_rate_opens_the_circuit(timer):
    breaker = CircuitBreaker(slow_call_rate=0.6, slow_call_duration=2.0, minimum_calls=5, window=5)
    p = Pipeline("b", breaker=breaker, timer=timer)

    async def slow():
        await timer.sleep(2.0)
        return "late"

    for _ in range(2):
        await call(p, ok)
    for _ in range(2):
        task = asyncio.create_task(call(p, slow))
        await timer.run_for(2.0)
        assert await task == "late"
    assert p.circuit("callee").state == "closed"  # 2 slow of 4: below minimum calls
    task = asyncio.create_task(call(p, slow))
    await timer.run_for(2.0)
    await task
    assert p.circuit("callee").state == "open"  # 3 slow of 5 = 60 %


async def test_time_window_forgets_old_calls(timer):
    breaker = CircuitBreaker(failure_rate=0.5, minimum_calls=4, window_seconds=10)
    p = Pipeline("b", breaker=breaker, timer=timer)
    for _ in range(3):
        await call(p, boom)
    timer.advance(11)  # those failures leave the window
    await call(p, boom)
    for _ in range(3):
        await call(p, ok)
    assert p.circuit("callee").state == "closed"  # 1 of 4 in the window
    await call(p, boom)
    await call(p, boom)
    await call(p, boom)
    assert p.circuit("callee").state == "open"  # 4 of 7


async def test_half_open_admits_exactly_n_concurrent_probes_then_closes(timer, counters):
    breaker = CircuitBreaker(minimum_calls=2, window=2, open_for=5.0, half_open_probes=3)
    p = Pipeline("b", breaker=breaker, timer=timer, observer=counters)
    circuit = p.circuit("callee")
    await call(p, boom)
    await call(p, boom)
    assert circuit.state == "open"
    timer.advance(5.0)
    assert circuit.state == "half_open"
    reached = 0
    release = asyncio.Event()

    async def probe():
        nonlocal reached
        reached += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(call(p, probe)) for _ in range(10)]
    await timer.settle()
    assert reached == 3  # exactly three probes reached the callee
    done = [t for t in tasks if t.done()]
    assert len(done) == 7 and all(isinstance(t.result(), tidings.CircuitOpen) for t in done)
    release.set()
    results = await asyncio.gather(*tasks)
    assert results.count("ok") == 3
    assert circuit.state == "closed"
    states = [e.state for e in counters.events if e.name == "breaker_state"]
    assert states == ["open", "half_open", "closed"]


async def test_a_failed_probe_reopens_with_a_growing_open_duration(timer):
    breaker = CircuitBreaker(
        minimum_calls=1, window=1, open_for=2.0, open_growth=2.0, max_open_for=5.0
    )
    p = Pipeline("b", breaker=breaker, timer=timer)
    circuit = p.circuit("callee")
    await call(p, boom)
    assert circuit.state == "open" and circuit.open_duration == 2.0
    timer.advance(2.0)
    await call(p, boom)  # the probe fails
    assert circuit.state == "open" and circuit.open_duration == 4.0
    timer.advance(3.9)
    assert circuit.state == "open"
    timer.advance(0.1)
    await call(p, boom)
    assert circuit.open_duration == 5.0  # capped at max_open_for
    timer.advance(5.0)
    assert await call(p, ok) == "ok"
    assert circuit.state == "closed" and circuit.open_duration == 2.0


async def test_a_cancelled_probe_frees_its_slot(timer):
    p = Pipeline("b", breaker=CircuitBreaker(minimum_calls=1, window=1, open_for=1), timer=timer)
    await call(p, boom)
    timer.advance(1)

    async def hang():
        await asyncio.Event().wait()

    task = asyncio.create_task(call(p, hang))
    await timer.settle()
    assert isinstance(await call(p, ok), tidings.CircuitOpen)  # the one probe is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await call(p, ok) == "ok"
    assert p.circuit("callee").state == "closed"


async def test_outcomes_of_calls_admitted_before_a_state_change_do_not_count(timer):
    p = Pipeline("b", breaker=CircuitBreaker(minimum_calls=1, window=1, open_for=1), timer=timer)
    gate = asyncio.Event()

    async def late_failure():
        await gate.wait()
        raise errors.ConnectionLost("late")

    stale = asyncio.create_task(call(p, late_failure))  # admitted while closed
    await timer.settle()
    await call(p, boom)
    assert p.circuit("callee").state == "open"
    timer.advance(1)
    assert await call(p, ok) == "ok"  # the probe closes it
    gate.set()
    await stale
    assert p.circuit("callee").state == "closed"  # the stale failure was ignored


async def test_circuits_are_keyed_per_callee(timer):
    p = Pipeline("b", breaker=CircuitBreaker(minimum_calls=2, window=2), timer=timer)
    await call(p, boom, "pricing.quote")
    await call(p, boom, "pricing.quote")
    assert p.circuit("pricing.quote").state == "open"
    assert await call(p, ok, "stock.level") == "ok"
    assert await call(p, ok, "pricing.quote@instance-2") == "ok"
    assert isinstance(await call(p, ok, "pricing.quote"), tidings.CircuitOpen)


async def test_isolate_and_reset_by_hand(timer, counters):
    p = Pipeline("b", breaker=CircuitBreaker(), timer=timer, observer=counters)
    circuit = p.circuit("callee")
    circuit.isolate()
    timer.advance(10_000)
    assert circuit.state == "isolated"
    assert isinstance(await call(p, ok), tidings.CircuitOpen)
    changes = []
    circuit.listeners.append(lambda c, old, new: changes.append((old, new)))
    circuit.reset()
    assert await call(p, ok) == "ok"
    assert changes == [("isolated", "closed")]


async def test_rejections_do_not_count_as_callee_failures(timer):
    p = Pipeline("b", breaker=CircuitBreaker(minimum_calls=1, window=1), timer=timer)

    async def rejected():
        raise tidings.BulkheadFull("local limit")

    for _ in range(5):
        await call(p, rejected)
    assert p.circuit("callee").state == "closed"


def test_bad_settings_say_what_to_use():
    with pytest.raises(ValueError, match="fraction"):
        CircuitBreaker(failure_rate=50)
    with pytest.raises(ValueError, match="minimum_calls"):
        CircuitBreaker(minimum_calls=0)
