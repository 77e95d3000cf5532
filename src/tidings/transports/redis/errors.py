"""Translation of redis-py errors into the tidings error catalogue, at the transport boundary.
Every call into redis-py runs inside :func:`translated`; the original error stays reachable as
``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import redis.exceptions as rx

from ...errors import (
    ConnectionLost,
    NotFound,
    TidingsError,
    Timeout,
    TopicFull,
    TransportUnavailable,
    Unauthorized,
)


def translate(exc: BaseException, what: str) -> TidingsError:
    """The tidings error for ``exc`` raised while doing ``what``."""
    if isinstance(exc, TidingsError):
        return exc
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError):
        return Unauthorized(f"{what}: the Redis server refused the credentials in the URL")
    if isinstance(exc, rx.ResponseError):
        text = str(exc)
        if text.startswith("NOTOPIC"):
            return NotFound(f"{what}: the topic does not exist: create it first")
        if text.startswith("FULL"):
            return TopicFull(
                f"{what}: the partition holds max_messages and the topic's overflow is "
                "'reject'; consume messages or raise the limit"
            )
        if text.startswith("NOGROUP"):
            return NotFound(f"{what}: the group does not exist (deleted?)")
        if "CROSSSLOT" in text:
            return TidingsError(
                f"{what}: the keys are in different Redis Cluster slots ({text}); a custom "
                "dead_letter_topic must be created by tidings on demand (see docs/transports.md)"
            )
        return TidingsError(f"{what}: Redis error: {text}")
    if isinstance(exc, rx.TimeoutError | asyncio.TimeoutError | TimeoutError):
        return Timeout(f"{what}: the Redis server did not answer in time")
    if isinstance(exc, rx.ConnectionError | OSError):
        return ConnectionLost(f"{what}: the Redis connection failed: {exc}")
    if isinstance(exc, rx.RedisError):
        return TidingsError(f"{what}: {type(exc).__name__}: {exc}")
    return TidingsError(f"{what}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except TidingsError:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise translate(exc, what) from exc


def connect_error(exc: BaseException, address: str) -> TidingsError:
    """The error for a first connect to ``address`` (host:port) that failed with ``exc``."""
    if isinstance(exc, rx.AuthenticationError | rx.AuthorizationError):
        return Unauthorized(f"redis://{address} refused the credentials in the URL")
    if isinstance(exc, rx.TimeoutError | TimeoutError):
        return Timeout(f"redis://{address} did not answer PING in time: is it a Redis server?")
    return TransportUnavailable(
        f"cannot connect to redis://{address}: {exc}. Is redis-server running there (the "
        "default port is 6379)?"
    )
