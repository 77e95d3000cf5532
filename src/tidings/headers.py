"""Well-known header names, shared by the broker, clients, framework and every transport."""

from __future__ import annotations

MESSAGE_TYPE = "tidings-type"  # document | command | event | request | reply
CONTENT_TYPE = "content-type"
REPLY_TO = "reply-to"
CORRELATION_ID = "correlation-id"
TRACEPARENT = "traceparent"
ERROR_TYPE = "tidings-error-type"  # set on a reply that carries a remote error
ERROR = "tidings-error"

# Added when a message is moved to a group's dead-letter topic.
DLQ_REASON = "tidings-dlq-reason"  # max-deliveries | rejected | expired | invalid
DLQ_DELIVERIES = "tidings-dlq-deliveries"
DLQ_TOPIC = "tidings-dlq-topic"
DLQ_GROUP = "tidings-dlq-group"
DLQ_PARTITION = "tidings-dlq-partition"
DLQ_OFFSET = "tidings-dlq-offset"
DLQ_ERROR = "tidings-dlq-error"
DLQ_ID = "tidings-dlq-id"
DLQ_MSG_ID = "tidings-dlq-msg-id"  # the producer message id, so a replay can keep it
DLQ_PREFIX = "tidings-dlq-"

# Set on a message redriven from a group's dead-letter topic: only that group receives it
# (every other group of the topic skips it, see tidings.broker.redrive).
REDRIVE_GROUP = "tidings-redrive-group"


def redrive_skips(group: str, target: str | None) -> bool:
    """Whether ``group`` must not receive a message whose ``tidings-redrive-group`` header is
    ``target``: it was redriven for another group (settle it without delivering). Every
    transport applies this rule, and strips the header before the application sees it."""
    return target is not None and target != group


# The group through which 'tidings dlq replay' reads a dead-letter topic: what it acked went
# back to the origin topic, so it is no longer listed as waiting (tidings.broker.redrive).
REPLAY_GROUP = "tidings-replay"

MAX_ERROR_TEXT = 4000


def dead_letter_topic(topic: str, group: str) -> str:
    """The default dead-letter topic of ``group`` on ``topic``."""
    return f"{topic}.{group}.dlq"


def dead_letter_headers(
    headers: dict[str, str],
    *,
    reason: str,
    deliveries: int,
    topic: str,
    group: str,
    partition: int,
    offset: int,
    message_id: str,
    msg_id: str | None,
    error: str | None,
) -> dict[str, str]:
    """The headers of a dead-letter copy: the original's, plus why, how often it was delivered,
    where it came from and the consumer's last error. Every transport builds them here."""
    out = dict(headers)
    out[DLQ_REASON] = reason
    out[DLQ_DELIVERIES] = str(deliveries)
    out[DLQ_TOPIC] = topic
    out[DLQ_GROUP] = group
    out[DLQ_PARTITION] = str(partition)
    out[DLQ_OFFSET] = str(offset)
    out[DLQ_ID] = message_id
    if msg_id:
        out[DLQ_MSG_ID] = msg_id
    if error:
        out[DLQ_ERROR] = error[:MAX_ERROR_TEXT]
    return out
