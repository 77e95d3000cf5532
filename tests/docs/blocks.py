"""Find the fenced code blocks of README.md and docs/**/*.md, with the marker written above each.

A block's fence names its language: ``python`` and ``bash`` blocks are code and run,
``text``, ``toml``, ``yaml``, ``sql``, ... are data or output. A marker is an HTML comment on the
line right above the opening fence (invisible on GitHub, visible in the source); several are
separated by commas (``<!-- docs: continues, serves -->``)::

    <!-- docs: no-run (why it cannot run here) -->
    <!-- docs: serves -->          a server: started, left running a few seconds, stopped by SIGTERM
    <!-- docs: xfail #13 (why) --> runs, expected to fail until the named issue is fixed
    <!-- docs: continues -->       runs after the blocks before it on the page, in their namespace
    <!-- docs: nats-cluster -->    runs on a real 3-node NATS JetStream cluster the test starts

Blocks are grouped into chains: a block starts a chain, each following ``continues`` block joins
it. A chain is the unit the runner executes (tests/docs/test_run.py): its blocks in order, one
namespace for the Python ones, one working directory for all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*docs:\s*(.*?)\s*-->\s*$")
MARKERS = {"no-run", "serves", "xfail", "continues", "nats-cluster"}
PYTHON = {"python"}
SHELL = {"bash"}
DATA = {"text", "toml", "yaml", "json", "ini", "sql", "dot", "http"}
NEEDS_REASON = {"no-run", "xfail"}
OWNED = {  # pages whose blocks their own test module runs (with checks of what they print)
    "docs/discovery.md": "tests/discovery/test_docs.py",
    "docs/gateway.md": "tests/gateway/test_docs.py",
    "docs/operations.md": "tests/management/test_docs.py",
    "docs/resilience.md": "tests/resilience/test_docs.py",
    "docs/sagas.md": "tests/sagas/test_docs.py",
    "docs/outbox.md": "tests/outbox/test_docs.py",
    "docs/tracing.md": "tests/management/test_tracing_docs.py",
}
PENDING: set[str] = set()  # pages not run yet: none (keep it so)


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    markers: tuple[str, ...]  # no-run, serves, xfail, continues, nats-cluster
    reason: str

    def has(self, marker: str) -> bool:
        return marker in self.markers

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in PYTHON | SHELL and not self.has("no-run")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        above = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        markers, reason = parse_marker(above)
        found.append(
            Block(
                page=str(page.relative_to(ROOT)),
                line=line,
                lang=match.group(1),
                code=match.group(2),
                markers=markers,
                reason=reason,
            )
        )
    return found


def parse_marker(line: str) -> tuple[tuple[str, ...], str]:
    """``<!-- docs: continues, serves -->`` -> (("continues", "serves"), ""); ``xfail #13 (why)``
    -> (("xfail",), "#13 why")."""
    match = MARKER.search(line)
    if not match:
        return (), ""
    head, _, rest = match.group(1).partition("(")
    names = tuple(part.split()[0] for part in head.split(",") if part.strip())
    reason = " ".join([*re.findall(r"#\d+", head), rest.rstrip(") ")]).strip()
    return names, reason


def chains(page: Path) -> list[list[Block]]:
    """The page's runnable blocks, grouped: a ``continues`` block joins the chain before it."""
    found: list[list[Block]] = []
    for block in blocks(page):
        if not block.runs:
            continue
        if block.has("continues") and found:
            found[-1].append(block)
        else:
            found.append([block])
    return found
