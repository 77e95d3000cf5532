"""Dead-lettering on nats://: moving a message to its group's dead-letter topic.

The message is republished to ``spec.dead_letter_topic`` (default
:func:`tidings.headers.dead_letter_topic`), created on demand like the source topic, with its
body, key and headers kept and the ``tidings-dlq-*`` headers added; only then is the original
acknowledged, so a crash in between yields a duplicate in the dead-letter topic, never a loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import headers as H
from ...model import GroupSpec, Outgoing, TopicSpec
from .codec import Incoming

if TYPE_CHECKING:
    from .transport import NatsTransport


def dead_letter_spec(source: TopicSpec, name: str) -> TopicSpec:
    """The spec of a dead-letter topic created on demand for ``source``."""
    return TopicSpec(name=name, replicas=source.replicas, storage=source.storage)


def dead_letter_message(
    inc: Incoming,
    spec: GroupSpec,
    reason: str,
    deliveries: int,
    error: str | None,
) -> Outgoing:
    headers = H.dead_letter_headers(
        inc.headers,
        reason=reason,
        deliveries=deliveries,
        topic=spec.topic,
        group=spec.name,
        partition=inc.partition,
        offset=inc.offset,
        message_id=inc.id,
        msg_id=inc.msg_id,
        error=error,
    )
    return Outgoing(inc.body, key=inc.key, headers=headers)


async def move(
    transport: NatsTransport,
    source: TopicSpec,
    spec: GroupSpec,
    inc: Incoming,
    reason: str,
    deliveries: int,
    error: str | None,
) -> None:
    """Publish ``inc`` to the group's dead-letter topic (the caller then acks the original)."""
    name = spec.dead_letter_topic or H.dead_letter_topic(spec.topic, spec.name)
    await transport.ensure_topic(dead_letter_spec(source, name))
    await transport.publish(name, [dead_letter_message(inc, spec, reason, deliveries, error)])
