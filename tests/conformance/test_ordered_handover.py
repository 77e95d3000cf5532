"""Conformance: an ordered group keeps every key's order while members join and leave under
load, with handlers running 8 at a time (issue #12, part 3).

Three members of one ordered group (``tidings.Service`` handlers, ``concurrency=8``) come and
go while messages keep arriving. A partition must be processed by at most one member at any
moment, including during the handover: for every key, no handling starts while another
handling of the same key runs (on any member), and none starts past a sequence number that
was not completed yet. Redelivering a message that was already started (at-least-once) is
allowed; skipping ahead or overlapping is not. The same code runs on every transport.

That run is a soak under load and catches an overlap only when a join happens to meet a running
handler. ``test_join_while_the_old_owner_is_busy_is_fenced`` makes the meeting certain: the
first member's handlers block until the second member has joined and had seconds to start
something. Before the built-in broker fenced the handover, it took the moved partitions'
in-flight messages back at the join and the new member started them while the old member's
handlers still ran them (memory:// and tidings://, every run).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest

import tidings
from tidings.partitioning import partition_for

from .scenarios import ordered_is_refused

pytestmark = pytest.mark.timeout(240)

KEYS = 12
BATCH = 12
BATCHES = 50


class Ledger:
    """Every handling of every key, checked as it starts and ends."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[str, int]] = {}
        self.done: dict[str, int] = defaultdict(lambda: -1)
        self.finished: set[int] = set()
        self.violations: list[str] = []
        self.by_member: dict[str, int] = defaultdict(int)

    def start(self, member: str, key: str, seq: int) -> None:
        other = self.running.get(key)
        if other is not None:
            self.violations.append(f"{key}: {seq} on {member} while {other[1]} ran on {other[0]}")
        expected = self.done[key] + KEYS if self.done[key] >= 0 else seq % KEYS
        if seq > expected:
            self.violations.append(f"{key}: {seq} started on {member} before {expected} was done")
        self.running[key] = (member, seq)

    def end(self, member: str, key: str, seq: int) -> None:
        if self.running.get(key) == (member, seq):
            del self.running[key]
        self.done[key] = max(self.done[key], seq)
        self.finished.add(seq)
        self.by_member[member] += 1


def member(url: str, topic: str, index: int, ledger: Ledger) -> tidings.Service:
    svc = tidings.Service("handover", url=url, grace_period=10.0)
    svc.topic(topic, partitions=4)
    name = f"m{index}"

    @svc.on(topic, mode="ordered", concurrency=8, lease=5.0, name=f"book-{index}")
    async def book(payload: dict) -> None:
        key, seq = payload["key"], payload["seq"]
        ledger.start(name, key, seq)
        try:
            await asyncio.sleep(0.002 + 0.004 * (seq % 3))
        finally:
            ledger.end(name, key, seq)

    return svc


async def test_ordered_group_keeps_key_order_across_joins_and_leaves(url: str, topic: str):
    if await ordered_is_refused(url, topic):  # redis:// (see docs/transports.md)
        return
    ledger = Ledger()
    members = [member(url, topic, i, ledger) for i in range(3)]
    total = BATCH * BATCHES
    async with tidings.connect(url) as client:
        await client.create_topic(topic, partitions=4)
        await members[0].start()

        async def produce() -> None:
            for b in range(BATCHES):
                batch = []
                for i in range(BATCH):
                    seq = b * BATCH + i
                    key = f"k{seq % KEYS}"
                    body = f'{{"key": "{key}", "seq": {seq}}}'.encode()
                    batch.append(tidings.Outgoing(body, key=key))
                await client.publish_many(topic, batch)
                await asyncio.sleep(0.1)

        producer = asyncio.create_task(produce())
        await asyncio.sleep(1.0)
        await members[1].start()  # a join under load
        await asyncio.sleep(1.0)
        await members[2].start()  # another join
        await asyncio.sleep(1.0)
        await members[0].stop()  # a leave under load
        await asyncio.sleep(1.0)
        await members[1].stop()  # and another: member 2 takes every partition
        await producer
        deadline = time.monotonic() + 90
        while len(ledger.finished) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await members[2].stop()
    assert ledger.violations == [], "\n".join(ledger.violations)
    assert len(ledger.finished) == total, f"{total - len(ledger.finished)} never handled"
    assert ledger.by_member["m2"] > 0 and ledger.by_member["m0"] > 0


