"""CLI test fixtures: one real broker process for the module, and ``cli(...)`` that runs the
``tidings`` command in-process and returns (exit code, stdout, stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from tests.helpers.broker_process import SRC, BrokerProcess

from tidings.cli.main import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)

    def lines(self):
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with BrokerProcess(tmp_path_factory.mktemp("cli-broker")) as b:
        yield b


@pytest.fixture
def cli(broker, capsys, monkeypatch):
    monkeypatch.setenv("TIDINGS_URL", broker.url)

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_process(*args: str, timeout: float = 90, **kwargs) -> subprocess.CompletedProcess[str]:
    """``python -m tidings.cli ARGS`` in a child process."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "tidings.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=env, **kwargs,
    )  # fmt: skip
