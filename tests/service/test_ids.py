"""Snowflake ids: 64-bit, time-ordered, unique across workers, never repeated on clock steps."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.errors import ClockMovedBackwards
from tidings.ids import EPOCH_MS, MAX_SEQUENCE, Snowflake, default_snowflake


class FakeTime:
    def __init__(self, start: float = EPOCH_MS / 1000 + 1000) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_ids_fit_in_63_bits_and_increase():
    gen = Snowflake(worker_id=7)
    ids = [gen.next_id() for _ in range(10_000)]
    assert all(0 < i < 2**63 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_parse_round_trip():
    t = FakeTime()
    gen = Snowflake(worker_id=513, clock=t, sleep=t.sleep)
    parts = Snowflake.parse(gen.next_str())
    assert parts.worker_id == 513 and parts.sequence == 0
    assert parts.timestamp == pytest.approx(t.now, abs=0.001)


def test_workers_never_collide_in_the_same_millisecond():
    t = FakeTime()
    a = Snowflake(worker_id=1, clock=t, sleep=t.sleep)
    b = Snowflake(worker_id=2, clock=t, sleep=t.sleep)
    ids = [g.next_id() for _ in range(100) for g in (a, b)]
    assert len(set(ids)) == 200


def test_sequence_exhaustion_waits_for_the_next_millisecond():
    t = FakeTime()
    gen = Snowflake(worker_id=0, clock=t, sleep=t.sleep)
    ids = [gen.next_id() for _ in range(MAX_SEQUENCE + 2)]
    assert len(set(ids)) == len(ids) and t.slept  # it waited instead of wrapping around
    assert Snowflake.parse(ids[-1]).sequence == 0


def test_small_clock_step_back_waits_and_never_repeats():
    t = FakeTime()
    gen = Snowflake(worker_id=3, clock=t, sleep=t.sleep, max_backwards=5)
    before = gen.next_id()
    t.now -= 2.0  # NTP stepped the clock back two seconds
    after = gen.next_id()
    assert after > before
    assert sum(t.slept) >= 2.0


def test_large_clock_step_back_raises_clearly():
    t = FakeTime()
    gen = Snowflake(worker_id=3, clock=t, sleep=t.sleep, max_backwards=1)
    gen.next_id()
    t.now -= 60
    with pytest.raises(ClockMovedBackwards, match="moved back 60"):
        gen.next_id()


def test_threads_share_a_generator_safely():
    gen = Snowflake(worker_id=9)
    out: list[list[int]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        out[i].extend(gen.next_id() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({i for chunk in out for i in chunk}) == 8000


def test_worker_id_bounds_and_default(monkeypatch):
    with pytest.raises(ValueError, match="worker_id"):
        Snowflake(worker_id=1024)
    monkeypatch.setenv("TIDINGS_WORKER_ID", "17")
    assert Snowflake().worker_id == 17
    assert default_snowflake() is default_snowflake()


@given(st.lists(st.floats(min_value=-4.0, max_value=0.01), min_size=1, max_size=200))
def test_ids_strictly_increase_whatever_the_clock_does(steps):
    """Property: under any clock steps back (within max_backwards) or forward, ids of one
    generator strictly increase."""
    t = FakeTime()
    gen = Snowflake(worker_id=5, clock=t, sleep=t.sleep, max_backwards=5)
    last = gen.next_id()
    for step in steps:
        t.now += step
        current = gen.next_id()
        assert current > last
        last = current
