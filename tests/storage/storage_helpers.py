"""Helpers shared by the storage tests: records whose bodies derive from their offsets, and a
way to let go of a disk store the way a killed process does."""

from __future__ import annotations

from tidings.model import Record
from tidings.storage import DiskStore

SMALL_SEGMENT = 4096  # small segments so that rolling and trimming are exercised


def record(offset: int, size: int = 100, timestamp: float | None = None, **extra) -> Record:
    """A record whose body is derived from its offset, so any record can be checked alone."""
    prefix = f"{offset}:".encode()
    body = (prefix * (size // len(prefix) + 1))[:size]
    ts = 1_700_000_000.0 + offset if timestamp is None else timestamp
    return Record(
        offset, ts, f"id-{offset}", extra.pop("key", None), extra.pop("headers", {}), body, **extra
    )


def records(start: int, count: int, size: int = 100) -> list[Record]:
    return [record(o, size) for o in range(start, start + count)]


def crash(store: DiskStore) -> None:
    """Let go of a disk store as a killed process would: no sync, no clean-shutdown marker.
    (The page cache keeps what was written, as it does when only the process dies.)"""
    store._release()


def crash_record(offset: int) -> Record:
    """The record the crash test writes at ``offset`` (its size varies with the offset)."""
    return record(offset, size=(offset * 7919) % 1500)
