"""Find the fenced code blocks of README.md and docs/*.md, with the marker written above each.

A marker is an HTML comment on the line right above the opening fence (invisible on GitHub,
visible in the source, listed by the tests)::

    <!-- docs: no-run (why it cannot run here) -->
    <!-- docs: serves -->          a server: started, left running 3 s, stopped by SIGTERM
    <!-- docs: xfail #13 (why) --> runs, expected to fail until the named issue is fixed
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*docs:\s*(no-run|serves|xfail)\b\s*(.*?)\s*-->\s*$")
PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console"}
DATA = {"text", "toml", "yaml", "json", "ini", "sql", "dot", "http"}


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str | None  # no-run, serves, xfail or None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in PYTHON | SHELL and self.marker != "no-run"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(above)
        found.append(
            Block(
                page=str(page.relative_to(ROOT)),
                line=line,
                lang=match.group(1),
                code=match.group(2),
                marker=marker.group(1) if marker else None,
                reason=marker.group(2).strip("() ") if marker else "",
            )
        )
    return found
