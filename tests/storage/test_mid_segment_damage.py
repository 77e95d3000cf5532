"""Damage in the middle of a segment, through a real broker process and the wire protocol:
only the damaged records are lost, every start behaves the same, the cut bytes are kept in a
quarantine file, the lost offsets are named exactly, and `tidings store check|repair` see the
same damage from outside.

Each test publishes confirmed messages, stops the broker cleanly, flips bytes in the stopped
segment, and reads everything back with a consumer group.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers.broker_process import SRC, BrokerProcess

from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.storage.disk import format as fmt
from tidings.transports.tidings import NativeTransport

COUNT = 2000


async def _publish(url: str) -> dict[int, bytes]:
    t = NativeTransport(url, timeout=10.0, reconnect=False)
    await t.connect()
    try:
        await t.create_topic(TopicSpec(name="pay"))
        sent: dict[int, bytes] = {}
        for start in range(0, COUNT, 100):
            bodies = [b"refund-%04d " % i + b"x" * 150 for i in range(start, start + 100)]
            receipts = await t.publish("pay", [Outgoing(b) for b in bodies])
            sent.update({r.offset: b for r, b in zip(receipts, bodies, strict=True)})
        return sent
    finally:
        await t.close()


async def _consume(url: str, group: str) -> dict[int, bytes]:
    t = NativeTransport(url, timeout=10.0, reconnect=False)
    await t.connect()
    got: dict[int, bytes] = {}
    try:
        sub = await t.subscribe(GroupSpec(topic="pay", name=group), prefetch=500)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        idle = 0
        while loop.time() < deadline and idle < 3:
            batch = await sub.next_batch(500, timeout=0.5)
            idle = 0 if batch else idle + 1
            for m in batch:
                got[m.offset] = m.body
            await asyncio.gather(*(m.ack() for m in batch))
        await sub.close()
    finally:
        await t.close()
    return got


def _frames(segment: Path) -> list[tuple[int, int]]:
    """(position, offset) of every frame of an undamaged segment."""
    data = segment.read_bytes()
    out, position = [], fmt.FILE_HEADER.size
    while position < len(data):
        _, length, offset, _ = fmt.RECORD_HEADER.unpack_from(data, position)
        out.append((position, offset))
        position += fmt.RECORD_HEADER.size + length
    return out


def _flip(segment: Path, positions: list[int]) -> None:
    data = bytearray(segment.read_bytes())
    for p in positions:
        data[p] ^= 0x5A
    segment.write_bytes(bytes(data))


def _store(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings.cli", "store", *args],
        capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(SRC), "PATH": ""},
    )  # fmt: skip


def _lost_in_log(output: list[str]) -> set[int]:
    lost: set[int] = set()
    for line in output:
        for m in re.finditer(r"offsets? (\d+)(?:-(\d+))? lost", line):
            lost.update(range(int(m[1]), int(m[2] or m[1]) + 1))
        for m in re.finditer(r"corrupt record at offset (\d+)", line):
            lost.add(int(m[1]))
    return lost


async def _start(broker: BrokerProcess) -> None:
    await asyncio.to_thread(broker.start)


async def test_one_flipped_byte_mid_segment_loses_one_record_on_every_start(tmp_path):
    broker = BrokerProcess(tmp_path / "data", args=["--heartbeat", "1.0"])
    await _start(broker)
    try:
        sent = await _publish(broker.url)
    finally:
        assert await asyncio.to_thread(broker.stop) == 0
    [segment] = sorted((tmp_path / "data").glob("topics/pay/0/*.log"))
    frames = _frames(segment)
    position, victim = frames[COUNT // 2]
    _flip(segment, [position + fmt.RECORD_HEADER.size + 20])  # inside the record's body
    damaged_frame = segment.read_bytes()[position : frames[COUNT // 2 + 1][0]]
    expected = {o: b for o, b in sent.items() if o != victim}

    check = _store("check", str(tmp_path / "data"), "--json")
    assert check.returncode == 6, check.stderr
    report = json.loads(check.stdout)
    assert [(r["first"], r["last"]) for r in report["lost"]] == [(victim, victim)]
    assert segment.read_bytes()[position : frames[COUNT // 2 + 1][0]] == damaged_frame

    for attempt in range(3):  # every start serves the same: all but the damaged record
        broker.output.clear()
        await _start(broker)
        try:
            got = await _consume(broker.url, f"g{attempt}")
        finally:
            code = await asyncio.to_thread(broker.stop)
        assert code == 0, broker.output[-20:]
        assert got == expected, (attempt, sorted(set(expected) - set(got))[:5])
        assert _lost_in_log(broker.output) == {victim}, broker.output[-20:]

    repaired = _store("repair", str(tmp_path / "data"), "--json")
    assert repaired.returncode == 0, repaired.stderr
    report = json.loads(repaired.stdout)
    assert [(r["first"], r["last"]) for r in report["lost"]] == [(victim, victim)]
    [kept] = report["quarantined"]
    assert Path(kept).read_bytes() == damaged_frame  # the operator's copy of what was cut
    assert _store("check", str(tmp_path / "data")).returncode == 0
    await _start(broker)
    try:
        assert await _consume(broker.url, "after-repair") == expected
    finally:
        await asyncio.to_thread(broker.stop)


async def test_ten_random_flips_lose_at_most_ten_records_after_a_kill(tmp_path):
    broker = BrokerProcess(tmp_path / "data", args=["--heartbeat", "1.0"])
    await _start(broker)
    try:
        sent = await _publish(broker.url)
    finally:
        await asyncio.to_thread(broker.stop)
    [segment] = sorted((tmp_path / "data").glob("topics/pay/0/*.log"))
    frames = _frames(segment)
    (tmp_path / "data" / fmt.CLEAN_FILE).unlink()  # as after kill -9: the tail is scanned
    rng = random.Random(23)
    size = segment.stat().st_size
    flips = sorted(rng.sample(range(fmt.FILE_HEADER.size, size - 400), 10))
    _flip(segment, flips)
    hit = set()
    for p in flips:
        index = max(i for i, (start, _) in enumerate(frames) if start <= p)
        hit.add(frames[index][1])
    await _start(broker)
    try:
        got = await _consume(broker.url, "g")
    finally:
        await asyncio.to_thread(broker.stop)
    assert set(sent) - set(got) == hit
    assert all(got[o] == sent[o] for o in got)
    assert _lost_in_log(broker.output) == hit
    quarantine = list((tmp_path / "data" / fmt.QUARANTINE_DIR).rglob("*" + fmt.QUARANTINE_SUFFIX))
    assert quarantine and sum(p.stat().st_size for p in quarantine) >= len(hit) * 100
