"""Exponential backoff with jitter."""

from __future__ import annotations

import pytest

from tidings import Backoff


def test_exponential_growth_capped():
    b = Backoff(initial=1, factor=2, max_delay=10, jitter=0)
    assert [b.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert b.delay(10_000) == 10  # no overflow


def test_jitter_shortens_by_at_most_the_fraction():
    b = Backoff(initial=4, factor=2, max_delay=100, jitter=0.5)
    assert b.delay(1, rand=lambda: 0.0) == 4
    assert b.delay(1, rand=lambda: 1.0) == 2
    delays = {b.delay(3) for _ in range(50)}
    assert all(8 <= d <= 16 for d in delays) and len(delays) > 1


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1}, {"factor": 0.5}, {"jitter": 2}, {"max_delay": -3}]
)
def test_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
