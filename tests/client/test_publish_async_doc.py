"""docs/client.md's "Publishing many single messages" sample runs as written, twice (samples
must be re-runnable)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"


def test_the_publish_async_sample_runs_twice():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [sample] = [b for b in blocks if "publish_async" in b and "asyncio.run" in b]
    for _ in range(2):
        exec(compile(sample, "docs/client.md publish_async sample", "exec"), {})
