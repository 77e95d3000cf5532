"""Message tracing on a real broker process (``--trace '>'``, or switched on at run time over
HTTP): one message's path through the API, the Python client and ``tidings trace``; a service
chain followed by its W3C trace id and a request/reply by its correlation id; ``--follow``;
who may see which events; a clear 404 for what is not traced."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time

import httpx
import pytest
from tests.helpers.broker_process import SRC

import tidings
from tidings import headers as H
from tidings.cli.main import main
from tidings.errors import NotFound

from .conftest import ADMIN_TOKEN, MONITOR_TOKEN, READER_PASSWORD, start

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    broker = start(tmp_path_factory.mktemp("traced"), env={"TIDINGS_TRACE": ">"})
    yield broker
    broker.proc.stop()


def kinds(events) -> list[str]:
    return [e["event"] if isinstance(e, dict) else e.event for e in events]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_message_path_over_the_api_the_client_and_the_cli(traced, capsys):
    topic = f"trace.orders.{secrets.token_hex(3)}"
    with tidings.connect_sync(traced.url) as client:
        client.create_topic(topic)
        sub = client.subscribe(topic, group="billing", prefetch=1, max_deliveries=2)
        receipt = client.publish(topic, b"order 1", key="o-1", msg_id="order-1-" + topic)
        first = next(iter(sub))
        first.nack(error="ledger busy")
        again = next(iter(sub))
        assert again.delivery_count == 2
        again.ack()
        sub.close()
        want = ["published", "delivered", "nacked", "redelivered", "acked"]
        deadline = time.monotonic() + 30
        while kinds(client.trace(receipt.id).events) != want:  # the ack is sent in the back
            assert time.monotonic() < deadline, client.trace(receipt.id)
            time.sleep(0.05)
        by_client = client.trace("order-1-" + topic)  # the producer id finds it too
    assert kinds(by_client.events) == want

    with traced.client() as http:
        answer = http.get(f"/api/v1/trace/{receipt.id}")
    assert answer.status_code == 200, answer.text
    events = answer.json()["events"]
    assert kinds(events) == want
    published, delivered, nacked = events[:3]
    assert published["msg_id"] == "order-1-" + topic and published["key"] == "o-1"
    assert published["origin"].startswith("connection ") and "127.0.0.1" in published["origin"]
    assert (delivered["group"], delivered["deliveries"]) == ("billing", 1)
    assert nacked["reason"] == "ledger busy" and events[3]["deliveries"] == 2
    assert len({e["member"] for e in events[1:]}) == 1
    assert delivered["consumer"].startswith("connection ") and "127.0.0.1" in delivered["consumer"]

    code, out, err = cli(capsys, "--url", traced.url, "trace", receipt.id)
    assert code == 0, err
    for word in (*want, "ledger busy", "billing", f"message {receipt.id}"):
        assert word in out, (word, out)
    code, out, _ = cli(capsys, "--url", traced.url, "trace", receipt.id, "--json")
    assert code == 0 and kinds(json.loads(out)["events"]) == want
    code, _, err = cli(capsys, "--url", traced.url, "trace", "no-such-message")
    assert code != 0 and "no trace of message 'no-such-message'" in err


async def test_a_service_chain_and_a_request_reply_are_followed(traced):
    placed, invoiced = (f"trace.chain.{n}.{secrets.token_hex(3)}" for n in ("placed", "billed"))
    quotes = f"trace.quotes.{secrets.token_hex(3)}"
    orders = tidings.Service("orders", url=traced.url, register=False)
    billing = tidings.Service("billing", url=traced.url, register=False)
    done = asyncio.Event()

    @billing.on(placed)
    async def bill(order: dict, ctx: tidings.Context) -> None:
        await ctx.publish(invoiced, {"order": order["id"]})

    @orders.on(invoiced)
    async def invoiced_(invoice: dict) -> None:
        done.set()

    @billing.reply(quotes)
    async def quote(ask: dict) -> dict:
        return {"price": 3}

    async with billing.running(), orders.running():
        receipt = await orders.publish(placed, {"id": "o-7"})
        await asyncio.wait_for(done.wait(), 30)
        async with tidings.connect(traced.url) as client:
            reply = await client.request(quotes, b'{"qty": 1}', timeout=10)
    correlation = reply.headers[H.CORRELATION_ID]

    def get(path: str) -> dict:
        with traced.client() as http:
            r = http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    deadline = time.monotonic() + 30
    while True:  # the handlers' acks reach the broker a moment after the handlers return
        chain = get(f"/api/v1/trace/{receipt.id}")
        if kinds(chain["related"])[-1:] == ["acked"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert kinds(chain["events"]) == ["published", "delivered", "acked"]
    trace_id = chain["events"][0]["trace_id"]
    assert trace_id and len(trace_id) == 32
    # the handler's publish carries the same trace id: it is the related message
    assert {e["topic"] for e in chain["related"]} == {invoiced}
    assert kinds(chain["related"]) == ["published", "delivered", "acked"]
    assert chain["related"][0]["trace_id"] == trace_id
    whole = get(f"/api/v1/trace/conversations/{trace_id}")
    assert [e["topic"] for e in whole["events"] if e["event"] == "published"] == [placed, invoiced]

    convo = get(f"/api/v1/trace/conversations/{correlation}")
    published = [e for e in convo["events"] if e["event"] == "published"]
    assert published[0]["topic"] == quotes and published[0]["reply_to"].startswith("_reply.")
    assert published[1]["topic"] == published[0]["reply_to"]  # the reply, on the reply topic
    assert {e["correlation_id"] for e in published} == {correlation}
    assert published[1]["type"] == "reply"


def test_follow_a_topic_from_the_cli(traced):
    topic = f"trace.follow.{secrets.token_hex(3)}"
    env = {**os.environ, "PYTHONPATH": str(SRC), "TIDINGS_URL": traced.url}
    with tidings.connect_sync(traced.url) as client:
        client.create_topic(topic)
        client.publish(topic, b"before")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "trace", "--topic", topic, "--follow",
             "--json", "--interval", "0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            first = json.loads(proc.stdout.readline())
            assert (first["event"], first["offset"]) == ("published", 0)
            client.publish(topic, b"after")
            second = json.loads(proc.stdout.readline())
            assert (second["event"], second["offset"], second["topic"]) == ("published", 1, topic)
        finally:
            os.kill(proc.pid, signal.SIGINT)
            proc.communicate(timeout=30)


def test_rights_and_switching_tracing_at_run_time(secured):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    monitor = {"Authorization": f"Bearer {MONITOR_TOKEN}"}
    reader = httpx.BasicAuth("reader", READER_PASSWORD)
    with secured.client() as http:
        status = http.get("/api/v1/trace", headers=monitor).json()
        assert status["topics"] == [] and status["events"] == 0  # off by default
        off = {"topics": ["orders.>"]}
        assert http.put("/api/v1/trace", json=off, auth=reader).status_code == 403
        assert http.put("/api/v1/trace", json=off, headers=monitor).status_code == 403
        bad = http.put("/api/v1/trace", json={"topics": ["orders*"]}, headers=admin)
        assert bad.status_code == 400 and "segments" in bad.json()["message"]
        r = http.put("/api/v1/trace", json={"topics": ["orders.>", "audit"]}, headers=admin)
        assert r.status_code == 200 and r.json()["topics"] == ["orders.>", "audit"]
        for topic in ("orders.eu", "audit", "logs"):
            assert http.post("/api/v1/topics", json={"name": topic}, headers=admin).status_code in (
                201,
                409,
            )
        ids = {}
        for topic in ("orders.eu", "audit", "logs"):
            sent = http.post(f"/api/v1/topics/{topic}/messages", json={"body": "x"}, headers=admin)
            ids[topic] = sent.json()["id"]
        # the reader may subscribe to orders.>: it sees that trace and no other
        seen = http.get(f"/api/v1/trace/{ids['orders.eu']}", auth=reader)
        assert seen.status_code == 200 and seen.json()["events"][0]["origin"].startswith("HTTP")
        assert http.get(f"/api/v1/trace/{ids['audit']}", auth=reader).status_code == 404
        assert http.get(f"/api/v1/trace/{ids['audit']}", headers=admin).status_code == 200
        assert http.get(f"/api/v1/trace/{ids['orders.eu']}", headers=monitor).status_code == 404
        logs = http.get(f"/api/v1/trace/{ids['logs']}", headers=admin)
        assert (
            logs.status_code == 404 and "tracing covers orders.>, audit" in logs.json()["message"]
        )
        feed = http.get("/api/v1/trace/events", params={"after": -1}, auth=reader).json()
        assert {e["topic"] for e in feed["events"]} == {"orders.eu"}
        assert (
            http.get("/api/v1/trace/events", params={"topic": "audit"}, auth=reader).status_code
            == 403
        )
        assert http.get("/api/v1/trace/events").status_code == 401
        # off again: nothing new is recorded, what was is still there
        assert http.put("/api/v1/trace", json={"topics": []}, headers=admin).json()["topics"] == []
        http.post("/api/v1/topics/orders.eu/messages", json={"body": "y"}, headers=admin)
        after = http.get("/api/v1/trace", headers=admin).json()
        assert after["events"] == after["last_seq"] == 2  # orders.eu and audit, not logs


async def test_a_client_on_memory_is_told_to_use_the_broker():
    async with tidings.connect("memory://") as client:
        with pytest.raises(tidings.errors.Unsupported, match="keeps no message trace"):
            await client.trace("x")


def test_nothing_traced_is_a_clear_not_found(open_broker):
    with tidings.connect_sync(open_broker.url) as client:
        client.create_topic("untraced", exist_ok=True)
        r = client.publish("untraced", b"x")
        with pytest.raises(NotFound, match="tracing is off"):
            client.trace(r.id)


def test_a_path_no_route_matches_is_still_a_json_404(open_broker):
    # a newline in the path escaped the /api/v1 catch-all (found by the OpenAPI fuzz)
    with open_broker.client() as http:
        r = http.get("/api/v1/groups/%0A/dead-letters")
        assert r.status_code == 404 and r.json()["error"] == "NotFound"
        assert http.get("/no/such/%0A/page").status_code == 404
