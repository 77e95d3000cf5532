"""Fixtures of the reliability suite: broker processes come from tests/helpers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.helpers` and `tests.reliability` import as packages
    sys.path.insert(0, str(ROOT))
