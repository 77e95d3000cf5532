"""kill -9 at random moments: every record confirmed by a sync survives, exactly once, in
order, with its body; no damaged record is ever served; confirmed acks survive."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from storage_helpers import crash_record

from tidings.storage import DiskStore

HERE = Path(__file__).parent
KILLS = 15  # at most: a loaded machine stops after MIN_KILLS once the time budget is spent
MIN_KILLS = 5


@pytest.mark.slow
def test_kill_9_loses_nothing_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "store"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE)])
    rng = random.Random(20261123)
    confirmed_total = 0
    deadline = time.monotonic() + 40
    for kill in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, str(HERE / "crash_child.py"), str(path), str(kill)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.01, 0.25))
        child.send_signal(signal.SIGKILL)
        lines = [line for line in child.stdout.read().split(b"\n") if line]
        child.wait()
        confirmed, acked = (int(x) for x in lines[-1].split()) if lines else (0, 0)
        confirmed_total = max(confirmed_total, confirmed)

        store = DiskStore(path)
        report = store.open()
        try:
            first, end = store.bounds("t", 0)
            assert end >= confirmed_total, f"kill {kill}: confirmed {confirmed_total}, found {end}"
            assert first <= max(0, confirmed_total - 2000)
            offset = first
            while offset < end:
                batch = store.read("t", 0, offset, 500, 1 << 22)
                assert batch, f"kill {kill}: nothing at {offset} below {end}"
                for record in batch:
                    assert record == crash_record(offset), f"kill {kill}: bad record at {offset}"
                    offset += 1
            cursor = store.load_cursors("t", "g").get(0)
            assert (cursor.floor if cursor else 0) >= acked
            assert all("offset" not in line for line in report.truncated)
        finally:
            store.close()
        if kill + 1 >= MIN_KILLS and time.monotonic() > deadline:
            break  # bounded in time as well as count; every kill done was fully checked
    assert confirmed_total > 0
