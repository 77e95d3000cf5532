"""The gateway on a real RabbitMQ (``amqp://``): services started before the gateway are
found by asking them (RabbitMQ keeps no heartbeat history to read), and a request is routed
to one of them and answered."""

from __future__ import annotations

import httpx
import pytest

from .conftest import GatewayProc, service, wait_routes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def amqp_stack(rabbitmq_server, procs):
    procs.append(service("pricing", rabbitmq_server.url))
    gateway = GatewayProc(rabbitmq_server.url, "--timeout", "10")
    procs.append(gateway)
    wait_routes(gateway.url, "POST /v1/quotes", timeout=60)
    return gateway


def test_the_gateway_routes_a_request_to_a_service_on_amqp(amqp_stack):
    r = httpx.post(f"{amqp_stack.url}/v1/quotes", json={"sku": "apple", "qty": 2}, timeout=20)
    assert r.status_code == 200, r.text
    assert r.json()["sku"] == "apple" and r.json()["version"] == "1.0.0"


def test_an_idempotency_key_is_stored_and_replayed_on_amqp(amqp_stack):
    key = {"Idempotency-Key": "quote-amqp-1"}
    body = {"sku": "pear", "qty": 1}
    first = httpx.post(f"{amqp_stack.url}/v1/quotes", json=body, headers=key, timeout=20)
    again = httpx.post(f"{amqp_stack.url}/v1/quotes", json=body, headers=key, timeout=20)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
