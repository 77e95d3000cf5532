"""The route table, the per-client buckets and the OpenAPI export, without processes."""

from __future__ import annotations

import pytest

from tidings.client.registry import Endpoint, Instance
from tidings.errors import BadRequest
from tidings.gateway import RouteTable
from tidings.gateway.limits import ClientLimits
from tidings.gateway.openapi import openapi
from tidings.gateway.routes import match_path
from tidings.service.handlers import http_route


def _instance(iid: str, version: str, http: str, ready: bool | None = True) -> Instance:
    meta = {
        "tidings.topic": "pricing.quote",
        "tidings.kind": "request",
        "tidings.version": version,
        "tidings.http": http,
        "tidings.schema": '{"$defs":{"Sku":{"type":"string"}},"type":"object",'
        '"properties":{"sku":{"$ref":"#/$defs/Sku"}}}',
    }
    ep = Endpoint(name="quote", subject="pricing.quote", metadata=meta)
    return Instance(name="pricing", id=iid, version=version, endpoints=[ep], ready=ready)


def test_paths_match_with_parameters():
    assert match_path("/v1/refunds/{id}", "/v1/refunds/abc") == {"id": "abc"}
    assert match_path("/v1/refunds/{id}", "/v1/refunds") is None
    assert match_path("/v1/quotes", "/v1/quotes/") == {}
    assert match_path("/v1/quotes", "/v2/quotes") is None


def test_route_specs_are_checked():
    assert http_route("post /v1/quotes") == "POST /v1/quotes"
    for bad in ("POST", "FETCH /x", "POST v1/quotes", "GET /a/{1x}"):
        with pytest.raises(BadRequest, match="invalid http route"):
            http_route(bad)


def test_the_table_follows_instances_and_keeps_routes_whose_service_is_away():
    table = RouteTable()
    table.update(
        [_instance("a", "1.0.0", "POST /v1/quotes"), _instance("b", "2.1.0", "POST /v2/quotes")]
    )
    route, _ = table.find("POST", "/v2/quotes")
    assert route.bus_topic == "pricing.quote.v2" and route.instances == {"b"}
    assert table.versions_for("/v3/quotes") == ["1", "2"]
    table.update(
        [
            _instance("a", "1.0.0", "POST /v1/quotes"),
            _instance("b", "2.1.0", "POST /v2/quotes", ready=False),
        ]
    )
    route, _ = table.find("POST", "/v2/quotes")
    assert route.instances == set()  # known, unserved: a 503, not a 404


def test_client_buckets_are_separate_and_report_what_is_left():
    limits = ClientLimits(rate=1.0, burst=2)
    assert [limits.check("a", now=0.0).allowed for _ in range(3)] == [True, True, False]
    refused = limits.check("a", now=0.0)
    assert refused.headers["Retry-After"] == "1" and refused.headers["RateLimit-Remaining"] == "0"
    assert limits.check("b", now=0.0).headers["RateLimit-Remaining"] == "1"
    assert limits.check("a", now=1.0).allowed  # refilled


def test_openapi_lifts_schema_defs_into_components():
    table = RouteTable()
    table.update([_instance("a", "1.0.0", "POST /v1/quotes")])
    doc = openapi(table)
    body = doc["paths"]["/v1/quotes"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["sku"] == {"$ref": "#/components/schemas/Sku"}
    assert doc["components"]["schemas"]["Sku"] == {"type": "string"}


def test_accepted_connections_have_tcp_nodelay():
    """Without TCP_NODELAY each response waited ~40 ms for the client's delayed ACK (p50 48 ms
    against 4 ms in tidings bench gateway). Linux hands the listener's option to every
    accepted connection."""
    import socket

    from tidings.gateway.serve import listening_socket

    server = listening_socket("127.0.0.1", 0)
    try:
        server.setblocking(True)
        client = socket.create_connection(server.getsockname()[:2], timeout=5)
        conn, _ = server.accept()
        with client, conn:
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.close()


def test_splits_name_versions_or_instance_groups_never_both():
    from tidings.gateway.config import parse_split

    assert parse_split("/quotes=v1:90,v2:10") == ("/quotes", {"1": 90.0, "2": 10.0}, "version")
    assert parse_split("/v1/quotes=stable:95,vip:5") == (
        "/v1/quotes",
        {"stable": 95.0, "vip": 5.0},
        "group",
    )
    with pytest.raises(BadRequest, match="instance groups"):
        parse_split("/quotes=v1:90,canary:10")


def test_the_table_knows_the_instance_groups_serving_a_route():
    a = _instance("a", "1.0.0", "POST /v1/quotes")
    b = _instance("b", "1.0.0", "POST /v1/quotes")
    c = _instance("c", "1.0.0", "POST /v1/quotes")
    a.metadata["tidings.instance_group"] = "canary"
    b.metadata["tidings.instance_group"] = "stable"
    table = RouteTable()
    table.update([a, b, c])
    route = table.routes["POST /v1/quotes"]
    assert route.instances == {"a", "b", "c"}
    assert route.groups == {"canary": {"a"}, "stable": {"b"}}
    table.update([b])
    assert table.routes["POST /v1/quotes"].groups == {"stable": {"b"}}
    table.update([])
    assert table.routes["POST /v1/quotes"].groups == {}
