"""python -m tidings.benchmarking.micro.service runs every mode (its figures mean nothing here)."""

from __future__ import annotations

import pytest

from tidings.benchmarking.micro import service


def test_every_mode_runs_and_prints_its_median(capsys: pytest.CaptureFixture[str]) -> None:
    service.main(["--messages", "1000", "--runs", "1"])
    out = capsys.readouterr().out
    for mode in ("consume", "publish", "publish_many"):
        assert f"{mode} " in out and "µs/msg" in out
