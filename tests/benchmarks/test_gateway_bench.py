"""``tidings bench gateway --smoke`` runs the three paths (direct request, the gateway
process, a FastAPI endpoint) over real processes on loopback and reports every figure."""

from __future__ import annotations

import json

import pytest

from tidings.benchmarking import main

pytestmark = pytest.mark.timeout(300)


def test_gateway_bench_smoke(capsys):
    assert main(["gateway", "--smoke", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    paths = {"direct client.request", "tidings gateway", "FastAPI + client.request"}
    for key in ("concurrency 1", "concurrency 8"):
        runs = res[key]
        assert set(runs) == {*paths, "ratios"}
        for label in paths:
            r = runs[label]
            assert r["requests"] > 0 and r["per_s"] > 0, label
            assert 0 < r["p50_ms"] <= r["p99_ms"], label
        assert runs["tidings gateway"]["server_cpu_ms_per_request"] > 0
        assert runs["ratios"]["gateway_vs_direct"] > 0
    assert res["versions"]["fastapi"]
