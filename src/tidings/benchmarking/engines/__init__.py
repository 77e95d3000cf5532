"""Engine adapters by name: tidings (raw, with message tracing on, and through the service
framework), RabbitMQ (classic and quorum queues), NATS JetStream and Redis Streams, and tidings
over Redis Streams (``redis://``) and over RabbitMQ (``amqp://``)."""

from __future__ import annotations

from .base import Client, Engine, OnMessage, partition_of
from .nats import NatsEngine
from .rabbitmq import RabbitEngine, RabbitQuorumEngine, TidingsAmqpEngine
from .redis import RedisEngine
from .service import ServiceEngine
from .tidings import TidingsEngine, TracedTidingsEngine
from .tidings_redis import TidingsRedisEngine

ENGINES: dict[str, type[Engine]] = {
    cls.name: cls
    for cls in (
        TidingsEngine,
        TracedTidingsEngine,
        ServiceEngine,
        RabbitEngine,
        RabbitQuorumEngine,
        TidingsAmqpEngine,
        NatsEngine,
        RedisEngine,
        TidingsRedisEngine,
    )
}

__all__ = ["ENGINES", "Client", "Engine", "OnMessage", "partition_of"]
