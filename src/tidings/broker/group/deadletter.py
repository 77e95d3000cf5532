"""Building the dead-letter copy of a message: body, key and headers kept, plus headers that
say why, how often it was delivered, where it came from and the consumer's last error; and
how a group sees a dead letter redriven to the topic (``redriven_headers``: only the group it
died in delivers it, see tidings.broker.redrive)."""

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


def redriven_headers(group: str, headers: dict[str, str]) -> dict[str, str] | None:
    """For a redriven record's ``headers``: None when ``group`` must skip it (a redrive for
    another group), else the headers the application sees (without the redrive header)."""
    if H.redrive_skips(group, headers.get(H.REDRIVE_GROUP)):
        return None
    return {k: v for k, v in headers.items() if k != H.REDRIVE_GROUP}
