"""Run the side-by-side benchmark: ``python benchmarks/run.py --quick`` (same as ``tidings bench``).

A thin wrapper around :func:`tidings.benchmarking.main`; it works from a source checkout
without installing tidings. ``benchmarks/setup.sh`` installs the servers and clients.
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from tidings.benchmarking import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
