"""The service framework: typed handlers for events, commands and requests.

Start at :class:`Service`. Handlers get typed payloads (pydantic), a :class:`Context`, lease
auto-extension, retries with backoff, dead-lettering, idempotency and middleware; the same code
runs on every transport. See docs/service.md.
"""

from ..resilience.backoff import Backoff
from .app import Service
from .codecs import JSON, MSGPACK, Codec
from .context import Context
from .handlers import Handler
from .idempotency import IdempotencyStore
from .middleware import (
    LoggingMiddleware,
    MetricsMiddleware,
    Middleware,
    PublishCall,
    TracingMiddleware,
)
from .outcomes import Reject, Retry
from .tracing import TraceContext, current_trace

__all__ = [
    "JSON",
    "MSGPACK",
    "Backoff",
    "Codec",
    "Context",
    "Handler",
    "IdempotencyStore",
    "LoggingMiddleware",
    "MetricsMiddleware",
    "Middleware",
    "PublishCall",
    "Reject",
    "Retry",
    "Service",
    "TraceContext",
    "TracingMiddleware",
    "current_trace",
]
