"""A fuzz of the management API driven by its own OpenAPI document (hypothesis): every
operation with random path segments, query values and JSON bodies, some of them shaped like
the schema with wrong values. Nothing may answer 500, and every error is the catalogue's."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tidings

SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SEGMENT = st.sampled_from(["fuzz.topic", "fuzz.topic.g.dlq", "g", "_reply.x", "..", "%00"]) | (
    st.text(min_size=1, max_size=30)
)


@pytest.fixture(scope="module")
def operations(open_broker):
    with httpx.Client(base_url=open_broker.base, timeout=30) as http:
        doc = http.get("/api/v1/openapi.json").json()
        http.post("/api/v1/topics", json={"name": "fuzz.topic", "partitions": 2})
        http.post("/api/v1/topics/fuzz.topic/messages", json={"body": "seed"})
    with tidings.connect_sync(open_broker.url) as client:  # group "g" has a dead letter
        sub = client.subscribe("fuzz.topic", "g", max_deliveries=1)
        sub.next(timeout=10).reject("fuzz seed")
        sub.close()
    schemas = doc["components"]["schemas"]
    ops = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ref = body.get("schema", {}).get("$ref", "")
            fields = list(schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
            queries = [p["name"] for p in op["parameters"] if p["in"] == "query"]
            ops.append((method.upper(), path, fields, queries, bool(body)))
    return ops


@st.composite
def requests(draw, ops):
    method, path, fields, queries, has_body = draw(st.sampled_from(ops))
    while "{" in path:
        head, _, rest = path.partition("{")
        _, _, tail = rest.partition("}")
        path = head + quote(draw(SEGMENT), safe="") + tail
    params = {q: draw(st.text(max_size=12) | st.integers(-5, 10**20).map(str))
              for q in queries if draw(st.booleans())}  # fmt: skip
    if has_body and fields and draw(st.booleans()):
        body = draw(st.fixed_dictionaries({}, optional={f: JSON for f in fields}))
        content = httpx.Request("POST", "/", json=body).content
    elif draw(st.booleans()):
        content = httpx.Request("POST", "/", json=draw(JSON)).content
    else:
        content = draw(st.binary(max_size=64))
    method = draw(st.sampled_from([method, method, method, "PUT", "PATCH"]))
    return method, path, params, content


def test_no_request_gets_a_500(open_broker, operations):
    with httpx.Client(base_url=open_broker.base, timeout=30) as http:

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(requests(operations))
        def check(request):
            method, path, params, content = request
            # streamed: an event stream (/api/v1/events) answers 200 and never ends
            with http.stream(method, path, params=params, content=content) as r:
                if r.headers.get("content-type", "").startswith("text/event-stream"):
                    assert r.status_code == 200
                    return
                r.read()
            assert r.status_code < 500, (method, path, params, content, r.text)
            if r.status_code >= 400:
                body = r.json()
                assert isinstance(body["code"], int) and body["message"], r.text

        check()
    with httpx.Client(base_url=open_broker.base, timeout=30) as http:
        assert http.get("/livez").status_code == 200  # and the broker is still there
