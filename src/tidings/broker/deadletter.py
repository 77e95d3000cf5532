"""Building the dead-letter copy of a message: body, key and headers kept, plus headers that
say why, how often it was delivered, where it came from and the consumer's last error."""

from __future__ import annotations

from .. import headers as H
from ..model import Outgoing, Record


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
    headers = dict(record.headers)
    headers[H.DLQ_REASON] = reason
    headers[H.DLQ_DELIVERIES] = str(deliveries)
    headers[H.DLQ_TOPIC] = topic
    headers[H.DLQ_GROUP] = group
    headers[H.DLQ_PARTITION] = str(partition)
    headers[H.DLQ_OFFSET] = str(record.offset)
    headers[H.DLQ_ID] = record.id
    if error:
        headers[H.DLQ_ERROR] = error[:4000]
    # The copy keeps the key but not the TTL or delay: a dead letter waits for a human.
    return Outgoing(record.body, key=record.key, headers=headers)
