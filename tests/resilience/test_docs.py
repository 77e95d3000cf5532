"""Every code block of docs/resilience.md runs as written: the Python blocks are executed
(each in a fresh namespace, twice, so they are re-runnable) and the TOML block is loaded into
a policy registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tidings.resilience import PolicyRegistry

DOC = Path(__file__).resolve().parents[2] / "docs" / "resilience.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def test_the_page_has_its_samples():
    assert len(PYTHON) >= 8 and any(lang == "toml" for lang, _ in BLOCKS)


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index):
    for _ in range(2):
        exec(compile(PYTHON[index], f"docs/resilience.md block {index}", "exec"), {})


def test_toml_block_configures_a_registry():
    [toml] = [code for lang, code in BLOCKS if lang == "toml"]
    registry = PolicyRegistry()
    assert registry.load_toml(toml) == ["pricing"]
    p = registry.get("pricing")
    assert p.breaker.window_seconds == 30 and p.bulkhead.max_queue == 10
    assert p.retry.budget.ratio == 0.2 and p.retry.backoff.jitter == "full"
