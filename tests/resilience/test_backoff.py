"""The one backoff: exponential growth, cap, and the bounds of each jitter."""

from __future__ import annotations

import random

import pytest

from tidings.resilience import Backoff


def test_no_jitter_is_exponential_and_capped():
    b = Backoff(initial=1, factor=2, max_delay=10, jitter=0)
    assert [b.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert b.delay(100_000) == 10


def test_fractional_jitter_stays_in_its_band():
    b = Backoff(initial=0.05, factor=2, max_delay=2.0, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(1, 12):
        base = b.base(attempt)
        for _ in range(200):
            d = b.delay(attempt, rng.random)
            assert base / 2 <= d <= base


def test_full_jitter_spans_zero_to_the_exponential():
    b = Backoff(initial=0.1, factor=2, max_delay=5, jitter="full")
    rng = random.Random(1)
    delays = [b.delay(4, rng.random) for _ in range(2000)]
    assert all(0 <= d <= 0.8 for d in delays)
    assert min(delays) < 0.05 and max(delays) > 0.75  # the whole band is used
    assert b.delay(3, lambda: 0.0) == 0 and b.delay(3, lambda: 1.0) == pytest.approx(0.4)


def test_decorrelated_jitter_bounds_follow_the_previous_delay():
    b = Backoff(initial=0.1, factor=2, max_delay=3, jitter="decorrelated")
    rng = random.Random(3)
    seq = b.sequence(rng.random)
    previous = None
    for _ in range(500):
        d = seq.next()
        low = 0.1
        high = min(3, 3 * max(previous if previous is not None else 0.1, 0.1))
        assert low <= d <= high + 1e-12
        previous = d
    assert max(b.delay(9, lambda: 1.0, previous=10.0) for _ in range(3)) == 3  # capped
    seq.reset()
    assert seq.attempts == 0 and seq.previous is None


def test_sequence_counts_and_resets():
    seq = Backoff(initial=1, factor=3, max_delay=100, jitter=0).sequence()
    assert [seq.next() for _ in range(4)] == [1, 3, 9, 27]
    seq.reset()
    assert seq.next() == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1}, {"factor": 0.5}, {"jitter": 2}, {"max_delay": -3}, {"jitter": "half"}],
)
def test_invalid_settings_say_what_to_use(kwargs):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


def test_tidings_has_one_backoff():
    import tidings
    from tidings.service import Backoff as ServiceBackoff
    from tidings.transports.tidings import reconnect

    assert tidings.Backoff is Backoff and ServiceBackoff is Backoff
    assert reconnect.Backoff is Backoff


async def test_the_clients_publish_retries_wait_the_backoffs_delays(monkeypatch):
    from tidings import errors
    from tidings.client import retries

    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(retries.asyncio, "sleep", fake_sleep)
    tries = 0

    async def attempt() -> str:
        nonlocal tries
        tries += 1
        if tries <= 4:
            raise errors.ConnectionLost("blip")
        return "stored"

    assert await retries.with_retries(attempt, retries=5, backoff=0.1, max_backoff=0.5) == "stored"
    bands = [(0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.25, 0.5)]  # [delay/2, delay], capped
    assert len(slept) == 4
    assert all(low <= d <= high for d, (low, high) in zip(slept, bands, strict=True))
