"""Every code block of docs/tracing.md runs as written: the broker command lines parse, the
shell session (tidings pub/sub/trace, curl) and the Python sample run against a real broker
started with ``--trace '>'`` (the page's 127.0.0.1:7421 and :7420 replaced by its addresses),
and the sample output is what ``tidings trace`` prints (the same columns)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tidings.cli.trace import COLUMNS
from tidings.server.config import config_from

from .conftest import start

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "tracing.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", TEXT, re.S)


def blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCKS if kind == lang]


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    broker = start(tmp_path_factory.mktemp("docs-traced"), env={"TIDINGS_TRACE": ">"})
    yield broker
    broker.proc.stop()


def test_the_page_has_its_samples():
    assert {kind for kind, _ in BLOCKS} <= {"bash", "python", "text"}
    assert len(blocks("bash")) == 4 and len(blocks("python")) == 1 and len(blocks("text")) == 1


def test_the_broker_command_lines_parse():
    (first, *_) = blocks("bash")
    for line in first.strip().splitlines():
        argv = shlex.split(line)
        assert argv[:2] == ["tidings", "broker"], line
        config = config_from(argv[2:], {})
        assert config.trace != "off"


def test_the_shell_sessions_run(traced, tmp_path):
    address = traced.base.removeprefix("http://")
    env = {
        **os.environ,
        "TIDINGS_URL": traced.url,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    outputs = []
    for session in blocks("bash")[1:]:
        for line in session.strip().splitlines():
            line = line.replace("127.0.0.1:7421", address)
            out = subprocess.run(
                line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=60,
            )  # fmt: skip
            assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
            assert '"error"' not in out.stdout, f"{line}\n{out.stdout}"
            outputs.append((line, out.stdout))
    traced_line = dict(outputs)["tidings trace order-17"]
    for word in ("published", "delivered", "acked", "billing", "msg_id order-17"):
        assert word in traced_line, traced_line
    (sample,) = blocks("text")
    for column in COLUMNS:
        assert column in sample and column in traced_line


def test_the_python_sample_runs(traced, monkeypatch):
    monkeypatch.setenv("TIDINGS_URL", traced.url)
    (code,) = blocks("python")
    for _ in range(2):  # re-runnable
        exec(compile(code, "docs/tracing.md", "exec"), {"__name__": "__main__"})
