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


def dead_letter_topic(topic: str, group: str) -> str:
    """The default dead-letter topic of ``group`` on ``topic``."""
    return f"{topic}.{group}.dlq"
