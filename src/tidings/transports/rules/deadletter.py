"""What a dead-letter copy is: its topic, that topic's settings, its body, key and headers.

A transport that moves a message to a group's dead-letter topic itself (the engine has no
such move) builds the copy here, then stores it and settles the original, in that order or
atomically: a crash in between may duplicate a dead letter, never lose one.
"""

from __future__ import annotations

from ...headers import dead_letter_headers, dead_letter_topic
from ...model import GroupSpec, Outgoing, TopicSpec


def topic_of(spec: GroupSpec) -> str:
    """The group's dead-letter topic (its own setting, else ``<topic>.<group>.dlq``)."""
    return spec.dead_letter_topic or dead_letter_topic(spec.topic, spec.name)


def topic_spec(source: TopicSpec, name: str) -> TopicSpec:
    """The spec of a dead-letter topic created on demand for ``source``."""
    return TopicSpec(name=name, replicas=source.replicas, storage=source.storage)


def copy(
    spec: GroupSpec,
    *,
    body: bytes,
    key: str | None,
    headers: dict[str, str],
    partition: int,
    offset: int,
    message_id: str,
    msg_id: str | None,
    reason: str,
    deliveries: int,
    error: str | None,
) -> Outgoing:
    """The dead-letter copy of a message of group ``spec`` (the ``tidings-dlq-*`` headers
    say why, how often it was delivered, where it came from and the last error)."""
    out = dead_letter_headers(
        headers,
        reason=reason,
        deliveries=deliveries,
        topic=spec.topic,
        group=spec.name,
        partition=partition,
        offset=offset,
        message_id=message_id,
        msg_id=msg_id,
        error=error,
    )
    return Outgoing(body, key=key, headers=out)
