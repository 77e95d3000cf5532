"""tidings: reliable messaging for Python services.

One API for work queues, publish/subscribe, ordered channels and request/reply, on the built-in
broker (``tidings://``), in memory (``memory://``) or on NATS JetStream (``nats://``)::

    import tidings

    async with tidings.connect("tidings://127.0.0.1:7420") as client:
        await client.publish("orders", b"body", key="order-42")

Services: :class:`tidings.Service`. The public names are listed in ``__all__``.
"""

from __future__ import annotations

import typing as _typing

from . import errors, ids
from .errors import (
    BulkheadFull,
    CircuitOpen,
    NoInstance,
    NoResponders,
    RateLimited,
    Rejected,
    RemoteError,
    RequestTimeout,
    StepFailed,
    TidingsError,
    Timeout,
)
from .ids import Snowflake
from .model import (
    DeadLetter,
    GroupInfo,
    GroupSpec,
    Message,
    Outgoing,
    PartitionInfo,
    Receipt,
    StuckMember,
    TopicInfo,
    TopicSpec,
)
from .trace import Trace, TraceEvent

if _typing.TYPE_CHECKING:
    from .client import AsyncClient, Client, Subscription, connect, connect_sync
    from .discovery import discover, services
    from .sagas import Orchestrator, Participant, Saga
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

# The client and the service framework load on first use: the broker (``python -m
# tidings.server``) imports this package too and needs neither (nor pydantic, SQLAlchemy and
# importlib.metadata, which they and ``__version__`` pull in).
_LAZY = {
    **dict.fromkeys(("AsyncClient", "Client", "Subscription", "connect", "connect_sync"), "client"),
    **dict.fromkeys(
        (
            "Backoff",
            "Context",
            "IdempotencyStore",
            "LoggingMiddleware",
            "MetricsMiddleware",
            "Middleware",
            "Reject",
            "Retry",
            "Service",
            "TracingMiddleware",
        ),
        "service",
    ),
    **dict.fromkeys(("discover", "services"), "discovery"),
    **dict.fromkeys(("Orchestrator", "Participant", "Saga"), "sagas"),
}


if _typing.TYPE_CHECKING:
    # a type checker sees the names imported above, not the lazy loader below: a module
    # __getattr__ would make every misspelled ``tidings.<name>`` pass unnoticed
    __version__: str
else:

    def __getattr__(name: str) -> _typing.Any:
        if name == "__version__":
            from importlib.metadata import PackageNotFoundError, version

            try:
                value = version("tidings")
            except PackageNotFoundError:  # running from a source tree that is not installed
                value = "0.0.0+unknown"
        elif name in _LAZY:
            from importlib import import_module

            value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        else:
            raise AttributeError(f"module 'tidings' has no attribute {name!r}")
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AsyncClient",
    "Backoff",
    "BulkheadFull",
    "CircuitOpen",
    "Client",
    "Context",
    "DeadLetter",
    "GroupInfo",
    "GroupSpec",
    "IdempotencyStore",
    "LoggingMiddleware",
    "Message",
    "MetricsMiddleware",
    "Middleware",
    "NoInstance",
    "NoResponders",
    "Orchestrator",
    "Outgoing",
    "Participant",
    "PartitionInfo",
    "RateLimited",
    "Receipt",
    "Reject",
    "Rejected",
    "RemoteError",
    "RequestTimeout",
    "Retry",
    "Saga",
    "Service",
    "Snowflake",
    "StepFailed",
    "StuckMember",
    "Subscription",
    "TidingsError",
    "Timeout",
    "TopicInfo",
    "TopicSpec",
    "Trace",
    "TraceEvent",
    "TracingMiddleware",
    "__version__",
    "connect",
    "connect_sync",
    "discover",
    "errors",
    "ids",
    "services",
]
