"""The client-side lease renewer shared by every transport: which leases it extends, when, in
how many batches, and what it reports as lost. A fake extender stands in for the engine."""

from __future__ import annotations

import asyncio
import time

from tidings.transports.leasing import LeaseRenewer


class Recorder:
    def __init__(self, refuse: set[str] | None = None, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.refuse = refuse or set()
        self.fail = fail

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        if self.fail:
            raise ConnectionError("broker away")
        return [i for i in items if i in self.refuse]


async def until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_buffered_leases_are_extended_in_one_batch() -> None:
    rec = Recorder()
    renewer = LeaseRenewer(0.6, rec)
    for item in "abcde":
        renewer.track(item)
    assert await until(lambda: len(rec.batches) >= 1)
    assert sorted(rec.batches[0]) == list("abcde")  # one batch for all five
    assert await until(lambda: renewer.extensions == 5)
    assert all(renewer.alive(i) for i in "abcde")
    await renewer.close()


async def test_leases_stay_alive_well_past_the_lease() -> None:
    rec = Recorder()
    renewer = LeaseRenewer(0.3, rec)
    renewer.track("m")
    renewer.handed("m")
    await asyncio.sleep(1.2)  # four leases
    assert renewer.alive("m")
    assert renewer.extensions >= 3
    renewer.release("m")
    await asyncio.sleep(0.05)  # a batch already on its way may still go out
    count = len(rec.batches)
    await asyncio.sleep(0.5)
    assert len(rec.batches) == count  # settled: never extended again
    await renewer.close()


async def test_refused_extension_marks_the_lease_lost() -> None:
    renewer = LeaseRenewer(0.3, Recorder(refuse={"gone"}))
    renewer.track("gone")
    renewer.track("kept")
    assert await until(lambda: not renewer.alive("gone"))
    assert renewer.alive("kept")
    await renewer.close()


async def test_failed_batches_leave_the_lease_to_run_out() -> None:
    rec = Recorder(fail=True)
    renewer = LeaseRenewer(0.3, rec)
    renewer.track("m")
    assert await until(lambda: not renewer.alive("m"), timeout=5)
    assert len(rec.batches) >= 1  # it tried (and retried) before giving up
    await renewer.close()


async def test_max_extension_bounds_it() -> None:
    rec = Recorder()
    renewer = LeaseRenewer(0.3, rec, max_extension=0.5)
    renewer.track("m")
    renewer.handed("m")
    assert await until(lambda: not renewer.alive("m"), timeout=5)
    assert renewer.extensions >= 1
    await renewer.close()


async def test_zero_turns_it_off() -> None:
    rec = Recorder()
    renewer = LeaseRenewer(0.2, rec, max_extension=0)
    assert not renewer.enabled
    renewer.track("m")
    await asyncio.sleep(0.4)
    assert rec.batches == []
    await renewer.close()


async def test_a_buffer_without_progress_is_left_to_expire() -> None:
    """Buffered (not handed out) leases are kept only while the application takes or settles
    something; a consumer that stopped iterating lets its buffer go back to the group."""
    rec = Recorder()
    renewer = LeaseRenewer(0.3, rec)
    renewer.track("held")
    renewer.handed("held")
    renewer.track("buffered")
    await asyncio.sleep(1.5)  # the application holds "held" and takes nothing else
    assert not renewer.alive("buffered")
    assert renewer.alive("held")  # what it holds is kept until settled
    await renewer.close()


async def test_handing_out_after_a_long_wait_extends_at_once() -> None:
    rec = Recorder()
    renewer = LeaseRenewer(3.0, rec)
    renewer.track("m", arrived=time.monotonic() - 1.5)  # waited half its lease
    renewer.handed("m")
    assert await until(lambda: rec.batches == [["m"]], timeout=2)
    await renewer.close()
