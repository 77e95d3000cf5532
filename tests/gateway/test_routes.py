"""The gateway end to end: a real broker, real service processes, a real gateway process,
real HTTP over loopback (httpx, and curl once)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import tidings

from .conftest import GatewayProc, service, wait_for, wait_routes


@pytest.fixture(scope="module")
def stack(broker, procs, tmp_path_factory):
    db = tmp_path_factory.mktemp("orders") / "processed.sqlite3"
    procs.append(service("pricing", broker.url))
    procs.append(service("pricing", broker.url, {"APP_VERSION": "2.0.0"}))
    procs.append(service("orders", broker.url, {"APP_DB": f"sqlite:///{db}"}))
    procs.append(service("reports", broker.url, {"APP_SLOW": "30"}))
    gateway = GatewayProc(broker.url, "--timeout", "2")
    procs.append(gateway)
    wait_routes(
        gateway.url,
        "POST /v1/quotes",
        "POST /v2/quotes",
        "POST /v1/refunds",
        "GET /v1/refunds/{id}",
        "POST /v1/reports",
    )
    return gateway


def test_request_reply_route_answers_with_the_reply(stack):
    r = httpx.post(f"{stack.url}/v1/quotes", json={"sku": "apple", "qty": 2}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"sku": "apple", "cents": 500, "version": "1.0.0"}


def test_versions_map_to_handler_majors_and_an_unserved_version_is_a_clear_404(stack):
    r2 = httpx.post(f"{stack.url}/v2/quotes", json={"sku": "apple", "qty": 2}, timeout=10)
    assert r2.status_code == 200, r2.text
    assert r2.json()["version"] == "2.0.0" and r2.json()["cents"] == 1000
    r3 = httpx.post(f"{stack.url}/v3/quotes", json={"sku": "apple", "qty": 2}, timeout=10)
    assert r3.status_code == 404
    assert r3.json()["versions"] == ["v1", "v2"]
    assert "v1, v2" in r3.json()["error"]


def test_validation_errors_are_422_and_nothing_is_published(stack, broker):
    before = _topic_end(broker.url, "pricing.quote.v1")
    r = httpx.post(f"{stack.url}/v1/quotes", json={"sku": "apple", "qty": 0}, timeout=10)
    assert r.status_code == 422
    [problem] = r.json()["detail"]
    assert problem["loc"] == ["body", "qty"]
    r = httpx.post(f"{stack.url}/v1/quotes", json={"qty": 1}, timeout=10)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "sku"]
    assert _topic_end(broker.url, "pricing.quote.v1") == before


def _topic_end(url: str, topic: str) -> int:
    with tidings.Client(url) as client:
        return client.topic_info(topic).messages


def test_bad_input_is_a_clean_4xx(stack):
    base = stack.url
    bad_json = httpx.post(
        f"{base}/v1/quotes", content=b'{"sku": ', headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]
    wrong_type = httpx.post(
        f"{base}/v1/quotes", content=b"sku=a", headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    huge = httpx.post(f"{base}/v1/quotes", json={"sku": "x" * (2 << 20), "qty": 1})
    assert huge.status_code == 413
    assert httpx.get(f"{base}/v1/nothing").status_code == 404
    wrong_method = httpx.get(f"{base}/v1/quotes")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


def test_a_slow_client_gets_408_and_nothing_half_read_is_published(stack, broker):
    host, port = stack.url.removeprefix("http://").split(":")
    before = _topic_end(broker.url, "pricing.quote.v1")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/quotes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"sku": "a"'
        )
        sock.settimeout(30)
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert _topic_end(broker.url, "pricing.quote.v1") == before


def test_command_route_answers_202_and_the_status_route_reports_completion(stack):
    r = httpx.post(f"{stack.url}/v1/refunds", json={"order_id": "o-1", "cents": 300}, timeout=10)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "accepted"
    location = r.headers["location"]
    assert location == f"/v1/refunds/{body['id']}" == body["location"]

    def done():
        status = httpx.get(f"{stack.url}{location}", timeout=10).json()
        return status if status["state"] == "done" else None

    status = wait_for(done, "the refund to complete")
    assert status == {"id": body["id"], "state": "done", "effects": 1, "cents": 300}


def test_an_idempotency_key_retry_has_one_effect_and_returns_the_stored_response(stack):
    key = f"refund-{uuid.uuid4()}"
    payload = {"order_id": "o-2", "cents": 120}
    first = httpx.post(
        f"{stack.url}/v1/refunds", json=payload, headers={"Idempotency-Key": key}, timeout=10
    )
    again = httpx.post(
        f"{stack.url}/v1/refunds", json=payload, headers={"Idempotency-Key": key}, timeout=10
    )
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and first.json()["id"] == key
    assert again.headers["idempotent-replayed"] == "true"
    other = httpx.post(
        f"{stack.url}/v1/refunds",
        json={**payload, "cents": 999},
        headers={"Idempotency-Key": key},
        timeout=10,
    )
    assert other.status_code == 422  # one key, one request

    def done():
        status = httpx.get(f"{stack.url}/v1/refunds/{key}", timeout=10).json()
        return status if status["state"] == "done" else None

    assert wait_for(done, "the refund")["effects"] == 1
    time.sleep(1.0)
    assert httpx.get(f"{stack.url}/v1/refunds/{key}", timeout=10).json()["effects"] == 1


@pytest.fixture(scope="module")
def second(stack, broker, procs):
    """Another gateway process on the same broker, as behind a load balancer."""
    gateway = GatewayProc(broker.url, "--timeout", "2")
    procs.append(gateway)
    wait_routes(gateway.url, "POST /v1/refunds", "GET /v1/refunds/{id}", "POST /v1/reports")
    return gateway


def test_a_key_completed_on_one_gateway_is_replayed_by_another(stack, second, broker):
    key = f"refund-{uuid.uuid4()}"
    payload = {"order_id": "o-3", "cents": 130}
    first = httpx.post(
        f"{stack.url}/v1/refunds", json=payload, headers={"Idempotency-Key": key}, timeout=10
    )
    assert first.status_code == 202, first.text
    published = _published(broker.url, "order.refund")
    again = httpx.post(
        f"{second.url}/v1/refunds", json=payload, headers={"Idempotency-Key": key}, timeout=10
    )
    assert again.status_code == 202, again.text
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert _published(broker.url, "order.refund") == published  # B published nothing
    other = httpx.post(
        f"{second.url}/v1/refunds",
        json={**payload, "cents": 1},
        headers={"Idempotency-Key": key},
        timeout=10,
    )
    assert other.status_code == 422 and "another request" in other.json()["error"]

    def done():
        status = httpx.get(f"{second.url}/v1/refunds/{key}", timeout=10).json()
        return status if status["state"] == "done" else None

    assert wait_for(done, "the refund")["effects"] == 1


def test_a_key_in_flight_on_one_gateway_is_409_on_another(stack, second, broker):
    """A 504 is not stored: once the first try is over, the key may be tried again."""
    key = f"report-{uuid.uuid4()}"
    stored = _topic_end(broker.url, "_gateway.responses")
    topic = next(t for t in _topics(broker.url) if t.startswith("reports.build.v"))
    sent = _published(broker.url, topic)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            httpx.post, f"{stack.url}/v1/reports", json={}, headers={"Idempotency-Key": key},
            timeout=30,
        )  # fmt: skip
        wait_for(lambda: _topic_end(broker.url, "_gateway.responses") > stored, "the claim")
        busy = httpx.post(
            f"{second.url}/v1/reports", json={}, headers={"Idempotency-Key": key}, timeout=30
        )
        assert busy.status_code == 409, busy.text
        assert "still in progress" in busy.json()["error"]
        assert first.result().status_code == 504
    assert _published(broker.url, topic) == sent + 1  # the 409 sent nothing
    retry = httpx.post(
        f"{second.url}/v1/reports", json={}, headers={"Idempotency-Key": key}, timeout=30
    )
    assert retry.status_code == 504  # tried again (nothing was stored), not 409
    assert _published(broker.url, topic) == sent + 2


def _published(url: str, topic: str) -> int:
    """Messages ever published to ``topic`` (its end offsets: acks do not lower them)."""
    with tidings.Client(url) as client:
        return sum(p.next_offset for p in client.topic_info(topic).partitions)


def _topics(url: str) -> list[str]:
    with tidings.Client(url) as client:
        return [t.name for t in client.list_topics()]


def test_a_slow_service_is_504_at_the_route_timeout_and_other_routes_are_unaffected(stack):
    with httpx.Client(timeout=30) as http:
        started = time.monotonic()
        slow = http.post(f"{stack.url}/v1/reports", json={})
        took = time.monotonic() - started
        assert slow.status_code == 504, slow.text
        assert "within 2s" in slow.json()["error"]
        assert took >= 1.9
        fast = http.post(f"{stack.url}/v1/quotes", json={"sku": "pear", "qty": 1})
        assert fast.status_code == 200


def test_openapi_and_docs_come_from_the_handlers_types(stack):
    doc = httpx.get(f"{stack.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    op = doc["paths"]["/v1/quotes"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["qty"]["minimum"] == 1 and schema["required"] == ["sku", "qty"]
    reply = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(reply["properties"]) == {"sku", "cents", "version"}
    assert "202" in doc["paths"]["/v1/refunds"]["post"]["responses"]
    page = httpx.get(f"{stack.url}/docs")
    assert page.status_code == 200 and "POST /v1/quotes" in page.text


def test_probes_and_metrics(stack):
    assert httpx.get(f"{stack.url}/livez").status_code == 200
    ready = httpx.get(f"{stack.url}/readyz")
    assert ready.status_code == 200 and ready.json()["routes"] >= 5
    httpx.post(f"{stack.url}/v1/quotes", json={"sku": "fig", "qty": 1})
    text = httpx.get(f"{stack.url}/metrics").text
    assert (
        'tidings_gateway_requests_total{method="POST",route="POST /v1/quotes",status="200"}' in text
    )
    assert "tidings_gateway_request_seconds_bucket" in text
    assert '"POST /v1/quotes" 200' in stack.output()  # the access log


def test_curl_end_to_end(stack):  # more of it, with public-key JWTs, in test_curl.py
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json",
         "-d", '{"sku": "kiwi", "qty": 3}', f"{stack.url}/v1/quotes"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout) == {"sku": "kiwi", "cents": 750, "version": "1.0.0"}


JWT_KEY = "test-shared-key"


@pytest.fixture(scope="module")
def split_gateway(stack, broker, procs):
    proc = GatewayProc(
        broker.url, "--split", "/quotes=v1:1,v2:1", "--jwt-key", JWT_KEY,
        "--jwt-issuer", "tidings-tests",
    )  # fmt: skip
    procs.append(proc)
    wait_routes(proc.url, "POST /v1/quotes", "POST /v2/quotes")
    return proc


def _token(**claims) -> str:
    from tidings.gateway.tokens import sign

    base = {"sub": "alice", "iss": "tidings-tests", "exp": time.time() + 600}
    return sign({**base, **claims}, JWT_KEY.encode())


def test_traffic_splits_by_weight_between_versions(split_gateway):
    auth = {"Authorization": f"Bearer {_token()}"}
    seen = {}
    with httpx.Client(timeout=10, headers=auth) as http:
        for _ in range(40):
            r = http.post(f"{split_gateway.url}/quotes", json={"sku": "plum", "qty": 1})
            assert r.status_code == 200, r.text
            assert r.headers["tidings-version"] == "v" + r.json()["version"][0]
            seen[r.json()["version"]] = seen.get(r.json()["version"], 0) + 1
    assert set(seen) == {"1.0.0", "2.0.0"}, seen  # 1:1 weights: both, 2^-39 odds otherwise


@pytest.fixture(scope="module")
def groups_gateway(stack, broker, procs):
    for group in ("stable", "canary"):
        procs.append(service("catalog", broker.url, {"TIDINGS_INSTANCE_GROUP": group}))
    procs.append(service("catalog", broker.url))  # in no group: serves the plain topic only
    proc = GatewayProc(
        broker.url, "--split", "/v1/items/{sku}=stable:1,canary:1", "--split",
        "/v2/quotes=blue:1",
    )  # fmt: skip
    procs.append(proc)
    wait_routes(proc.url, "GET /v1/items/{sku}")

    def both_groups():
        doc = httpx.get(f"{proc.url}/v1/items/probe", timeout=10)
        return doc.status_code == 200

    wait_for(both_groups, "a group instance")
    return proc


def test_traffic_splits_by_weight_between_instance_groups(groups_gateway):
    seen: dict[str, int] = {}
    with httpx.Client(timeout=10) as http:
        for n in range(40):
            r = http.get(f"{groups_gateway.url}/v1/items/sku-{n}")
            if r.status_code == 503:  # the other group's instance is not in the table yet
                time.sleep(0.5)
                continue
            assert r.status_code == 200, r.text
            group = r.json()["group"]
            assert group in ("stable", "canary") and r.headers["tidings-instance-group"] == group
            seen[group] = seen.get(group, 0) + 1
    assert set(seen) == {"stable", "canary"}, seen  # the ungrouped instance got none
    nobody = httpx.post(f"{groups_gateway.url}/v2/quotes", json={"sku": "a", "qty": 1})
    assert nobody.status_code == 503 and "'blue'" in nobody.json()["error"]


def test_bearer_jwts_are_verified(split_gateway):
    url = f"{split_gateway.url}/v1/quotes"
    body = {"sku": "plum", "qty": 1}

    def post(token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(url, json=body, headers=headers, timeout=10)

    assert post(_token()).status_code == 200
    assert post(None).status_code == 401
    expired = post(_token(exp=time.time() - 3600))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]
    assert "issuer" in post(_token(iss="someone-else")).json()["error"]
    forged = _token()[:-4] + "AAAA"
    assert "signature" in post(forged).json()["error"]


def test_cors_preflights_are_answered_for_the_configured_origins_only(broker, procs):
    gateway = GatewayProc(broker.url, "--cors-origin", "https://app.example")
    procs.append(gateway)
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = httpx.options(
        f"{gateway.url}/v1/quotes", headers={"Origin": "https://app.example", **ask}, timeout=10
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in ok.headers["access-control-allow-methods"]
    other = httpx.options(
        f"{gateway.url}/v1/quotes", headers={"Origin": "https://evil.example", **ask}, timeout=10
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.get(
        f"{gateway.url}/livez", headers={"Origin": "https://app.example"}, timeout=10
    )
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
