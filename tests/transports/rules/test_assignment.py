"""The shared membership rules of ordered groups (tidings.transports.rules.assignment): who is
live by heartbeat age on the engine's clock, and the partition assignment every member computes
alike."""

from __future__ import annotations

from tidings.transports.rules.assignment import Heartbeat, assign, live_members


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
