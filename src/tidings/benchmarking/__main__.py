"""``python -m tidings.benchmarking``: the benchmark runner."""

import sys

from . import main

sys.exit(main(sys.argv[1:]))
