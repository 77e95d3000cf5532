"""Choosing a transport by URL scheme: `memory://`, `tidings://`, `nats://`, `redis://`,
`amqp://`."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from ..errors import BadRequest, TransportUnavailable
from .base import Transport

DEFAULT_URL = "tidings://127.0.0.1:7420"

# scheme -> (module, class, pip extra that brings its dependencies or None)
_SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("tidings.transports.memory", "MemoryTransport", None),
    "tidings": ("tidings.transports.tidings", "NativeTransport", None),
    "tidings+tls": ("tidings.transports.tidings", "NativeTransport", None),
    "nats": ("tidings.transports.nats", "NatsTransport", "nats"),
    "redis": ("tidings.transports.redis", "RedisTransport", "redis"),
    "rediss": ("tidings.transports.redis", "RedisTransport", "redis"),
    "amqp": ("tidings.transports.amqp", "AmqpTransport", "rabbitmq"),
    "amqps": ("tidings.transports.amqp", "AmqpTransport", "rabbitmq"),
}


def resolve_url(url: str | None) -> str:
    return url or os.environ.get("TIDINGS_URL") or DEFAULT_URL


def transport_for(url: str | None, **options: object) -> Transport:
    """Build (not connect) the transport for ``url`` (default: $TIDINGS_URL, then tidings://)."""
    url = resolve_url(url)
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise BadRequest(f"unknown transport URL {url!r}: use one of {known}")
    module_name, class_name, extra = _SCHEMES[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise TransportUnavailable(
            f"{scheme}:// needs the optional dependencies: pip install 'tidings[{extra}]' ({exc})"
        ) from exc
    # each class named in _SCHEMES takes the URL and its own engine's options
    cls: Callable[..., Transport] = getattr(module, class_name)
    return cls(url, **options)
