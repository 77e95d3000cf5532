"""``tidings bench outbox --smoke`` runs every path end to end on SQLite and on a PostgreSQL
cluster it starts itself, with a real broker process, and reports every figure."""

from __future__ import annotations

import json

import pytest

from tidings.benchmarking import main

pytestmark = pytest.mark.timeout(300)


def test_outbox_bench_smoke(capsys):
    assert main(["outbox", "--smoke", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["sqlite"]) == {"publish", "row, then publish", "outbox poll (batch 500)"}
    assert set(res["postgresql"]) == {*res["sqlite"], "outbox tail (batch 2000)"}
    for db in ("sqlite", "postgresql"):
        for label, row in res[db].items():
            assert row["delivered_per_s"] > 0 and row["written_per_s"] > 0, label
            assert 0 < row["p50_ms"] <= row["p99_ms"], label
            assert row["rate"] > 0, label
        assert res[db]["publish"]["vs_publish"] == 1.0
        assert res[db]["outbox poll (batch 500)"]["relay_cpu_s"] > 0  # a relay process ran
        assert all(r["drain_per_s"] > 0 for k, r in res[db].items() if k.startswith("outbox"))
    tail = res["postgresql"]["outbox tail (batch 2000)"]
    assert tail["db_cpu_s"] > 0 and tail["wal_bytes_per_row"] > 0
    assert tail["slot_retained_bytes"] >= 0


def test_outbox_bench_writer_processes(capsys):
    """``--writer-procs 2``: the latency phase's outbox writers are two processes on one
    wall-clock schedule; every message arrives and is timed from its own commit's start."""
    argv = ["outbox", "--smoke", "--json", "--writer-procs", "2", "--only", "outbox tail"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["writer_procs"] == 2 and "sqlite" not in res
    assert set(res["postgresql"]) == {"outbox tail (batch 2000)"}
    row = res["postgresql"]["outbox tail (batch 2000)"]
    assert row["writer_procs"] == 2 and row["rate"] > 0
    assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert row["p99_sched_ms"] > 0 and row["writer_late_max_ms"] >= 0
    assert row["lat_writers_cpu_s"] > 0 and row["lat_db_cpu_s"] > 0


def test_outbox_bench_rejects_negative_writer_procs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["outbox", "--smoke", "--writer-procs", "-1"])
    assert exc.value.code == 2
    assert "--writer-procs must be >= 0" in capsys.readouterr().err


@pytest.mark.parametrize("procs", ["0", "2"])
def test_outbox_bench_several_messages_per_transaction(capsys, procs):
    """``--rows-per-tx 4``: each latency-phase transaction carries 4 messages (in this process
    or in writer processes); every one of them arrives (the phase waits for all) and the rate
    stays in messages/s."""
    argv = ["outbox", "--smoke", "--json", "--rows-per-tx", "4", "--writer-procs", procs,
            "--only", "outbox tail"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows_per_tx"] == 4
    row = res["postgresql"]["outbox tail (batch 2000)"]
    assert row["rows_per_tx"] == 4 and row["rate"] > 0
    assert 0 < row["p50_ms"] <= row["p99_ms"]
