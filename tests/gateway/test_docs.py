"""Every code block of docs/gateway.md runs as written (Python blocks twice: re-runnable; the
TOML block is loaded as a routes file; shell blocks run), and the CLI's bad options fail
with exit code 2 and a message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tidings.cli.main import main
from tidings.gateway import static_routes

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gateway.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
TOML = [code for lang, code in BLOCKS if lang == "toml"]
SHELL = [code for lang, code in BLOCKS if lang == "bash"]


def test_the_page_has_its_samples():
    assert len(PYTHON) >= 2 and len(TOML) == 1 and len(SHELL) >= 1
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash", "toml"}


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index, capsys):
    for _ in range(2):
        exec(compile(PYTHON[index], f"docs/gateway.md block {index}", "exec"), {})
    out = capsys.readouterr().out
    assert out.count("\n") >= 6  # each run printed its three lines
    assert "Traceback" not in out


def test_toml_block_is_a_routes_file(tmp_path):
    file = tmp_path / "routes.toml"
    file.write_text(TOML[0])
    [route] = static_routes(file)
    assert (route.key, route.service, route.topic, route.kind, route.timeout) == (
        "GET /v1/legacy/{sku}", "stock", "stock.legacy", "request", 3.0,
    )  # fmt: skip


def test_shell_blocks_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for block in SHELL:
        for line in block.strip().splitlines():
            out = subprocess.run(
                line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=120,
            )  # fmt: skip
            assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
            assert "Example" in out.stdout


def test_bad_options_exit_2_with_a_message(capsys, tmp_path):
    assert main(["gateway", "--api-key", "nokey"]) == 2
    assert "KEY=PRINCIPAL" in capsys.readouterr().err
    assert main(["gateway", "--timeout", "0"]) == 2
    assert "timeout must be > 0" in capsys.readouterr().err
    bad = tmp_path / "routes.toml"
    bad.write_text('[[route]]\nhttp = "FETCH /x"\nservice = "a"\ntopic = "a.b"\n')
    assert main(["gateway", "--routes", str(bad)]) == 2
    assert "invalid http route" in capsys.readouterr().err
