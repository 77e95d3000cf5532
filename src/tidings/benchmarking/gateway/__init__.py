"""``tidings bench gateway``: what the HTTP gateway costs and what it saves writing by hand.

One run, the same request each time (a JSON ``Quote`` validated, a ``Price`` back from a
tidings service process over a tidings:// broker process), three ways side by side:

- **direct**: ``client.request`` from Python (no HTTP; the floor);
- **gateway**: HTTP POST /v1/quotes through a ``tidings gateway`` process (route learned from
  the registry, validation, breaker, bulkhead, metrics and access log as shipped);
- **FastAPI**: HTTP POST /v1/quotes to a minimal FastAPI endpoint under uvicorn that
  validates the same model and calls ``client.request`` (what users write by hand).

Each at concurrency 1 (latency) and at ``--concurrency`` (throughput): requests/s and
p50/p99. The HTTP load comes from a small keep-alive HTTP/1.1 client in this process (no
HTTP library's overhead in the figures). Bounded: ``--requests`` per run and ``--seconds``
at most; every server binds 127.0.0.1 and is stopped by its PID.
"""

from .run import main

__all__ = ["main"]
