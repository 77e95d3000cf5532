"""tidings: reliable messaging for Python services.

One API for work queues, publish/subscribe, ordered channels and request/reply, on the built-in
broker (``tidings://``), in memory (``memory://``) or on NATS JetStream (``nats://``)::

    import tidings

    async with tidings.connect("tidings://127.0.0.1:7420") as client:
        await client.publish("orders", b"body", key="order-42")

Services: :class:`tidings.Service`. The public names are listed in ``__all__``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from . import errors, ids
from .client import AsyncClient, Client, Subscription, connect, connect_sync
from .errors import (
    BulkheadFull,
    CircuitOpen,
    RateLimited,
    Rejected,
    RemoteError,
    RequestTimeout,
    TidingsError,
    Timeout,
)
from .ids import Snowflake
from .model import (
    GroupInfo,
    GroupSpec,
    Message,
    Outgoing,
    PartitionInfo,
    Receipt,
    TopicInfo,
    TopicSpec,
)
from .service import (
    Backoff,
    Context,
    IdempotencyStore,
    LoggingMiddleware,
    MetricsMiddleware,
    Middleware,
    Reject,
    Retry,
    Service,
    TracingMiddleware,
)

try:
    __version__ = _version("tidings")
except _PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "AsyncClient",
    "Backoff",
    "BulkheadFull",
    "CircuitOpen",
    "Client",
    "Context",
    "GroupInfo",
    "GroupSpec",
    "IdempotencyStore",
    "LoggingMiddleware",
    "Message",
    "MetricsMiddleware",
    "Middleware",
    "Outgoing",
    "PartitionInfo",
    "RateLimited",
    "Receipt",
    "Reject",
    "Rejected",
    "RemoteError",
    "RequestTimeout",
    "Retry",
    "Service",
    "Snowflake",
    "Subscription",
    "TidingsError",
    "Timeout",
    "TopicInfo",
    "TopicSpec",
    "TracingMiddleware",
    "__version__",
    "connect",
    "connect_sync",
    "errors",
    "ids",
]
