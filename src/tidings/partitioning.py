"""The key-to-partition function shared by every transport.

A key picks its partition as ``crc32(key.encode("utf-8")) % partitions`` (CRC-32 as in zlib,
IEEE polynomial, unsigned). It is stable across versions, processes and languages, which is what
lets the same application code keep per-key order on the built-in broker and on NATS. Keyless
messages are spread round-robin by :class:`RoundRobin`.
"""

from __future__ import annotations

import itertools
import zlib


def partition_for(key: str, partitions: int) -> int:
    """The partition of ``key`` in a topic of ``partitions`` partitions."""
    return zlib.crc32(key.encode("utf-8")) % partitions


class RoundRobin:
    """Spreads keyless messages over the partitions in turn."""

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next(self, partitions: int) -> int:
        return next(self._counter) % partitions
