"""BrokerRuntime: group commit under the fsync policies, timers, and a prompt stop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tidings.broker import BrokerRuntime
from tidings.clock import ManualClock
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.storage import DiskStore, MemoryStore

from .conftest import Inbox


class SyncSpy:
    """Wraps ``store.sync``: counts syncs, notes how many records were appended when each
    began, and can make each sync slow."""

    def __init__(self, store, delay: float = 0.0) -> None:
        self.store = store
        self.delay = delay
        self.appended = 0
        self.started: list[int] = []  # appended count when each sync began
        self.finished: list[int] = []  # the same, appended when the sync returned
        self.lock = threading.Lock()
        self._sync, self._append = store.sync, store.append
        store.sync, store.append = self.sync, self.append

    def append(self, topic, partition, records):
        self._append(topic, partition, records)
        with self.lock:
            self.appended += len(records)

    def sync(self) -> None:
        with self.lock:
            began = self.appended
        self.started.append(began)
        if self.delay:
            time.sleep(self.delay)
        self._sync()
        self.finished.append(began)

    def covered(self) -> int:
        """Records covered by a completed sync."""
        return max(self.finished, default=0)


@pytest.fixture(params=["memory", "disk"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    return MemoryStore() if request.param == "memory" else DiskStore(tmp_path / "s")


async def test_batch_confirms_after_sync_and_durable_delivers_after_it(store) -> None:
    spy = SyncSpy(store, delay=0.02)
    rt = BrokerRuntime(store, fsync="batch", deliver="durable")
    await rt.start()
    try:
        rt.broker.create_topic(TopicSpec(name="t"))
        inbox = Inbox()
        rt.broker.join(GroupSpec(topic="t", name="g"), prefetch=100, deliver=inbox)
        for i in range(5):
            task = asyncio.create_task(rt.publish("t", [Outgoing(b"%d" % i)]))
            await asyncio.sleep(0)
            assert not task.done()
            assert len(inbox) == i  # not deliverable before its sync
            [r] = await task
            assert spy.covered() >= r.offset + 1  # a sync that began after the append ended
            assert len(inbox) == i + 1
    finally:
        await rt.stop()


async def test_batch_written_delivers_while_the_sync_runs(store) -> None:
    """deliver='written' (the default): a message reaches consumers once it is written, while
    the fsync that confirms it is still running; the publisher is confirmed only after it."""
    gate = threading.Event()
    gate.set()  # open until the publish under test
    spy = SyncSpy(store)
    real_sync = spy._sync

    def held_sync() -> None:
        assert gate.wait(10), "the test never opened the gate"
        real_sync()

    spy._sync = held_sync
    rt = BrokerRuntime(store, fsync="batch")
    assert rt.deliver == "written"
    await rt.start()
    try:
        rt.broker.create_topic(TopicSpec(name="t"))
        inbox = Inbox()
        rt.broker.join(GroupSpec(topic="t", name="g"), prefetch=100, deliver=inbox)
        await rt.commit()  # the syncs of create and join are done
        gate.clear()
        task = asyncio.create_task(rt.publish("t", [Outgoing(b"early")]))
        for _ in range(100):
            if len(inbox):
                break
            await asyncio.sleep(0.01)
        assert [d.body for d in inbox.items] == [b"early"]  # delivered...
        assert not task.done()  # ...while its fsync is still held
        gate.set()
        [r] = await task
        assert r.offset == 0 and spy.covered() >= 1
    finally:
        gate.set()
        await rt.stop()


async def test_pipelined_publishes_share_syncs(store) -> None:
    spy = SyncSpy(store, delay=0.005)
    rt = BrokerRuntime(store, fsync="batch")
    await rt.start()
    try:
        rt.broker.create_topic(TopicSpec(name="t"))
        before = len(spy.started)
        n = 200
        receipts = await asyncio.gather(*(rt.publish("t", [Outgoing(b"x")]) for _ in range(n)))
        syncs = len(spy.started) - before
        assert sorted(r[0].offset for r in receipts) == list(range(n))
        assert 1 <= syncs < n / 4, f"{syncs} syncs for {n} publishes"
        assert spy.covered() >= n
    finally:
        await rt.stop()


async def test_interval_confirms_at_once_and_syncs_later(store) -> None:
    spy = SyncSpy(store, delay=0.3)
    rt = BrokerRuntime(store, fsync="interval", fsync_interval=0.05)
    await rt.start()
    try:
        rt.broker.create_topic(TopicSpec(name="t"))
        inbox = Inbox()
        rt.broker.join(GroupSpec(topic="t", name="g"), prefetch=100, deliver=inbox)
        start = time.monotonic()
        before = len(spy.finished)
        await rt.publish("t", [Outgoing(b"x")])
        assert time.monotonic() - start < 0.25  # did not wait for the slow sync
        await asyncio.sleep(0.01)
        assert len(inbox) == 1  # visible before its fsync
        for _ in range(100):
            if len(spy.finished) > before and spy.covered() >= 1:
                break
            await asyncio.sleep(0.02)
        assert spy.covered() >= 1  # the interval's sync followed
    finally:
        await rt.stop()


async def test_never_does_not_sync_while_running(store) -> None:
    """Publishes are never synced; a catalogue change (new topic or group) is, once."""
    spy = SyncSpy(store)
    rt = BrokerRuntime(store, fsync="never")
    await rt.start()
    try:
        rt.broker.create_topic(TopicSpec(name="t"))
        inbox = Inbox()
        rt.broker.join(GroupSpec(topic="t", name="g"), prefetch=100, deliver=inbox)
        catalogue_syncs = len(spy.started)
        await rt.commit()
        assert len(spy.started) == catalogue_syncs + 1  # the new topic and group reach disk
        before = len(spy.started)
        for _ in range(20):
            await rt.publish("t", [Outgoing(b"x")])
        await asyncio.sleep(0.05)
        assert len(inbox) == 20
        assert len(spy.started) == before
    finally:
        await rt.stop()


async def test_timers_run_leases(store) -> None:
    clock = ManualClock()
    rt = BrokerRuntime(store, fsync="batch", clock=clock)
    await rt.start()
    try:
        rt.broker.create_topic(TopicSpec(name="t"))
        inbox = Inbox()
        rt.broker.join(GroupSpec(topic="t", name="g", lease=5), prefetch=10, deliver=inbox)
        await rt.publish("t", [Outgoing(b"x")])
        assert [d.delivery_count for d in inbox.take()] == [1]
        clock.advance(5)
        rt.poke()
        for _ in range(100):
            if inbox.items:
                break
            await asyncio.sleep(0.01)
        assert [d.delivery_count for d in inbox.take()] == [2]
    finally:
        await rt.stop()


@pytest.mark.parametrize("fsync", ["batch", "interval", "never"])
async def test_stop_is_prompt_and_durable(tmp_path: Path, fsync: str) -> None:
    store = DiskStore(tmp_path / "s")
    rt = BrokerRuntime(store, fsync=fsync, fsync_interval=0.5)
    await rt.start()
    rt.broker.create_topic(TopicSpec(name="t"))
    for _ in range(10):
        await rt.publish("t", [Outgoing(b"x")])
    await asyncio.sleep(0.05)  # the timer task is asleep now
    start = time.monotonic()
    await asyncio.wait_for(rt.stop(), 5)
    assert time.monotonic() - start < 0.9
    reopened = DiskStore(tmp_path / "s")
    reopened.open()
    try:
        assert reopened.bounds("t", 0) == (0, 10)
    finally:
        reopened.close()
