"""Dead-lettering on nats://: moving a message to its group's dead-letter topic.

The message is republished to the group's dead-letter topic (the shared rules of
:mod:`tidings.transports.rules.deadletter` name it and build the copy), created on demand like
the source topic, with its body, key and headers kept and the ``tidings-dlq-*`` headers added;
only then is the original acknowledged, so a crash in between yields a duplicate in the
dead-letter topic, never a loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...model import GroupSpec, TopicSpec
from ..rules import deadletter as rules
from .codec import Incoming

if TYPE_CHECKING:
    from .transport import NatsTransport


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
    name = rules.topic_of(spec)
    await transport.ensure_topic(rules.topic_spec(source, name))
    copy = rules.copy(
        spec,
        body=inc.body,
        key=inc.key,
        headers=inc.headers,
        partition=inc.partition,
        offset=inc.offset,
        message_id=inc.id,
        msg_id=inc.msg_id,
        reason=reason,
        deliveries=deliveries,
        error=error,
    )
    await transport.publish(name, [copy])
