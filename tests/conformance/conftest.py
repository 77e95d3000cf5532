"""The conformance suite's transports: every scenario runs on `memory://`, on `tidings://` (a real
broker process), on `nats://` (a real nats-server with JetStream), on `redis://` (a real
redis-server with AOF), on `redis://` to a Redis Cluster of three primaries ("redis-cluster": topics
spread over the nodes) and on `amqp://` (a real rabbitmq-server). The scenario code is the same
for all; what a transport cannot do is a declared capability, checked in ``scenarios`` as a
documented difference, never skipped silently."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.nats_server import nats_server  # noqa: F401 - fixture
from tests.helpers.rabbitmq_server import rabbitmq_server  # noqa: F401 - fixture
from tests.helpers.redis_cluster import redis_cluster  # noqa: F401 - fixture
from tests.helpers.redis_server import redis_server  # noqa: F401 - fixture

import tidings
from tidings.transports.memory import stop_memory_broker

TRANSPORTS = [
    "memory",
    "tidings",
    "nats",
    "redis",
    "redis-cluster",
    "amqp",
]


@pytest.fixture(scope="session")
def tidings_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("conformance-broker")) as broker:
        yield broker


@pytest.fixture(params=TRANSPORTS)
def url(request: pytest.FixtureRequest) -> str:
    kind = request.param
    if kind == "memory":
        return f"memory://conformance-{secrets.token_hex(4)}"
    if kind == "tidings":
        return request.getfixturevalue("tidings_broker").url
    if kind == "redis":
        return request.getfixturevalue("redis_server").url
    if kind == "redis-cluster":
        return request.getfixturevalue("redis_cluster").url
    if kind == "amqp":
        return request.getfixturevalue("rabbitmq_server").url
    return request.getfixturevalue("nats_server").url


@pytest.fixture
async def client(url: str) -> AsyncIterator[tidings.AsyncClient]:
    async with tidings.connect(url) as c:
        yield c
    if url.startswith("memory://"):
        await stop_memory_broker(url.partition("://")[2])


@pytest.fixture
def topic() -> str:
    """A fresh topic name per test, so scenarios share one broker without interfering."""
    return f"conf.{secrets.token_hex(5)}"
