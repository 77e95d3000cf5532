"""``tidings demo --url`` on the distributed engines (real servers): the same story, the same
proof. RabbitMQ keeps no topic, only each group's queue, so the demo's progress counts what
the topic took itself; the saga participants fall back to plain shared groups where the
engine has no ``key_ordered``."""

from __future__ import annotations

import pytest
from tests.helpers.rabbitmq_server import rabbitmq_server  # noqa: F401 - fixture
from tests.helpers.redis_server import redis_server  # noqa: F401 - fixture

from .conftest import run_process
from .test_commands import assert_demo_reconciled

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("engine", ["redis", "amqp"])
def test_demo_reconciles_on(engine: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue("redis_server" if engine == "redis" else "rabbitmq_server")
    r = run_process("demo", "--orders", "2000", "--json", "--url", server.url, timeout=280)
    assert_demo_reconciled(r, broker_wide_dedup=engine != "amqp")
