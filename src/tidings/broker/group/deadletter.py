"""Building the dead-letter copy of a message: body, key and headers kept, plus headers that
say why, how often it was delivered, where it came from and the consumer's last error."""

from __future__ import annotations

from ... import headers as H
from ...model import Outgoing, Record


def dead_letter_message(
    record: Record,
    *,
    topic: str,
    group: str,
    partition: int,
    reason: str,
    deliveries: int,
    error: str | None,
) -> Outgoing:
    headers = H.dead_letter_headers(
        record.headers,
        reason=reason,
        deliveries=deliveries,
        topic=topic,
        group=group,
        partition=partition,
        offset=record.offset,
        message_id=record.id,
        msg_id=record.msg_id,
        error=error,
    )
    # The copy keeps the key but not the TTL or delay: a dead letter waits for a human.
    return Outgoing(record.body, key=record.key, headers=headers)
