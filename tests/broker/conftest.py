"""Fixtures of the broker suite: a ``store`` of each kind (memory and disk), a ManualClock, and
``make_broker`` that opens a Broker over them (and reopens a disk store after a "crash")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tidings.broker import Broker
from tidings.clock import ManualClock
from tidings.model import Delivery, GroupSpec, Outgoing
from tidings.storage import DiskStore, MemoryStore, Store

SMALL_SEGMENT = 4096


class Inbox:
    """A member's ``deliver`` callback that keeps what it was handed."""

    def __init__(self) -> None:
        self.items: list[Delivery] = []
        self.calls = 0

    def __call__(self, deliveries: list[Delivery]) -> None:
        self.calls += 1
        self.items.extend(deliveries)

    def take(self) -> list[Delivery]:
        out, self.items = self.items, []
        return out

    def __len__(self) -> int:
        return len(self.items)


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [d.body for d in deliveries]


def msgs(*bodies: bytes | str, **kw) -> list[Outgoing]:
    return [Outgoing(b if isinstance(b, bytes) else b.encode(), **kw) for b in bodies]


def let_go(store: Store) -> None:
    """Drop a store the way a killed process does (no clean shutdown marker)."""
    if isinstance(store, DiskStore):
        store._release()


class Env:
    """A broker over one store kind, with a ManualClock, that can crash-and-reopen."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.clock = ManualClock()
        self.stores: list[Store] = []
        self.store = self._new_store()
        self.broker = self._open(self.store)

    def _new_store(self) -> Store:
        s: Store = (
            MemoryStore()
            if self.kind == "memory"
            else DiskStore(self.path, segment_bytes=SMALL_SEGMENT)
        )
        self.stores.append(s)
        return s

    def _open(self, store: Store, **kw) -> Broker:
        b = Broker(store, clock=self.clock, **kw)
        b.open()
        return b

    def reopen(self, crash: bool = True, **kw) -> Broker:
        """Disk: sync, let the store go (crash) or close it, and open a new Broker on a new
        DiskStore over the same directory. Memory: a new Broker over the same store."""
        self.broker.sync()
        if self.kind == "disk":
            if crash:
                let_go(self.store)
            else:
                self.store.close()
            self.store = self._new_store()
        self.broker = self._open(self.store, **kw)
        return self.broker

    def close(self) -> None:
        for s in self.stores:
            if isinstance(s, DiskStore):
                s.close()


@pytest.fixture(params=["memory", "disk"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    e = Env(request.param, tmp_path / "store")
    yield e
    e.close()


@pytest.fixture
def disk_env(tmp_path: Path) -> Iterator[Env]:
    e = Env("disk", tmp_path / "store")
    yield e
    e.close()


@pytest.fixture
def mem_env(tmp_path: Path) -> Iterator[Env]:
    e = Env("memory", tmp_path / "store")
    yield e
    e.close()


JoinFn = Callable[..., tuple[str, Inbox]]


def join(broker: Broker, spec: GroupSpec, prefetch: int = 10, **kw) -> tuple[str, Inbox]:
    inbox = Inbox()
    member = broker.join(spec, prefetch=prefetch, deliver=inbox, **kw)
    return member, inbox


def drain(broker: Broker, member: str, inbox: Inbox, limit: int = 100_000) -> list[Delivery]:
    """Ack everything the member gets until nothing more comes; return what it got."""
    got: list[Delivery] = []
    while inbox.items and len(got) < limit:
        for d in inbox.take():
            got.append(d)
            broker.ack(member, d.partition, d.offset)
    return got


def drain_all(broker: Broker, members: list[tuple[str, Inbox]]) -> list[list[Delivery]]:
    """Like drain, for several members at once (acking round by round)."""
    got: list[list[Delivery]] = [[] for _ in members]
    while any(inbox.items for _, inbox in members):
        for i, (m, inbox) in enumerate(members):
            for d in inbox.take():
                got[i].append(d)
                broker.ack(m, d.partition, d.offset)
    return got
