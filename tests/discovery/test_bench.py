"""``tidings bench discovery`` runs end to end (tiny counts; figures live in the bench)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.broker_process import SRC


def test_the_discovery_bench_reports_detection_and_balancing():
    out = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "bench", "discovery", "--json", "--heartbeats",
         "0.3", "--instances", "2", "--rounds", "1", "--requests", "100"],
        capture_output=True, text=True, timeout=240, env={"PYTHONPATH": str(SRC),
                                                          "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    [row] = result["detection"]
    assert row["samples"] == 2
    assert 0.3 <= row["p50_s"] <= 0.9 + 2.0  # 2 to 3 beats after the kill, plus reads
    rr, p2c, _ = result["balancing"]["rows"]
    assert rr["slow_share"] == 0.25
    assert p2c["slow_share"] < rr["slow_share"]
