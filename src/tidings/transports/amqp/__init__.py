"""`amqp://`: tidings on RabbitMQ (see :mod:`.transport`)."""

from .transport import AmqpTransport

__all__ = ["AmqpTransport"]
