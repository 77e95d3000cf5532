"""How tidings' vocabulary maps onto RabbitMQ names and message properties, declared once.

- topic ``T``: a durable direct exchange ``tidings.t/T`` whose routing key is the partition
  number (``"0"`` .. ``"P-1"``, the partition picked by :func:`tidings.partitioning.partition_for`);
  the topic's settings travel as the exchange argument ``x-tidings-topic`` (JSON).
- messages published while the topic has no group at all are unroutable: the exchange's
  alternate exchange ``tidings.u/T`` (fanout) keeps them in the quorum queue ``tidings.u/T``
  until the topic's first group is declared, which moves them into the topic again.
- shared group ``G``: one quorum queue ``tidings.q/T/G`` bound with every partition's key.
- ordered group ``G``: one quorum queue per partition, ``tidings.q/T/G/<p>``, with
  single-active-consumer: RabbitMQ hands each partition to one live member at a time.
- a member of an ordered group: an exclusive queue ``tidings.m/T/G/<member>`` that RabbitMQ
  deletes with the member's connection, so the list of such queues is the live membership.
- a message's id, key, partition, offset, publish time, producer id and TTL travel as
  ``tidings-*`` headers (offsets are producer-assigned Snowflake ids, see codec).

Topic and group names never contain ``/``, so the names above cannot collide.
"""

from __future__ import annotations

import hashlib

TOPIC_ARG = "x-tidings-topic"
GROUP_ARG = "x-tidings-group"
EXCHANGE_PREFIX = "tidings.t/"
UNCLAIMED_PREFIX = "tidings.u/"
QUEUE_PREFIX = "tidings.q/"
MEMBER_PREFIX = "tidings.m/"

H_ID = "tidings-id"
H_KEY = "tidings-key"
H_PARTITION = "tidings-partition"
H_OFFSET = "tidings-offset"
H_TIME = "tidings-time"
H_MSG_ID = "tidings-msg-id"
H_TTL = "tidings-ttl"
DELIVERY_COUNT = "x-delivery-count"  # set by quorum queues: earlier returns of the message
X_DEATH = "x-death"
INTERNAL_HEADERS = frozenset(
    {H_ID, H_KEY, H_PARTITION, H_OFFSET, H_TIME, H_MSG_ID, H_TTL, DELIVERY_COUNT, X_DEATH}
)

# headers RabbitMQ sets itself: an application header of that name would be overwritten
RABBITMQ_HEADERS = (
    "x-death",
    "x-first-death-",
    "x-last-death-",
    "x-delivery-count",
    "x-received-from",
)

MAX_NAME = 255  # bytes, AMQP 0-9-1 short strings


def _fit(name: str) -> str:
    raw = name.encode()
    if len(raw) <= MAX_NAME:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return raw[: MAX_NAME - 17].decode(errors="ignore") + "~" + digest


def exchange_name(topic: str) -> str:
    return _fit(EXCHANGE_PREFIX + topic)


def unclaimed_name(topic: str) -> str:
    return _fit(UNCLAIMED_PREFIX + topic)


def shared_queue(topic: str, group: str) -> str:
    return _fit(f"{QUEUE_PREFIX}{topic}/{group}")


def partition_queue(topic: str, group: str, partition: int) -> str:
    return _fit(f"{QUEUE_PREFIX}{topic}/{group}/{partition}")


def member_prefix(topic: str, group: str) -> str:
    return f"{MEMBER_PREFIX}{topic}/{group}/"


def queue_prefix(topic: str) -> str:
    return f"{QUEUE_PREFIX}{topic}/"


def topic_of_exchange(name: str) -> str | None:
    return name[len(EXCHANGE_PREFIX) :] if name.startswith(EXCHANGE_PREFIX) else None


def routing_key(partition: int) -> str:
    return str(partition)
