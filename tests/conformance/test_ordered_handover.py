"""Conformance: an ordered group keeps every key's order while members join and leave under
load, with handlers running 8 at a time (issue #12, part 3).

Three members of one ordered group (``tidings.Service`` handlers, ``concurrency=8``) come and
go while messages keep arriving. A partition must be processed by at most one member at any
moment, including during the handover: for every key, no handling starts while another
handling of the same key runs (on any member), and none starts past a sequence number that
was not completed yet. Redelivering a message that was already started (at-least-once) is
allowed; skipping ahead or overlapping is not. The same code runs on every transport.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest

import tidings

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


async def test_ordered_group_keeps_key_order_across_joins_and_leaves(
    url: str, topic: str, request: pytest.FixtureRequest
):
    if not url.startswith("nats://"):
        # Declared, not skipped: the built-in broker (memory://, tidings://) still hands an
        # ordered partition to a joining member while the previous owner's handlers run
        # (seen on tidings://: "k2: 110 on m1 while 110 ran on m0"); fencing in the broker's
        # group is the broker half of issue #12 (src/tidings/broker).
        request.node.add_marker(
            pytest.mark.xfail(reason="broker-side ordered handover fencing: #12 broker half")
        )
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
