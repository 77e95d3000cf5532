"""``tidings bench resilience --smoke`` runs end to end and reports every figure; the retry
counts (virtual time, seeded) show the budget and the breaker cutting amplification."""

from __future__ import annotations

import json

from tidings.benchmarking import main


def test_resilience_bench_smoke(capsys):
    assert main(["resilience", "--smoke", "--no-broker", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    o = res["overhead"]
    for key in ("bare_us", "empty_us", "full_us", "full_hedged_us", "rr_memory_us"):
        assert o[key] > 0, key
    amp = res["amplification"]
    assert amp["dead / naive"]["amplification"] == 5.0  # every request tried 5 times
    assert amp["dead / budget"]["amplification"] < 2.0  # 20 % + the floor
    assert amp["dead / budget+breaker"]["amplification"] < amp["dead / budget"]["amplification"]
    assert all(r["goodput"] == 0.0 for k, r in amp.items() if k.startswith("dead"))
    assert set(res["isolation"]) == {"no bulkhead", "bulkhead(4) per callee"}
    assert all(r["healthy_calls"] > 0 for r in res["isolation"].values())