PARTITIONS = 4
PER_KEY = 4  # per batch; two batches
CONCURRENCY = 32  # the old owner takes the whole first batch: every key runs on it


def two_keys_per_partition() -> list[str]:
    keys: dict[int, list[str]] = defaultdict(list)
    i = 0
    while any(len(keys[p]) < 2 for p in range(PARTITIONS)):
        key = f"key{i}"
        i += 1
        if len(keys[partition_for(key, PARTITIONS)]) < 2:
            keys[partition_for(key, PARTITIONS)].append(key)
    return [k for p in range(PARTITIONS) for k in keys[p]]


class KeyLedger:
    """Per key: which handling runs now, and the highest sequence number completed."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[str, int]] = {}
        self.done: dict[str, int] = defaultdict(lambda: -1)
        self.finished: set[tuple[str, int]] = set()
        self.started: dict[str, int] = defaultdict(int)
        self.handled: dict[str, int] = defaultdict(int)
        self.violations: list[str] = []

    def start(self, member: str, key: str, n: int) -> None:
        other = self.running.get(key)
        if other is not None:
            self.violations.append(f"{key}: {n} on {member} while {other[1]} ran on {other[0]}")
        if n > self.done[key] + 1:
            self.violations.append(f"{key}: {n} on {member} before {self.done[key] + 1} was done")
        self.running[key] = (member, n)
        self.started[member] += 1

    def end(self, member: str, key: str, n: int) -> None:
        if self.running.get(key) == (member, n):
            del self.running[key]
        self.done[key] = max(self.done[key], n)
        self.finished.add((key, n))
        self.handled[member] += 1


async def test_join_while_the_old_owner_is_busy_is_fenced(url: str, topic: str) -> None:
    if await ordered_is_refused(url, topic):
        return
    keys = two_keys_per_partition()
    ledger = KeyLedger()
    gate = asyncio.Event()  # the first member's handlers wait for it: a slow old owner

    def service(name: str) -> tidings.Service:
        svc = tidings.Service("fenced", url=url, grace_period=10.0)
        svc.topic(topic, partitions=PARTITIONS)

        @svc.on(topic, mode="ordered", concurrency=CONCURRENCY, lease=5.0, name=f"book-{name}")
        async def book(payload: dict) -> None:
            key, n = payload["key"], payload["n"]
            ledger.start(name, key, n)
            try:
                if name == "old":
                    await gate.wait()
                await asyncio.sleep(0.005)
            finally:
                ledger.end(name, key, n)

        return svc

    old, new = service("old"), service("new")
    total = len(keys) * PER_KEY * 2

    def batch(first: int) -> list[tidings.Outgoing]:
        return [
            tidings.Outgoing(f'{{"key": "{k}", "n": {n}}}'.encode(), key=k)
            for n in range(first, first + PER_KEY)
            for k in keys
        ]

    async with tidings.connect(url) as client:
        await client.create_topic(topic, partitions=PARTITIONS)
        await client.publish_many(topic, batch(0))
        await old.start()
        try:
            deadline = time.monotonic() + 30
            # every key's first message runs on the old owner, blocked
            while len(ledger.running) < len(keys) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert len(ledger.running) == len(keys), ledger.running
            await new.start()  # half the partitions move to it now
            deadline = time.monotonic() + 3.0
            while not ledger.started["new"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            started_while_fenced = ledger.started["new"]
            await client.publish_many(topic, batch(PER_KEY))  # for the new owner, once free
            gate.set()
            deadline = time.monotonic() + 60
            while len(ledger.finished) < total and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            gate.set()
            await new.stop()
            await old.stop()
    assert ledger.violations == [], "\n".join(ledger.violations)
    assert started_while_fenced == 0, "the new owner started while the old one held the keys"
    assert len(ledger.finished) == total, f"{total - len(ledger.finished)} never handled"
    assert ledger.handled["new"] > 0, "the moved partitions never reached the new owner"
