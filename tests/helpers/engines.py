"""The engine a test runs on, by name: a broker process of its own for "tidings", or the
session's real nats-server, redis-server or rabbitmq-server (their fixtures, which the test
module imports). Each yields an object with a ``url``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from .broker_process import BrokerProcess

ENGINES = ["tidings", "nats", "redis", "amqp"]
SERVER_FIXTURES = {"nats": "nats_server", "redis": "redis_server", "amqp": "rabbitmq_server"}


@contextlib.contextmanager
def running_engine(
    request: pytest.FixtureRequest, engine: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    if engine in SERVER_FIXTURES:
        yield request.getfixturevalue(SERVER_FIXTURES[engine])
        return
    with BrokerProcess(tmp_path_factory.mktemp(f"{engine}-broker")) as broker:
        yield broker
