"""``tidings bench saga --smoke`` runs a three-step saga end to end through the public API and
reports sagas/s and latency percentiles."""

from __future__ import annotations

import json

import pytest

from tidings.benchmarking import main

pytestmark = pytest.mark.timeout(180)


def test_saga_bench_smoke(capsys):
    assert main(["saga", "--smoke", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["steps"] == 3
    row = res["sqlite"]
    assert row["latency"]["sagas"] == 5
    assert 0 < row["latency"]["p50_ms"] <= row["latency"]["p99_ms"]
    assert row["burst"]["completed"] == row["burst"]["sagas"] == 20
    assert row["burst"]["sagas_per_s"] > 0
    assert 0 < row["burst"]["p50_ms"] <= row["burst"]["p99_ms"]
