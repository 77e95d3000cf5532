"""Snowflake ids: 64-bit, time-ordered, unique across workers without coordination.

Layout of an id (most significant bit first)::

    0 | 41 bits: milliseconds since EPOCH_MS | 10 bits: worker id | 12 bits: sequence

41 bits of milliseconds last about 69 years from the epoch (2024-01-01 UTC); 10 bits allow
1024 workers; 12 bits give 4096 ids per millisecond per worker (the generator waits for the
next millisecond when a millisecond is used up). Ids of one generator strictly increase; ids of
different workers never collide as long as their worker ids differ.

When the clock steps back (NTP correction, VM migration) a generator never repeats an id: it
waits for the clock to catch up if the step is at most ``max_backwards`` seconds, and raises
:class:`ClockMovedBackwards` otherwise.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from .errors import BadRequest, ClockMovedBackwards

__all__ = [
    "EPOCH_MS",
    "ClockMovedBackwards",
    "Snowflake",
    "SnowflakeParts",
    "default_snowflake",
    "default_worker_id",
]

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
TIME_BITS = 41
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_TIME = (1 << TIME_BITS) - 1


class SnowflakeParts(NamedTuple):
    timestamp: float  # seconds since the Unix epoch
    worker_id: int
    sequence: int


def default_worker_id() -> int:
    """``$TIDINGS_WORKER_ID`` if set, else a hash of host name and process id (0..1023).

    The hash makes collisions unlikely, not impossible: give each worker of a fleet its own id
    (e.g. the pod ordinal) when uniqueness must be guaranteed."""
    env = os.environ.get("TIDINGS_WORKER_ID")
    if env is not None:
        return int(env)
    seed = f"{socket.gethostname()}:{os.getpid()}".encode()
    return int.from_bytes(hashlib.blake2b(seed, digest_size=4).digest(), "big") & MAX_WORKER


class Snowflake:
    """A thread-safe generator of Snowflake ids for one worker.

    ``clock`` returns seconds since the Unix epoch (``time.time`` by default); ``sleep`` is
    how the generator waits (both replaceable in tests).
    """

    def __init__(
        self,
        worker_id: int | None = None,
        *,
        max_backwards: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        worker_id = default_worker_id() if worker_id is None else worker_id
        if not isinstance(worker_id, int) or not 0 <= worker_id <= MAX_WORKER:
            raise BadRequest(
                f"worker_id must be an integer from 0 to {MAX_WORKER}, got {worker_id!r}"
            )
        self.worker_id = worker_id
        self.max_backwards = max_backwards
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def _now_ms(self) -> int:
        ms = int(self._clock() * 1000) - EPOCH_MS
        if not 0 <= ms <= MAX_TIME:
            raise BadRequest("the clock is outside the Snowflake time range (2024 to 2093)")
        return ms

    def _wait_until(self, target_ms: int) -> int:
        """Wait until the clock reaches ``target_ms``; return the new time in ms."""
        now = self._now_ms()
        behind = (target_ms - now) / 1000
        if behind > self.max_backwards:
            raise ClockMovedBackwards(
                f"the clock moved back {behind:.3f}s, more than max_backwards="
                f"{self.max_backwards}s; refusing to issue ids that could repeat. Fix the "
                "clock or raise max_backwards"
            )
        while now < target_ms:
            self._sleep(max((target_ms - now) / 1000, 0.0005))
            now = self._now_ms()
        return now

    def next_id(self) -> int:
        """The next id (an int below 2**63)."""
        with self._lock:
            now = self._now_ms()
            if now < self._last_ms:
                now = self._wait_until(self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:  # this millisecond is used up
                    now = self._wait_until(self._last_ms + 1)
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                (now << (WORKER_BITS + SEQUENCE_BITS))
                | (self.worker_id << SEQUENCE_BITS)
                | self._sequence
            )

    def next_strs(self, n: int) -> list[str]:
        """The next ``n`` ids as decimal strings, under one lock and one clock read per
        millisecond they span (what a batch of publishes takes at once)."""
        out: list[str] = []
        append = out.append
        shift = WORKER_BITS + SEQUENCE_BITS
        worker = self.worker_id << SEQUENCE_BITS
        with self._lock:
            while len(out) < n:
                now = self._now_ms()
                if now < self._last_ms:
                    now = self._wait_until(self._last_ms)
                if now == self._last_ms:
                    if self._sequence == MAX_SEQUENCE:  # this millisecond is used up
                        now = self._wait_until(self._last_ms + 1)
                        first = 0
                    else:
                        first = self._sequence + 1
                else:
                    first = 0
                last = min(MAX_SEQUENCE, first + n - len(out) - 1)
                base = (now << shift) | worker
                for seq in range(first, last + 1):
                    append(str(base | seq))
                self._last_ms, self._sequence = now, last
        return out

    def next_str(self) -> str:
        """The next id as a decimal string (what message ids are)."""
        return str(self.next_id())

    @staticmethod
    def parse(snowflake: int | str) -> SnowflakeParts:
        """Split an id into its time, worker id and sequence."""
        value = int(snowflake)
        ms = value >> (WORKER_BITS + SEQUENCE_BITS)
        return SnowflakeParts(
            timestamp=(ms + EPOCH_MS) / 1000,
            worker_id=(value >> SEQUENCE_BITS) & MAX_WORKER,
            sequence=value & MAX_SEQUENCE,
        )


_default: Snowflake | None = None
_default_lock = threading.Lock()


def default_snowflake() -> Snowflake:
    """The process-wide generator (worker id from :func:`default_worker_id`).

    Share it instead of building several generators with the same worker id in one process:
    two generators with one worker id can issue the same id in the same millisecond."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Snowflake()
        return _default
