"""Sticky, balanced assignment of an ordered group's partitions to its live members.

Each member gets floor(P/N) or ceil(P/N) partitions; a partition keeps its owner when that
owner is still alive and within its quota, so a join or leave moves as few partitions as
possible (each move costs a revocation of in-flight messages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

M = TypeVar("M")


def assign(partitions: int, members: Sequence[M], current: Sequence[M | None]) -> list[M | None]:
    """The new owner of each partition. ``members`` are in join order; ``current`` is the
    present owner of each partition (None if unowned or its owner left)."""
    if not members:
        return [None] * partitions
    n = len(members)
    base, extra = divmod(partitions, n)
    # The first `extra` members (join order) may hold one more partition.
    quota = {id(m): base + (1 if i < extra else 0) for i, m in enumerate(members)}
    alive = {id(m) for m in members}
    held: dict[int, int] = {id(m): 0 for m in members}
    owners: list[M | None] = [None] * partitions
    for p in range(partitions):
        owner = current[p] if p < len(current) else None
        if owner is not None and id(owner) in alive and held[id(owner)] < quota[id(owner)]:
            owners[p] = owner
            held[id(owner)] += 1
    for p in range(partitions):
        if owners[p] is None:
            target = min(members, key=lambda m: (held[id(m)] - quota[id(m)], held[id(m)]))
            owners[p] = target
            held[id(target)] += 1
    return owners
