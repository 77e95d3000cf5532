"""The pipeline: fixed order, decorator, sync twin, observer, registry from dict and TOML."""

from __future__ import annotations

import asyncio
import logging

import pytest

import tidings
from tidings import errors
from tidings.resilience import (
    Backoff,
    Bulkhead,
    CircuitBreaker,
    Fallback,
    Hedge,
    Pipeline,
    PolicyRegistry,
    RateLimiter,
    Retry,
)


def test_stages_are_composed_in_the_documented_order():
    p = Pipeline(
        "full",
        timeout=1,
        total_timeout=5,
        retry=Retry(),
        breaker=CircuitBreaker(),
        bulkhead=Bulkhead(),
        rate_limit=RateLimiter(rate=100),
        hedge=Hedge(),
        fallback=Fallback.value(None),
    )
    names = [type(s).__name__ for s in p.stages]
    assert names == [
        "Fallback", "TimeoutStrategy", "Retry", "CircuitBreaker", "Bulkhead", "RateLimiter",
        "Hedge", "TimeoutStrategy",
    ]  # fmt: skip
    assert [s.scope for s in p.stages if type(s).__name__ == "TimeoutStrategy"] == [
        "total",
        "attempt",
    ]


async def test_an_empty_pipeline_just_awaits_the_call():
    async def add(a, b=0):
        return a + b

    assert await Pipeline().run(add, 1, b=2) == 3


async def test_retries_pass_the_breaker_so_an_opened_circuit_stops_them(timer, counters):
    attempts = 0

    async def dead():
        nonlocal attempts
        attempts += 1
        raise errors.ConnectionLost("dead")

    p = Pipeline(
        "p",
        retry=Retry(max_attempts=10, backoff=Backoff(initial=0.1, jitter=0), budget=None),
        breaker=CircuitBreaker(minimum_calls=3, window=3, open_for=60),
        timer=timer,
        observer=counters,
    )
    task = asyncio.create_task(p.run(dead, callee="inventory"))
    await timer.run_for(5)
    with pytest.raises(tidings.CircuitOpen):  # not retried: rejections are not transient
        await task
    assert attempts == 3


async def test_fallback_by_exception_type_sees_rejections_and_timeouts(timer, counters):
    async def slow():
        await timer.sleep(10)

    async def cached(exc):
        return f"cached after {type(exc).__name__}"

    p = Pipeline(
        "p",
        timeout=1,
        fallback=Fallback({tidings.CircuitOpen: "stale", tidings.Timeout: cached}),
        timer=timer,
        observer=counters,
    )
    task = asyncio.create_task(p.run(slow))
    await timer.run_for(1)
    assert await task == "cached after Timeout"
    assert counters["fallback"] == 1

    async def unknown():
        raise KeyError("x")

    with pytest.raises(KeyError):  # not matched: propagates
        await p.run(unknown)


async def test_decorator_names_the_callee_after_the_function(timer):
    p = Pipeline("p", breaker=CircuitBreaker(minimum_calls=1, window=1), timer=timer)

    @p
    async def fetch_price(sku):
        if sku == "bad":
            raise errors.ConnectionLost("x")
        return 9.5

    assert await fetch_price("a") == 9.5
    with pytest.raises(errors.ConnectionLost):
        await fetch_price("bad")
    assert p.circuit(fetch_price.__qualname__).state == "open"
    assert fetch_price.__name__ == "fetch_price"


def test_sync_twin_runs_plain_functions_through_the_same_pipeline():
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) < 2:
            raise errors.ConnectionLost("once")
        return x + 1

    p = Pipeline("sync", retry=Retry(backoff=Backoff(initial=0.001, jitter=0)))
    try:
        assert p.sync.run(flaky, 41) == 42
        assert calls == [41, 41]

        @p.sync
        def double(x):
            return 2 * x

        assert double(4) == 8
        slow = Pipeline("slow", timeout=0.05)
        with pytest.raises(tidings.Timeout):
            slow.sync.run(__import__("time").sleep, 0.5)
        slow.sync.close()
    finally:
        p.sync.close()


async def test_log_lines_name_policy_and_callee(caplog):
    async def boom():
        raise errors.ConnectionLost("down")

    p = Pipeline("pricing", retry=Retry(max_attempts=2, backoff=Backoff(initial=0, jitter=0)))
    with (
        caplog.at_level(logging.INFO, logger="tidings.resilience"),
        pytest.raises(errors.ConnectionLost),
    ):
        await p.run(boom, callee="pricing.quote")
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        "retry" in m and "policy=pricing" in m and "callee=pricing.quote" in m for m in lines
    )


def test_registry_from_a_dict():
    reg = PolicyRegistry()
    names = reg.configure(
        {
            "pricing": {
                "timeout": 0.5,
                "total_timeout": 2,
                "retry": {
                    "max_attempts": 4,
                    "backoff": {"initial": 0.1, "jitter": "decorrelated"},
                    "budget": {"ratio": 0.1},
                    "retry_on": ["Timeout", "RemoteError"],
                },
                "breaker": {"failure_rate": 0.25, "minimum_calls": 5},
                "bulkhead": {"max_concurrent": 4, "max_queue": 8},
            }
        }
    )
    assert names == ["pricing"]
    p = reg.get("pricing")
    assert p.timeout == 0.5 and p.total_timeout == 2
    assert p.retry.max_attempts == 4 and p.retry.backoff.jitter == "decorrelated"
    assert p.retry.budget.ratio == 0.1
    assert p.retry.should_retry(errors.RemoteError("x")) and not p.retry.should_retry(KeyError())
    assert p.breaker.failure_rate == 0.25 and p.bulkhead.max_queue == 8
    assert reg.resolve("pricing") is p and reg.resolve(p) is p and reg.resolve(None) is None


def test_registry_from_toml_replaces_a_policy(tmp_path):
    reg = PolicyRegistry()
    reg.configure({"stock": {"timeout": 1}})
    path = tmp_path / "policies.toml"
    path.write_text(
        "[policies.stock]\ntimeout = 0.25\n[policies.stock.retry]\nbudget = false\n"
        "[policies.stock.rate_limit]\nrate = 50\n"
    )
    assert reg.load_toml(path) == ["stock"]
    p = reg.get("stock")
    assert p.timeout == 0.25 and p.retry.budget is None and p.rate_limit.rate == 50


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"p": {"timout": 1}}, "unknown setting"),
        ({"p": {"retry": {"retry_on": ["NoSuchError"]}}}, "not an error class"),
        ({"p": {"breaker": {"failure_rate": 2}}}, "fraction"),
        ({"p": {"bulkhead": {"size": 2}}}, "Bulkhead"),
    ],
)
def test_registry_rejects_bad_tables_clearly(config, message):
    reg = PolicyRegistry()
    with pytest.raises(ValueError, match=message):
        reg.configure(config)
    assert reg.names() == []


def test_an_unknown_policy_name_says_how_to_add_it():
    with pytest.raises(tidings.errors.NotFound, match=r"policies\.add"):
        PolicyRegistry().get("nope")
