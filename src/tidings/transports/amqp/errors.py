"""Translation of aio-pika / aiormq errors into the tidings error catalogue, at the boundary.

Every call into aio-pika runs inside :func:`translated`; the original error stays reachable
as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import aiormq.exceptions as amqp_errors

from ...errors import (
    BadRequest,
    ConnectionLost,
    Forbidden,
    NotFound,
    TidingsError,
    Timeout,
    TransportUnavailable,
    Unauthorized,
)


def translate(exc: BaseException, what: str) -> TidingsError:
    """The tidings error for ``exc`` raised while doing ``what``."""
    if isinstance(exc, TidingsError):
        return exc
    if isinstance(exc, amqp_errors.ChannelNotFoundEntity):
        return NotFound(f"{what}: not found ({exc})")
    if isinstance(exc, amqp_errors.ChannelAccessRefused):
        return Forbidden(f"{what}: the user lacks permission in this vhost ({exc})")
    if isinstance(exc, amqp_errors.ChannelPreconditionFailed):
        return BadRequest(f"{what}: RabbitMQ refused it ({exc})")
    if isinstance(exc, amqp_errors.ProbableAuthenticationError | amqp_errors.AuthenticationError):
        return Unauthorized(f"{what}: RabbitMQ refused the credentials ({exc})")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return Timeout(f"{what}: RabbitMQ did not answer in time")
    if isinstance(exc, amqp_errors.ChannelInvalidStateError | amqp_errors.ChannelClosed):
        return ConnectionLost(f"{what}: the AMQP channel was closed ({exc})")
    if isinstance(exc, amqp_errors.AMQPConnectionError | ConnectionError | OSError):
        return TransportUnavailable(f"{what}: RabbitMQ is unreachable ({exc})")
    if isinstance(exc, amqp_errors.AMQPError):
        return ConnectionLost(f"{what}: {exc}")
    return TransportUnavailable(f"{what}: {type(exc).__name__}: {exc}")


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
