"""The benchmark harness keeps working: ``tidings bench --smoke`` on tidings and NATS.

Tiny counts (well under 60 s); the figures are not checked, only that every workload produced
positive numbers and the Markdown report has a row for each. Figures never gate CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers.nats_server import nats_server_binary

from tidings.benchmarking.report import label, markdown

SRC = Path(__file__).resolve().parents[2] / "src"

WORKLOAD_METRICS = {
    "publish": ["publish.single", "publish.batch"],
    "consume": ["consume"],
    "mpmc": ["mpmc.4x4"],
    "fanout": ["fanout.4groups"],
    "latency": [f"latency.{r}.{s}" for r in (200, 500) for s in ("p50", "p99", "p99.9", "max")],
    "backlog": [
        "backlog.publish",
        "backlog.rss_mb",
        "backlog.restart_s",
        "backlog.rss_after_restart_mb",
        "backlog.drain",
    ],
    "ordered": ["ordered.8p4m"],
}
# tidings' own idioms beyond what every engine reports (publish_async, next_batch) and the
# labelled extra row of the internal transport
TIDINGS_ONLY = ["publish.async", "publish.single.raw", "consume.batch"]


def _engines() -> list[str]:
    if nats_server_binary() is not None:
        return ["tidings", "nats"]
    if os.environ.get("CI"):
        pytest.fail("nats-server is missing: apt-get install -y nats-server", pytrace=False)
    return ["tidings"]


@pytest.mark.timeout(90)
def test_smoke_report_has_every_workload() -> None:
    engines = _engines()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "tidings.benchmarking", "--smoke", "--json"]
    argv += ["--engines", ",".join(engines)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=80, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert data["errors"] == {}
    report = markdown(data["results"], engines, data["errors"], "# smoke")
    for engine in engines:
        results = data["results"][engine]
        for workload, metrics in WORKLOAD_METRICS.items():
            for metric in metrics:
                values = results.get(metric)
                assert values, f"{engine}: no {metric} from the {workload} workload"
                assert all(v > 0 for v in values), f"{engine} {metric}: {values}"
        assert results["ordered.violations"] == [0.0], "per-key order was broken"
    for metric in TIDINGS_ONLY:
        values = data["results"]["tidings"].get(metric)
        assert values and all(v > 0 for v in values), f"tidings: no {metric}"
        assert f"| {label(metric)[0]} |" in report
    assert "raw transport (internal, not the public API)" in report
    for metrics in WORKLOAD_METRICS.values():
        for metric in metrics:
            row = f"| {label(metric)[0]} |"
            assert row in report, f"no row {row!r} in the report"
    assert "tidings / nats" in report or engines == ["tidings"]


def test_micro_benchmarks_run() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "tidings.benchmarking.micro.codec", "--seconds", "0.05"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "msg/s" in done.stdout


@pytest.mark.timeout(120)
def test_tidings_over_redis_is_compared_with_raw_redis_in_one_run() -> None:
    """Issue #22: ``tidings bench`` puts the redis:// transport next to raw redis-py doing the
    same work, with a ``tidings-redis / redis`` column, and keeps per-key order."""
    from tests.helpers.redis_server import require_redis_server

    require_redis_server()
    engines = ["redis", "tidings-redis"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "tidings.benchmarking", "--smoke", "--json"]
    argv += ["--engines", ",".join(engines)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=110, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert data["errors"] == {}
    ours = data["results"]["tidings-redis"]
    for metric in ("publish.single", "publish.batch", "consume", "fanout.4groups"):
        assert ours.get(metric) and all(v > 0 for v in ours[metric]), metric
    assert ours["ordered.violations"] == [0.0], "per-key order was broken on redis://"
    report = markdown(data["results"], engines, data["errors"], "# smoke")
    assert "| tidings-redis / redis |" in report


@pytest.mark.timeout(120)
def test_tracing_is_measured_side_by_side_in_one_run() -> None:
    """Issue #18: ``tidings-traced`` (the broker with ``--trace '>'``) runs beside ``tidings``,
    both with the broker's CPU per message; the engine-only micro-benchmark runs too."""
    engines = ["tidings", "tidings-traced"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "tidings.benchmarking", "--smoke", "--json"]
    argv += ["--engines", ",".join(engines), "--workloads", "publish,consume"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=100, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert data["errors"] == {}
    for engine in engines:
        for metric in ("publish.single.broker_us", "consume.broker_us"):
            values = data["results"][engine].get(metric)
            assert values and all(v > 0 for v in values), (engine, metric, values)
    report = markdown(data["results"], engines, data["errors"], "# smoke")
    assert f"| {label('consume.broker_us')[0]} |" in report
    argv = [sys.executable, "-m", "tidings.benchmarking.micro.tracing"]
    argv += ["--messages", "1000", "--runs", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "publish+deliver+ack" in done.stdout and "cost" in done.stdout
