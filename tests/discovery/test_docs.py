"""Every code block of docs/discovery.md runs as written: Python blocks are executed twice
(re-runnable), shell blocks run against a real broker with a pricing service process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tidings.client.registry import Registry

from .test_registry_broker import wait_for

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "discovery.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SHELL = [code for lang, code in BLOCKS if lang == "bash"]


def test_the_page_has_its_samples():
    assert len(PYTHON) >= 7 and len(SHELL) >= 2
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash"}


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index):
    for _ in range(2):
        exec(compile(PYTHON[index], f"docs/discovery.md block {index}", "exec"), {})


async def test_shell_blocks_run(broker, spawn, tmp_path):
    import tidings

    spawn("pricing", broker.url, "--heartbeat", "1")
    async with tidings.connect(broker.url) as client:
        await wait_for(lambda: Registry(client).instances(ask=False))
    bin_dir = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin"
    env = {
        **os.environ,
        "TIDINGS_URL": broker.url,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "PATH": os.pathsep.join([str(bin_dir), str(Path(__import__("sys").executable).parent),
                                 os.environ.get("PATH", "")]),
    }  # fmt: skip
    for block in SHELL:
        for line in block.strip().splitlines():
            out = subprocess.run(
                line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                timeout=120,
            )  # fmt: skip
            assert out.returncode == 0, f"{line}\n{out.stdout}\n{out.stderr}"
