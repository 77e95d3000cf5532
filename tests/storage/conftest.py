"""Fixtures of the storage suite: a ``store`` for each implementation (memory and disk), and
helpers to make records and to reopen or "crash" a disk store."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from storage_helpers import SMALL_SEGMENT, crash

from tidings.storage import DiskStore, MemoryStore, RecoveryReport, Store


@pytest.fixture(params=["memory", "disk"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    s: Store = (
        MemoryStore()
        if request.param == "memory"
        else DiskStore(tmp_path / "store", segment_bytes=SMALL_SEGMENT)
    )
    s.open()
    yield s
    s.close()


@pytest.fixture
def disk(tmp_path) -> Iterator[DiskStore]:
    s = DiskStore(tmp_path / "store", segment_bytes=SMALL_SEGMENT)
    s.open()
    yield s
    s.close()


@pytest.fixture
def reopen() -> Iterator[Callable[..., tuple[DiskStore, RecoveryReport]]]:
    """Close (or crash) a disk store and open its directory again: (new store, report)."""
    opened: list[DiskStore] = []

    def _reopen(old: DiskStore, crashed: bool = False, **options):
        if crashed:
            crash(old)
        else:
            old.close()
        options.setdefault("segment_bytes", old.segment_bytes)
        new = DiskStore(old.path, **options)
        report = new.open()
        opened.append(new)
        return new, report

    yield _reopen
    for s in opened:
        s.close()
