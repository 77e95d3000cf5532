"""Side-by-side benchmarks of tidings against RabbitMQ, NATS JetStream and Redis Streams.

``tidings bench [--quick|--smoke] [--engines ...] [--workloads ...] [--repeat N] [--json]``
calls :func:`main`. See docs/performance.md for the method and the latest figures.
"""

from .runner import main

__all__ = ["main"]
