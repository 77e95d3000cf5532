"""The internal topics ``_mqtt.retained`` and ``_mqtt.sessions`` are compacted: past 1,000
records (and twice the live state) the state is appended again and the older records
trimmed, so neither grows forever; what they hold survives a restart, kill -9 too."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.server.mqtt import codec as m
from tidings.transports.tidings import NativeTransport

from .conftest import mqtt_port
from .raw import Raw

UPDATES = 1500


def _retained(topic: str, payload: bytes, pid: int) -> m.Publish:
    return m.Publish(topic, payload, qos=1, retain=True, packet_id=pid)


def _records(url: str, topic: str) -> int:
    async def count() -> int:
        t = NativeTransport(url, timeout=10.0)
        await t.connect()
        try:
            return (await t.topic_info(topic)).messages
        finally:
            await t.close()

    return asyncio.run(count())


def _wait_below(url: str, topic: str, limit: int) -> int:
    deadline = time.monotonic() + 30
    while (n := _records(url, topic)) >= limit and time.monotonic() < deadline:
        time.sleep(0.2)
    return n


@pytest.mark.parametrize("crash", [False, True])
def test_retained_messages_are_compacted_and_the_last_of_each_topic_kept(tmp_path, crash):
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", "127.0.0.1:0"]).start()
    try:
        with Raw(mqtt_port(proc)) as p:
            assert p.connect("meter-reader").reason == 0
            for start in range(0, UPDATES, 500):  # within the receive maximum (1,000)
                batch = range(start, start + 500)
                p.send(*[_retained(f"meters/{i % 5}", str(i).encode(), i + 1) for i in batch])
                acks = p.take(500)
                assert all(isinstance(a, m.Ack) and a.type == m.PUBACK for a in acks)
        assert _wait_below(proc.url, "_mqtt.retained", 1000) < 1000  # 1,500 without it
        proc.restart(crash=crash)
        with Raw(mqtt_port(proc)) as c:
            assert c.connect("after").reason == 0
            assert c.subscribe(1, m.Subscription("meters/#", 0)).reasons == [0]
            got = sorted((g.topic, g.payload, g.retain) for g in c.take(5))
            last = [(f"meters/{k}", str(UPDATES - 5 + k).encode(), True) for k in range(5)]
            assert got == last
            assert c.silent(0.5)
    finally:
        proc.stop()


@pytest.mark.parametrize("crash", [False, True])
def test_session_records_are_compacted_and_the_session_resumes(tmp_path, crash):
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", "127.0.0.1:0"]).start()
    props = {"session_expiry_interval": 3600}
    try:
        with Raw(mqtt_port(proc)) as c:
            assert c.connect("fickle", clean_start=False, properties=props).reason == 0
            for i in range(0, 1200, 2):  # each SUBSCRIBE and UNSUBSCRIBE is a record
                c.send(
                    m.Subscribe(i + 1, [m.Subscription("tmp/#", 1)]),
                    m.Unsubscribe(i + 2, ["tmp/#"]),
                )
            c.take(1200)
            assert c.subscribe(9999, m.Subscription("keep/#", 1)).reasons == [1]
        assert _wait_below(proc.url, "_mqtt.sessions", 1000) < 1000
        proc.restart(crash=crash)
        port = mqtt_port(proc)
        with Raw(port) as c:
            assert c.connect("fickle", clean_start=False, properties=props).session_present
            with Raw(port) as p:
                assert p.connect("writer").reason == 0
                p.send(m.Publish("keep/x", b"still here", qos=1, packet_id=1))
                assert p.next() == m.Ack(m.PUBACK, 1)
            got = c.next()
            assert (got.topic, got.payload) == ("keep/x", b"still here")
    finally:
        proc.stop()
