"""/api/v1 over real HTTP against a real broker process: topics, groups, messages and
connections, and bad input answered 4xx with the error catalogue's code and a message."""

from __future__ import annotations

import asyncio
import base64

import tidings


def test_topic_lifecycle_browse_and_publish(open_broker):
    with open_broker.client() as http:
        r = http.post("/api/v1/topics", json={"name": "orders.api", "partitions": 1})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "orders.api"
        assert http.post("/api/v1/topics", json={"name": "orders.api"}).json()["code"] == 421
        for i in range(3):
            r = http.post(
                "/api/v1/topics/orders.api/messages",
                json={"body": f"hello {i}", "key": "k", "headers": {"h": str(i)}},
            )
            assert r.status_code == 201, r.text
            assert r.json()["offset"] == i
        binary = base64.b64encode(b"\xff\x00").decode()
        r = http.post("/api/v1/topics/orders.api/messages", json={"body_base64": binary})
        assert r.status_code == 201, r.text

        page = http.get("/api/v1/topics/orders.api/messages", params={"limit": 2}).json()
        assert [m["body"] for m in page["messages"]] == ["hello 0", "hello 1"]
        assert page["messages"][1]["headers"] == {"h": "1"}
        assert page["next_offset"] == 2 and page["end_offset"] == 4
        rest = http.get(
            "/api/v1/topics/orders.api/messages", params={"offset": page["next_offset"]}
        ).json()["messages"]
        assert [m["offset"] for m in rest] == [2, 3]
        assert rest[1]["body"] is None and rest[1]["body_base64"] == binary

        info = http.get("/api/v1/topics/orders.api").json()
        assert info["messages"] == 4 and info["spec"]["partitions"] == 1
        names = [t["name"] for t in http.get("/api/v1/topics").json()]
        assert "orders.api" in names

        overview = http.get("/api/v1/overview").json()
        assert overview["topics"] >= 1 and overview["messages"] >= 4
        assert overview["alarms"]["memory"] is None

        assert http.delete("/api/v1/topics/orders.api").status_code == 204
        r = http.get("/api/v1/topics/orders.api")
        assert r.status_code == 404 and r.json()["error"] == "NotFound"


async def test_groups_members_reset_and_delete(open_broker):
    topic, group = "orders.groups", "shipping"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic)
        for i in range(5):
            await client.publish(topic, f"m{i}".encode())
        sub = await client.subscribe(topic, group=group, prefetch=10)
        got = 0
        async for msg in sub:
            await msg.ack()
            got += 1
            if got == 5:
                break

        def check():
            with open_broker.client() as http:
                members = http.get(f"/api/v1/topics/{topic}/groups/{group}/members").json()
                assert len(members) == 1 and members[0]["member_id"]
                groups = http.get(f"/api/v1/topics/{topic}/groups").json()
                assert [g["name"] for g in groups] == [group]
                r = http.post(
                    f"/api/v1/topics/{topic}/groups/{group}/reset", json={"start": "sideways"}
                )
                assert r.status_code == 422, r.text
                r = http.get(f"/api/v1/topics/{topic}/groups/nobody")
                assert r.status_code == 404
                r = http.post(
                    f"/api/v1/topics/{topic}/groups/{group}/reset", json={"start": "earliest"}
                )
                assert r.status_code == 200, r.text

        await asyncio.to_thread(check)
        again = 0
        async for msg in sub:  # the reset hands the five back
            await msg.ack()
            again += 1
            if again == 5:
                break
        await sub.close()

    def delete():
        with open_broker.client() as http:
            assert http.delete(f"/api/v1/topics/{topic}/groups/{group}").status_code == 204
            assert http.get(f"/api/v1/topics/{topic}/groups").json() == []

    await asyncio.to_thread(delete)


async def test_connections_are_listed_and_closed(open_broker):
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic("orders.conns", exist_ok=True)

        def close_it():
            with open_broker.client() as http:
                conns = http.get("/api/v1/connections").json()
                assert conns, "the client's connection is listed"
                target = conns[-1]["id"]
                assert http.delete(f"/api/v1/connections/{target}").status_code == 204
                ids = [c["id"] for c in http.get("/api/v1/connections").json()]
                assert target not in ids
                assert http.delete("/api/v1/connections/nope").status_code == 404

        await asyncio.to_thread(close_it)


def test_bad_input_is_a_4xx_with_a_message(open_broker):
    with open_broker.client() as http:
        http.post("/api/v1/topics", json={"name": "orders.bad"})
        cases = [
            (http.post("/api/v1/topics", content=b"{nope"), 400, "not valid JSON"),
            (http.post("/api/v1/topics", json={"name": 7}), 422, "$.name"),
            (http.post("/api/v1/topics", json={"name": "bad name!"}), 400, "name"),
            (http.post("/api/v1/topics", json={"name": "x", "partitions": 0}), 400, "partitions"),
            (http.post("/api/v1/topics"), 400, "JSON body"),
            (http.get("/api/v1/topics/missing"), 404, "does not exist"),
            (http.get("/api/v1/topics/orders.bad/messages?offset=abc"), 400, "integer"),
            (http.get("/api/v1/topics/orders.bad/messages?limit=-1"), 400, ">= 0"),
            (http.get("/api/v1/topics/orders.bad/messages?partition=9"), 404, "partition"),
            (http.post("/api/v1/topics/orders.bad/messages", json={}), 400, "exactly one"),
            (
                http.post("/api/v1/topics/orders.bad/messages", json={"body_base64": "%%"}),
                400,
                "base64",
            ),
            (
                http.post("/api/v1/topics/orders.bad/messages", json={"body": "x", "what": 1}),
                422,
                "what",
            ),
            (
                http.post("/api/v1/topics/orders.bad/messages", json={"body": "x" * 2_000_000}),
                413,
                "max_message_size",
            ),
            (http.put("/api/v1/topics"), 405, "GET, POST"),
            (http.get("/api/v1/nothing/here"), 404, "openapi.json"),
            (http.get("/api/v1/topics/_reply.abc"), 404, "reply topic"),
        ]
        for r, status, words in cases:
            assert r.status_code == status, (r.request.url, r.text)
            body = r.json()
            assert words in body["message"], body
            assert isinstance(body["code"], int) and body["error"]


def test_the_openapi_document_describes_every_route(open_broker):
    with open_broker.client() as http:
        doc = http.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert ("DELETE", "/api/v1/topics/{topic}") in ops
    assert ("GET", "/api/v1/topics/{topic}/messages") in ops
    assert ("POST", "/api/v1/topics/{topic}/groups/{group}/reset") in ops
    schemas = doc["components"]["schemas"]
    assert {"TopicInfo", "GroupInfo", "TopicSpec", "MessagePage", "ErrorBody"} <= set(schemas)

    def refs(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
