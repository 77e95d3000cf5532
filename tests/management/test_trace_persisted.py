"""The message trace survives a restart of a real broker process (``--trace '>'``, a data
directory): after a graceful stop (SIGTERM) every event is back, over HTTP and in
``tidings trace``; after a SIGKILL every event the broker had written to ``DIR/trace`` (it
writes the ring's new rows every 0.5 s) is back, and the new run numbers its events after
them. What is promised is in docs/tracing.md."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest

import tidings
from tidings.broker.tracing import Tracer, row_events
from tidings.cli.main import main
from tidings.storage.tracelog import TRACE_DIR, TraceLog

from .conftest import HttpBroker, start

pytestmark = pytest.mark.timeout(180)


def kinds(events) -> list[str]:
    return [e["event"] for e in events]


def path_of(broker: HttpBroker, message_id: str) -> list[dict]:
    with broker.client() as http:
        answer = http.get(f"/api/v1/trace/{message_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def wait_livez(broker: HttpBroker) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(broker.base + "/livez", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, broker.proc.log()
        time.sleep(0.05)


def traced_path(url: str, topic: str) -> str:
    """Publish one message, nack it once, ack it; returns its id once the ack is traced."""
    with tidings.connect_sync(url) as client:
        client.create_topic(topic)
        sub = client.subscribe(topic, group="billing", prefetch=1, max_deliveries=3)
        receipt = client.publish(topic, b"order", key="o-1", msg_id=f"order-{topic}")
        next(iter(sub)).nack(error="ledger busy")
        next(iter(sub)).ack()
        deadline = time.monotonic() + 30
        while [e.event for e in client.trace(receipt.id).events][-1:] != ["acked"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sub.close()
    return receipt.id


WANT = ["published", "delivered", "nacked", "redelivered", "acked"]


def on_disk(data_dir, message_id: str) -> list[str]:
    """The events of ``message_id`` the broker has written to DIR/trace so far (batch rows
    read back through a ring, as the broker does at start)."""
    rows, consumers = TraceLog(data_dir / TRACE_DIR, keep=10**9, count=row_events).load()
    ring = Tracer(size=10**9)
    ring.restore(rows, consumers)
    return [e.event for e in ring.message(message_id)]


def test_the_trace_survives_a_stop_and_a_kill(tmp_path, capsys):
    broker = start(tmp_path, env={"TIDINGS_TRACE": ">"})
    data = tmp_path / "data"
    try:
        first = traced_path(broker.url, f"persist.a.{secrets.token_hex(3)}")
        before = path_of(broker, first)
        assert kinds(before) == WANT

        broker.proc.restart()  # SIGTERM: the last rows are written at the stop
        wait_livez(broker)
        after = path_of(broker, first)
        assert after == before  # the same events, origin and consumer included
        assert after[1]["consumer"] and after[0]["origin"]
        capsys.readouterr()
        assert main(["--url", broker.url, "trace", first]) == 0
        out = capsys.readouterr().out
        for word in (*WANT, "ledger busy", "billing"):
            assert word in out, (word, out)

        second = traced_path(broker.url, f"persist.b.{secrets.token_hex(3)}")
        deadline = time.monotonic() + 30  # written within FLUSH_INTERVAL (loaded machine: more)
        while on_disk(data, second) != WANT:
            assert time.monotonic() < deadline, on_disk(data, second)
            time.sleep(0.1)
        last_seq = path_of(broker, second)[-1]["seq"]

        broker.proc.restart(crash=True)  # SIGKILL: no last write
        wait_livez(broker)
        assert kinds(path_of(broker, second)) == WANT
        assert path_of(broker, first) == before
        third = traced_path(broker.url, f"persist.c.{secrets.token_hex(3)}")
        assert path_of(broker, third)[0]["seq"] > last_seq  # numbering goes on
        assert "events restored from" in broker.proc.log()
    finally:
        broker.proc.stop()
