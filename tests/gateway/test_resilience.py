"""The gateway under upstream failure and abuse: a killed service (the breaker opens, 503
with Retry-After, then recovery), per-client rate limits, API keys passed on as a verified
principal, traceparent continuation and static routes from TOML."""

from __future__ import annotations

import time

import httpx
import pytest

from .conftest import GatewayProc, service, wait_for, wait_routes


def ok(url: str, **kw) -> httpx.Response | None:
    r = httpx.get(url, timeout=10, **kw)
    return r if r.status_code == 200 else None


ROUTES = """
[[route]]
http = "GET /v1/legacy/{sku}"
service = "stock"
topic = "stock.legacy"
timeout = 3.0
"""


@pytest.fixture(scope="module")
def stock(broker, procs):
    # heartbeat 10 s: a killed instance stays in the registry for 30 s, so what the test sees
    # is the breaker's doing, not the registry forgetting the instance
    proc = service("stock", broker.url, {"APP_HEARTBEAT": "10"})
    procs.append(proc)
    return proc


@pytest.fixture(scope="module")
def gateway(broker, procs, stock, tmp_path_factory):
    routes = tmp_path_factory.mktemp("routes") / "routes.toml"
    routes.write_text(ROUTES)
    proc = GatewayProc(
        broker.url, "--timeout", "1", "--breaker-min-calls", "3", "--breaker-open-for", "2",
        "--routes", str(routes),
    )  # fmt: skip
    procs.append(proc)
    wait_routes(proc.url, "GET /v1/stock/{sku}", "GET /v1/whoami", "GET /v1/legacy/{sku}")
    return proc


def test_path_and_query_parameters_reach_the_handler_typed(gateway):
    r = httpx.get(f"{gateway.url}/v1/stock/nut", params={"warehouse": "2"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"sku": "nut", "count": 14}
    bad = httpx.get(f"{gateway.url}/v1/stock/nut", params={"warehouse": "two"}, timeout=10)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "warehouse"]


def test_static_routes_from_toml(gateway):
    r = httpx.get(f"{gateway.url}/v1/legacy/bolt", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"legacy": "bolt"}


def test_traceparent_continues_through_the_bus(gateway):
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = httpx.get(f"{gateway.url}/v1/whoami", headers={"traceparent": trace}, timeout=10)
    assert r.status_code == 200
    seen = r.json()["traceparent"]
    assert seen.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"  # the same trace
    assert r.json()["principal"] is None  # no API keys configured: no principal


def test_a_killed_service_opens_the_breaker_then_recovers(gateway, broker, procs, stock):
    url = f"{gateway.url}/v1/stock/nut"
    assert httpx.get(url, timeout=10).status_code == 200
    stock.kill()
    statuses = []
    with httpx.Client(timeout=10) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = http.get(url)
            statuses.append(r.status_code)
            if r.status_code == 503:
                break
        assert r.status_code == 503, statuses
        assert "circuit is open" in r.json()["error"]
        assert int(r.headers["retry-after"]) >= 1
        assert set(statuses[:-1]) == {504}  # timeouts first, then fail fast
        started = time.monotonic()
        assert http.get(url).status_code == 503
        assert time.monotonic() - started < 0.5  # failing fast, not waiting for a timeout
        # the breaker is per upstream service: the static route to stock fails fast too
        assert http.get(f"{gateway.url}/v1/legacy/x").status_code == 503
    revived = service("stock", broker.url, {"APP_HEARTBEAT": "10"})
    procs.append(revived)
    r = wait_for(lambda: ok(url), "the route to recover", timeout=60)
    assert r.json() == {"sku": "nut", "count": 7}


@pytest.fixture(scope="module")
def limited(broker, procs):
    proc = GatewayProc(
        broker.url, "--rate", "0.5", "--burst", "3", "--api-key", "ka=alice",
        "--api-key", "kb=bob",
    )  # fmt: skip
    procs.append(proc)
    wait_routes(proc.url, "GET /v1/whoami")
    return proc


def test_rate_limits_per_client_with_ratelimit_headers(limited, stock):
    url = f"{limited.url}/v1/whoami"
    alice = {"X-API-Key": "ka"}
    wait_for(lambda: httpx.get(url, headers={"X-API-Key": "kb"}, timeout=10).status_code == 200,
             "a live stock instance")  # fmt: skip
    seen = []
    for _ in range(3):
        r = httpx.get(url, headers=alice, timeout=10)
        seen.append((r.status_code, r.headers["ratelimit-remaining"]))
    assert seen == [(200, "2"), (200, "1"), (200, "0")]
    assert r.headers["ratelimit-limit"] == "3"
    over = httpx.get(url, headers=alice, timeout=10)
    assert over.status_code == 429
    assert int(over.headers["retry-after"]) >= 1 and over.headers["ratelimit-remaining"] == "0"
    bob = httpx.get(url, headers={"Authorization": "Bearer kb"}, timeout=10)
    assert bob.status_code == 200  # another client, another bucket


def test_api_keys_are_required_and_passed_on_as_the_principal(limited, stock):
    url = f"{limited.url}/v1/whoami"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers={"X-API-Key": "nope"}, timeout=10).status_code == 401
    r = wait_for(lambda: ok(url, headers={"X-API-Key": "kb"}), "bob's bucket")
    assert r.json()["principal"] == "bob"
