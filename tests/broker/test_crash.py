"""kill -9 of a broker at random moments: every confirmed publish is in the log exactly once
(producer retries with the same message ids are deduplicated across the crash), and the group
skips nothing: every message not acked-and-synced is still deliverable, and nothing acked and
synced is delivered again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tidings.broker import Broker
from tidings.model import Delivery
from tidings.storage import DiskStore

from .crash_broker_child import GROUP, PARTITIONS, body

HERE = Path(__file__).parent
KILLS = 15  # at most: a loaded machine stops after MIN_KILLS once the time budget is spent
MIN_KILLS = 5


def check(
    path: Path,
    confirmed: dict[int, tuple[int, int]],
    acked: set[tuple[int, int]],
    maybe_acked: set[tuple[int, int]],
) -> int:
    store = DiskStore(path)
    broker = Broker(store)
    broker.open()
    try:
        log: dict[tuple[int, int], str | None] = {}
        for p in range(PARTITIONS):
            first, end = store.bounds("t", p)
            assert first == 0
            offset = 0
            while offset < end:
                batch = store.read("t", p, offset, 500, 1 << 22)
                assert batch, f"nothing at {p}@{offset} below {end}"
                for r in batch:
                    assert r.offset == offset
                    assert r.body == body(int(r.msg_id[1:]))
                    log[(p, offset)] = r.msg_id
                    offset += 1
        ids = [m for m in log.values()]
        assert len(ids) == len(set(ids)), "a message id is in the log twice"
        for seq, ref in confirmed.items():
            assert log.get(ref) == f"m{seq}", f"confirmed m{seq} at {ref}: found {log.get(ref)}"
        got: list[Delivery] = []
        broker.join(GROUP, prefetch=1_000_000, deliver=got.extend)
        delivered = {(d.partition, d.offset) for d in got}
        assert len(delivered) == len(got)
        assert not delivered & acked, f"acked and synced, delivered again: {delivered & acked}"
        assert delivered <= set(log)
        skipped = set(log) - acked - delivered
        assert skipped <= maybe_acked, (
            f"the group skipped messages: {sorted(skipped - maybe_acked)}"
        )
        return len(log)
    finally:
        store.close()


@pytest.mark.slow
def test_kill_9_broker(tmp_path: Path) -> None:
    path = tmp_path / "store"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE.parents[1])])
    rng = random.Random(20261123)
    confirmed: dict[int, tuple[int, int]] = {}
    acked: set[tuple[int, int]] = set()
    maybe_acked: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 40
    total = 0
    for kill in range(KILLS):
        start = max(confirmed, default=-1) + 1  # a producer retries what was not confirmed
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.broker.crash_broker_child",
                str(path),
                str(kill),
                str(start),
            ],
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(HERE.parents[1]),
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.02, 0.3))
        child.send_signal(signal.SIGKILL)
        data = child.stdout.read()
        child.wait()
        for line in data.split(b"\n"):
            parts = line.split()
            if len(parts) == 4 and parts[0] == b"P":
                seq, p, o = (int(x) for x in parts[1:])
                assert confirmed.setdefault(seq, (p, o)) == (p, o), f"m{seq} moved"
            elif len(parts) == 3 and parts[0] == b"A":
                acked.add((int(parts[1]), int(parts[2])))
            elif len(parts) == 3 and parts[0] == b"a":
                maybe_acked.add((int(parts[1]), int(parts[2])))
        total = check(path, confirmed, acked, maybe_acked)
        if kill + 1 >= MIN_KILLS and time.monotonic() > deadline:
            break  # bounded in time as well as count; every kill done was fully checked
    assert confirmed and acked and total >= len(confirmed)
