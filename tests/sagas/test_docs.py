"""Every code block of docs/sagas.md runs as written, twice (re-runnable), and prints what the
page says it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "sagas.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
TEXT = [code for lang, code in BLOCKS if lang == "text"]

pytestmark = pytest.mark.timeout(120)


def test_the_page_has_its_samples():
    assert len(PYTHON) == 3
    assert {lang for lang, _ in BLOCKS} <= {"python", "text"}


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs(index, capsys):
    for _ in range(2):
        exec(compile(PYTHON[index], f"docs/sagas.md block {index}", "exec"), {})
    out = capsys.readouterr().out
    if index == 0:
        assert out == TEXT[0] * 2  # exactly what the page shows
    elif index == 2:
        assert out == TEXT[2] * 2  # the operator actions, as the page shows them
    else:
        assert out.count("started once: a saga with id 'welcome-ada' exists already") == 2
        assert out.count("running {'to': 'ada'}") == 2
