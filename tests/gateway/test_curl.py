"""The gateway driven by the real ``curl`` binary, as a shell user or a partner's script would:
a real broker, real service processes and a gateway process that takes bearer JWTs signed
with public keys (a JWKS file with an RS256 and an ES256 key). Request/reply, a 202 command
whose Location curl polls, an Idempotency-Key retry (one effect, the stored answer), bad input
(422, 400, 415, 401 with the reason) and the verified principal reaching the service.

curl is a dependency of the suite (``scripts/test`` installs Debian's package when missing):
no skip when it is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest

from tidings.gateway.tokens import sign

from .conftest import GatewayProc, service, wait_routes
from .jwks import ISSUER, Issuer

CURL = shutil.which("curl") or "curl"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def gateway(broker, procs, issuer, tmp_path_factory):
    db = tmp_path_factory.mktemp("orders") / "processed.sqlite3"
    procs.append(service("pricing", broker.url))
    procs.append(service("orders", broker.url, {"APP_DB": f"sqlite:///{db}"}))
    procs.append(service("stock", broker.url))
    jwks = tmp_path_factory.mktemp("keys") / "jwks.json"
    jwks.write_text(issuer.jwks())
    proc = GatewayProc(broker.url, "--jwt-public-keys", str(jwks), "--jwt-issuer", ISSUER)
    procs.append(proc)
    wait_routes(
        proc.url, "POST /v1/quotes", "POST /v1/refunds", "GET /v1/refunds/{id}", "GET /v1/whoami"
    )
    return proc


def curl(*args: str, token: str | None = None) -> tuple[int, dict[str, str], str]:
    """Run curl; its status code, response headers (lower-case names) and body."""
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    out = subprocess.run(
        [CURL, "-sS", "-i", "--max-time", "20", *auth, *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def post_json(url: str, body: str, *extra: str, token: str | None = None):
    return curl("-X", "POST", "-H", "Content-Type: application/json", "--data-raw", body,
                *extra, url, token=token)  # fmt: skip


def test_request_reply_and_the_principal_with_rs256_and_es256(gateway, issuer):
    status, headers, body = post_json(
        f"{gateway.url}/v1/quotes", '{"sku": "kiwi", "qty": 3}', token=issuer.token("rsa-1")
    )
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"sku": "kiwi", "cents": 750, "version": "1.0.0"}
    token = issuer.token("ec-1", sub="partner-42")
    status, _, body = curl(f"{gateway.url}/v1/whoami", token=token)
    assert status == 200, body
    assert json.loads(body)["principal"] == "partner-42"


def test_credentials_are_required_and_refusals_say_why(gateway, issuer):
    url = f"{gateway.url}/v1/quotes"
    status, headers, body = post_json(url, '{"sku": "kiwi", "qty": 1}')
    assert status == 401 and headers["www-authenticate"] == "Bearer", body
    assert "bearer JWT" in json.loads(body)["error"]
    expired = issuer.token("rsa-1", exp=time.time() - 3600)
    status, _, body = post_json(url, '{"sku": "kiwi", "qty": 1}', token=expired)
    assert status == 401 and "expired" in json.loads(body)["error"]
    foreign = Issuer().token("rsa-1")  # the right kid, another provider's key
    status, _, body = post_json(url, '{"sku": "kiwi", "qty": 1}', token=foreign)
    assert status == 401 and "signature" in json.loads(body)["error"]
    forged = sign({"sub": "mallory", "iss": ISSUER}, issuer.pem("rsa-1"))  # HS256, PEM secret
    status, _, body = post_json(url, '{"sku": "kiwi", "qty": 1}', token=forged)
    assert status == 401 and "HS256 tokens are not accepted" in json.loads(body)["error"]


def test_bad_input_is_a_clean_4xx(gateway, issuer):
    url, token = f"{gateway.url}/v1/quotes", issuer.token("rsa-1")
    status, _, body = post_json(url, '{"sku": "kiwi", "qty": 0}', token=token)
    assert status == 422 and json.loads(body)["detail"][0]["loc"] == ["body", "qty"]
    status, _, body = post_json(url, '{"sku": "kiwi", ', token=token)
    assert status == 400, body
    status, _, body = curl("-X", "POST", "-H", "Content-Type: text/plain", "--data-raw", "hi",
                           url, token=token)  # fmt: skip
    assert status == 415, body
    status, _, body = curl(f"{gateway.url}/v1/nowhere", token=token)
    assert status == 404, body


def test_a_command_is_202_curl_polls_its_location_and_a_retry_has_one_effect(gateway, issuer):
    token = issuer.token("rsa-1")
    key = f"refund-{uuid.uuid4()}"
    body = '{"order_id": "o-9", "cents": 450}'
    url = f"{gateway.url}/v1/refunds"
    status, headers, answer = post_json(url, body, "-H", f"Idempotency-Key: {key}", token=token)
    assert status == 202, answer
    assert json.loads(answer) == {"id": key, "status": "accepted", "location": f"/v1/refunds/{key}"}
    location = headers["location"]
    deadline = time.monotonic() + 45
    while True:
        status, _, state = curl(f"{gateway.url}{location}", token=token)
        assert status == 200, state
        if json.loads(state)["state"] == "done" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert json.loads(state) == {"id": key, "state": "done", "effects": 1, "cents": 450}
    status, headers, again = post_json(url, body, "-H", f"Idempotency-Key: {key}", token=token)
    assert status == 202 and headers["idempotent-replayed"] == "true"
    assert json.loads(again) == json.loads(answer)
    time.sleep(0.5)
    _, _, state = curl(f"{gateway.url}{location}", token=token)
    assert json.loads(state)["effects"] == 1
