"""The shared membership rules of ordered groups (tidings.transports.rules.assignment): who is
live by heartbeat age on the engine's clock, and the partition assignment every member computes
alike."""

from __future__ import annotations

from tidings.transports.rules.assignment import (
    Heartbeat,
    Holder,
    assign,
    live_members,
    may_take,
    self_fenced,
)


def test_live_members_are_judged_on_the_judges_own_latest_heartbeat():
    beats = [Heartbeat("a", 100.0), Heartbeat("b", 95.5), Heartbeat("c", 80.0)]
    assert live_members(beats, "a", session_timeout=5.0) == ["a", "b"]
    # with an explicit reference time (the engine's clock)
    assert live_members(beats, "a", 5.0, now=120.0) == ["a"]  # the judge is always live


def test_members_that_left_are_not_live_and_a_new_member_counts_itself():
    beats = [Heartbeat("a", 100.0), Heartbeat("b", 100.0, left=True)]
    assert live_members(beats, "a", 5.0) == ["a"]
    assert live_members(beats, "z", 5.0) == ["a", "z"]  # judged on the latest of all
    assert live_members([], "z", 5.0) == ["z"]


def test_partitions_are_spread_over_the_sorted_live_members_exclusively():
    live = ["b", "a", "c"]
    owned = {m: assign(7, live, m) for m in live}
    assert owned == {"a": {0, 3, 6}, "b": {1, 4}, "c": {2, 5}}
    assert set().union(*owned.values()) == set(range(7))
    assert assign(4, live, "stranger") == set()
    assert assign(3, ["a"], "a") == {0, 1, 2}


def test_a_partition_is_taken_over_only_when_free_released_or_its_holder_is_dead():
    beats = [Heartbeat("a", 100.0), Heartbeat("b", 96.0), Heartbeat("c", 90.0, left=True)]
    assert may_take(None, "a", beats, 5.0)  # nobody ever held it
    assert may_take(Holder("b", True, 7), "a", beats, 5.0)  # released
    assert may_take(Holder("a", False, 7), "a", beats, 5.0)  # its own
    assert not may_take(Holder("b", False, 7), "a", beats, 5.0)  # b is live and holds it
    # a goodbye is no release: c said it leaves but has not released yet (it is giving back)
    assert not may_take(Holder("c", False, 7), "a", beats, 11.0)
    assert may_take(Holder("c", False, 7), "a", beats, 10.0)  # its last beat is 10 s old
    assert may_take(Holder("x", False, 7), "a", beats, 5.0)  # no heartbeat at all
    # judged on the judge's own latest heartbeat (else the latest of all), never its clock
    assert not may_take(Holder("a", False, 7), "b", [Heartbeat("a", 90.0)], 5.0)
    assert may_take(Holder("a", False, 7), "b", [Heartbeat("a", 90.0)], 5.0, now=95.0)


def test_a_member_stops_before_the_others_may_find_it_dead():
    assert not self_fenced(0.0, 10.0)
    assert not self_fenced(8.9, 10.0)
    assert self_fenced(9.0, 10.0)  # a margin before the session timeout
    assert self_fenced(30.0, 10.0)
