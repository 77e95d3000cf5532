"""Ordered groups managed by the transport: who is live, and who owns which partition.

Members heartbeat into the engine; a member is live while its latest heartbeat is younger than
the group's session timeout, judged against one reference time (the engine's clock, or the
judging member's own latest heartbeat), so members' clocks never matter. Partition ``p``
belongs to ``sorted(live)[p % len(live)]``: every member computes the same assignment from
the same list, with no coordinator.

Views of the list can differ for a moment (a member has not read the latest heartbeats yet),
so an assignment alone never lets a member start a partition. A partition is *held* by one
member at a time, recorded in the engine with compare-and-set (:class:`Holder`): the member
that gains it takes it over only when :func:`may_take` says so, that is when nobody holds it,
the holder released it (it stopped fetching the partition and has none of its messages left),
or the holder's latest heartbeat is older than the session timeout. The last case is safe
because a member stops by itself (fetches, hands out and settles nothing of its partitions)
once its own last successful heartbeat is older than the session timeout less a margin
(:func:`self_fenced`): whoever the others find dead has already stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Heartbeat:
    member: str
    time: float  # when the engine stored it (seconds, the engine's clock)
    left: bool = False  # the member said goodbye


@dataclass(frozen=True, slots=True)
class Holder:
    member: str
    released: bool  # the holder stopped processing the partition and gave it up
    version: int  # the record's version in the engine (the compare-and-set token)
    # the holder's fetches of the partition had all ended when it released it (an engine
    # whose fetch requests outlive a member's stop says False when one may still be open)
    drained: bool = True


SELF_FENCE_MARGIN = 0.1  # a member stops this fraction of the session timeout early


def _reference(beats: list[Heartbeat], me: str) -> float:
    mine = [b.time for b in beats if b.member == me]
    return max(mine) if mine else max((b.time for b in beats), default=0.0)


def live_members(
    beats: Iterable[Heartbeat], me: str, session_timeout: float, now: float | None = None
) -> list[str]:
    """The live members, sorted, ``me`` always among them. ``now`` defaults to ``me``'s own
    latest heartbeat (else the latest of all)."""
    beats = list(beats)
    if now is None:
        now = _reference(beats, me)
    live = {b.member for b in beats if not b.left and now - b.time < session_timeout}
    live.add(me)
    return sorted(live)


def assign(partitions: int, live: list[str], member: str) -> set[int]:
    """The partitions ``member`` owns when ``live`` are the group's live members."""
    if member not in live:
        return set()
    ordered = sorted(live)
    return {p for p in range(partitions) if ordered[p % len(ordered)] == member}


def may_take(
    holder: Holder | None,
    me: str,
    beats: Iterable[Heartbeat],
    session_timeout: float,
    now: float | None = None,
) -> bool:
    """Whether ``me`` may take over a partition whose holder record is ``holder``.

    Yes when nobody holds it, its holder released it or is ``me``, or the holder's latest
    heartbeat (a goodbye counts: a leaving member releases what it holds once it is done) is
    at least ``session_timeout`` older than ``now`` (default: ``me``'s latest heartbeat)."""
    if holder is None or holder.released or holder.member == me:
        return True
    beats = list(beats)
    if now is None:
        now = _reference(beats, me)
    theirs = [b.time for b in beats if b.member == holder.member]
    return not theirs or now - max(theirs) >= session_timeout


def self_fenced(since_last_beat: float, session_timeout: float) -> bool:
    """Whether a member whose last successful heartbeat was *sent* ``since_last_beat`` seconds
    ago must stop processing its partitions: the others may take them over once that
    heartbeat is ``session_timeout`` old (judged on the engine's clock, which stored it after
    it was sent), so the member stops a margin earlier."""
    return since_last_beat >= session_timeout * (1 - SELF_FENCE_MARGIN)
