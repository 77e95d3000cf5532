"""``/api/v1/events`` over real HTTP against a real broker process: an httpx stream reads
overview events whose counters follow what is published meanwhile; a bad interval is a 400,
other methods a JSON 405; it needs the monitor right like the overview; the OpenAPI document
names it as text/event-stream."""

from __future__ import annotations

import json

import httpx

from .conftest import ADMIN_TOKEN, MONITOR_TOKEN, READER_PASSWORD


def _events(response: httpx.Response):
    """Parsed (event name, data) of a Server-Sent Events stream, as they arrive."""
    name, data = None, []
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line.partition(":")[2].strip())
        elif not line and data:
            yield name, json.loads("\n".join(data))
            name, data = None, []


def test_the_stream_follows_what_is_published(open_broker):
    topic = "events.orders"
    with open_broker.client() as http, open_broker.client() as publisher:
        assert publisher.post("/api/v1/topics", json={"name": topic}).status_code == 201
        with http.stream("GET", "/api/v1/events", params={"interval": "0.2"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            seen = []
            for name, data in _events(r):
                assert name == "overview"
                seen.append(data["messages"])
                if len(seen) == 1 or seen[-1] == seen[0]:
                    # publish after each event until one shows the new count
                    r2 = publisher.post(f"/api/v1/topics/{topic}/messages", json={"body": "x"})
                    assert r2.status_code == 201
                if len(seen) >= 2 and seen[-1] > seen[0]:
                    break
                assert len(seen) < 50, seen
            assert data["topics"] >= 1 and "ack_rate" in data and "alarms" in data


def test_bad_input_and_other_methods(open_broker):
    with open_broker.client() as http:
        for value in ("0", "fast", "nan", "61"):
            r = http.get("/api/v1/events", params={"interval": value})
            assert r.status_code == 400 and "interval" in r.json()["message"], value
        r = http.post("/api/v1/events")
        assert r.status_code == 405 and r.json()["error"] == "BadRequest"
        doc = http.get("/api/v1/openapi.json").json()
        answer = doc["paths"]["/api/v1/events"]["get"]["responses"]["200"]
        assert "text/event-stream" in answer["content"]


def test_the_stream_needs_the_monitor_right(secured):
    with secured.client(auth=("reader", READER_PASSWORD)) as reader:
        r = reader.get("/api/v1/events")
        assert r.status_code == 403 and "monitor" in r.json()["message"]
    with secured.client() as nobody:
        assert nobody.get("/api/v1/events").status_code == 401
    for token in (MONITOR_TOKEN, ADMIN_TOKEN):
        with (
            secured.client(headers={"Authorization": f"Bearer {token}"}) as http,
            http.stream("GET", "/api/v1/events") as r,
        ):
            assert r.status_code == 200
            name, data = next(_events(r))
            assert name == "overview" and "uptime_seconds" in data
