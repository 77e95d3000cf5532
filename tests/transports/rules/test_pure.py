"""The shared delivery rules stay pure and engine-neutral: no I/O, no event loop, no engine
client, no engine transport (import-linter keeps the tidings-internal side; this checks the
third-party and standard-library side, which import-linter does not see)."""

from __future__ import annotations

import ast
from pathlib import Path

import tidings.transports.rules as rules

FORBIDDEN = {"asyncio", "socket", "nats", "redis", "aio_pika", "aiormq", "os", "time"}


def test_the_rules_import_no_io_and_no_engine():
    folder = Path(rules.__file__).parent
    found = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level == 2:
                names = [f"tidings.transports.{node.module or node.names[0].name}"]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN or (
                    name.startswith("tidings.transports.")
                    and not (name.startswith("tidings.transports.rules"))
                ):
                    found.setdefault(path.name, []).append(name)
    assert len(list(folder.glob("*.py"))) >= 5
    assert found == {}
