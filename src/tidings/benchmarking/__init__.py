"""Side-by-side benchmarks of tidings against RabbitMQ, NATS JetStream and Redis Streams.

``tidings bench [--quick|--smoke] [--engines ...] [--workloads ...] [--repeat N] [--json]``
calls :func:`main`; ``tidings bench resilience [--quick]`` runs :mod:`.resilience`,
``tidings bench outbox [--quick]`` :mod:`.outbox`, ``tidings bench gateway [--quick]``
:mod:`.gateway`, ``tidings bench saga [--quick] [--postgres]`` :mod:`.saga`,
``tidings bench mqtt [--quick] [--repeat N]`` :mod:`.mqtt` (against Debian's mosquitto). See
docs/performance.md for the method and the latest figures.
"""

from __future__ import annotations

import importlib

from .runner import main as run_engines

#: ``tidings bench NAME ...`` runs a suite of its own instead of the engine comparison
SUITES = {
    "resilience": "tidings.benchmarking.resilience",
    "outbox": "tidings.benchmarking.outbox",
    "gateway": "tidings.benchmarking.gateway",
    "saga": "tidings.benchmarking.saga",
    "mqtt": "tidings.benchmarking.mqtt",
}


def main(argv: list[str] | None = None) -> int:
    if argv and argv[0] in SUITES:
        return int(importlib.import_module(SUITES[argv[0]]).main(argv[1:]))
    return run_engines(argv)


__all__ = ["SUITES", "main"]
