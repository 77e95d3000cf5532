"""ServiceKit(url=...) runs the same service test on a real engine (a broker process, NATS
JetStream, Redis, RabbitMQ) instead of its private memory:// broker: handlings are recorded,
retries end in a dead letter the kit finds, requests are answered, and what only the fake
clock can do is refused with a clear message."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from pydantic import BaseModel
from tests.helpers.engines import ENGINES, running_engine
from tests.helpers.nats_server import nats_server  # noqa: F401 - fixture
from tests.helpers.rabbitmq_server import rabbitmq_server  # noqa: F401 - fixture
from tests.helpers.redis_server import redis_server  # noqa: F401 - fixture

import tidings
from tidings.errors import BadRequest
from tidings.testing import ServiceKit, payloads

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=ENGINES)
def engine_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with running_engine(request, request.param, tmp_path_factory) as engine:
        yield engine.url


class Refund(BaseModel):
    order_id: str


async def test_handlings_dead_letters_and_replies_on_a_real_engine(engine_url: str):
    topic = f"kit.{secrets.token_hex(4)}"  # the engine's topics are shared: a name of our own
    svc = tidings.Service("payment")
    tries: list[str] = []

    @svc.on(topic, max_deliveries=2, backoff=tidings.Backoff(initial=0.05, max_delay=0.05))
    async def refund(event: Refund) -> None:
        tries.append(event.order_id)
        if event.order_id == "o-bad":
            raise ConnectionError("the payment provider is down")

    @svc.reply(f"{topic}.status")
    async def status(event: Refund) -> dict:
        return {"order_id": event.order_id, "state": "refunded"}

    async with ServiceKit(svc, url=engine_url) as kit:
        assert svc.url == engine_url
        await kit.publish(topic, Refund(order_id="o-1"))
        [ok] = await kit.handled(topic, outcome="ok", timeout=30)
        assert payloads([ok]) == [Refund(order_id="o-1")]
        await kit.publish(topic, Refund(order_id="o-bad"))
        await kit.handled(topic, outcome="error", count=2, timeout=30)
        [dead] = await kit.dead_letters(topic, "payment", timeout=30)
        assert "ConnectionError" in dead.headers["tidings-dlq-error"]
        assert await kit.request(f"{topic}.status", Refund(order_id="o-1"), timeout=15) == {
            "order_id": "o-1",
            "state": "refunded",
        }
        with pytest.raises(RuntimeError, match="time is real"):
            await kit.advance(1)
    assert tries == ["o-1", "o-bad", "o-bad"]
    assert svc.url != engine_url  # the service's own settings are given back


def test_a_fake_clock_is_refused_on_a_real_engine():
    with pytest.raises(BadRequest, match="real engine"):
        ServiceKit(url="nats://127.0.0.1:4222", clock=True)
