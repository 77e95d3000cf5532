"""Fixtures for the resilience tests: a fake timer and an event counter."""

from __future__ import annotations

import pytest

from tidings.resilience import Counters, FakeTimer


@pytest.fixture
def timer() -> FakeTimer:
    return FakeTimer()


@pytest.fixture
def counters() -> Counters:
    c = Counters()
    c.keep = True
    return c
