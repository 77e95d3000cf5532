"""The JSON documents of the NATS micro protocol (ADR-32), built from a running service.

PING, INFO and STATS answers carry ``type``, ``name``, ``id``, ``version`` and ``metadata``
(string to string); INFO adds ``description`` and ``endpoints`` (name, subject, queue group,
metadata), STATS adds ``started`` (RFC 3339, UTC) and per endpoint ``num_requests``,
``num_errors``, ``last_error``, ``processing_time`` and ``average_processing_time``
(nanoseconds). tidings' own facts ride where the protocol leaves room: endpoint metadata keys
``tidings.*`` (topic, group, kind, version, payload schemas as JSON text) and, in STATS, a
``tidings`` object (readiness, outgoing flows with their rates) that micro tooling ignores.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from ...client.registry.subjects import INFO_TYPE, PING_TYPE, STATS_TYPE, versioned_topic

if TYPE_CHECKING:
    from ..app import Service
    from ..handlers import Handler
    from .stats import InstanceStats


def rfc3339(ts: float) -> str:
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _schema(payload: Any) -> str | None:
    try:
        schema = payload.json_schema("#/$defs/{model}")
    except Exception:
        return None
    return json.dumps(schema, sort_keys=True, separators=(",", ":")) if schema else None


def handler_version(service: Service, handler: Handler) -> str:
    return getattr(handler, "version", None) or service.version


def endpoint_metadata(service: Service, handler: Handler) -> dict[str, str]:
    version = handler_version(service, handler)
    meta = {
        "tidings.topic": handler.topic,
        "tidings.group": handler.group,
        "tidings.kind": "request" if handler.responder else "event",
        "tidings.mode": handler.mode,
        "tidings.version": version,
    }
    if handler.http is not None:  # the gateway's route (docs/gateway.md)
        meta["tidings.http"] = handler.http
        meta["tidings.idempotent"] = "true" if handler.idempotent else "false"
    if handler.responder:
        meta["tidings.version_topic"] = versioned_topic(handler.topic, version)
    schema = _schema(handler.payload)
    if schema:
        meta["tidings.schema"] = schema
    if handler.returns is not None:
        returns = _schema(handler.returns)
        if returns:
            meta["tidings.returns"] = returns
    return meta


def identity(service: Service, instance: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {"name": service.name, "id": instance, "version": service.version, "metadata": metadata}


def ping(service: Service, instance: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {"type": PING_TYPE, **identity(service, instance, metadata)}


def info(service: Service, instance: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "type": INFO_TYPE,
        **identity(service, instance, metadata),
        "description": service.description or "",
        "endpoints": [
            {
                "name": hd.name,
                "subject": hd.topic,
                "queue_group": hd.group,
                "metadata": endpoint_metadata(service, hd),
            }
            for hd in service.handlers
        ],
    }


def stats(
    service: Service,
    instance: str,
    metadata: dict[str, str],
    counters: InstanceStats,
    extra: dict[str, Any],
) -> dict[str, Any]:
    rates = counters.rates["endpoints"]
    endpoints = []
    for hd in service.handlers:
        c = counters.endpoint(hd.name)
        endpoints.append(
            {
                "name": hd.name,
                "subject": hd.topic,
                "queue_group": hd.group,
                "num_requests": c.calls,
                "num_errors": c.errors,
                "last_error": c.last_error,
                "processing_time": c.nanos,
                "average_processing_time": c.average,
                "data": rates.get(hd.name, {"rate": 0.0, "error_rate": 0.0}),
            }
        )
    return {
        "type": STATS_TYPE,
        **identity(service, instance, metadata),
        "started": rfc3339(counters.started),
        "endpoints": endpoints,
        "tidings": {"outgoing": counters.outgoing_list(), **extra},
    }
