"""Fixtures for the amqp:// transport tests: the session's real rabbitmq-server."""

from __future__ import annotations

from tests.helpers.rabbitmq_server import rabbitmq_server  # noqa: F401 - fixture
