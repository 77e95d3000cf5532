"""Both ways between MQTT clients nobody here wrote (paho-mqtt, Debian's mosquitto_pub and
mosquitto_sub) and tidings' own client; and QoS 1 PUBACKs that survive kill -9."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.model import GroupSpec, Outgoing
from tidings.transports.tidings import NativeTransport

from .conftest import PASSWORDS, mqtt_port


async def _consume(url: str, topic: str, group: str, n: int) -> list:
    t = NativeTransport(url, timeout=10.0)
    await t.connect()
    try:
        sub = await t.subscribe(GroupSpec(topic=topic, name=group))
        got = []
        for _ in range(n):
            msg = await sub.next(timeout=10)
            assert msg is not None
            got.append(msg)
            await msg.ack()
        return got
    finally:
        await t.close()


async def test_paho_v5_to_a_tidings_consumer_and_back(broker, clients):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    pub = clients(broker.mqtt_port, "5.0", "device")
    assert await asyncio.to_thread(pub.connect) == 0
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("trace", "abc")]
    info = pub.c.publish("orders/eu/42", b'{"n": 1}', qos=1, properties=props)
    await asyncio.to_thread(info.wait_for_publish, 10)
    [msg] = await _consume(broker.url, "orders", "billing", 1)
    assert (msg.key, msg.body) == ("eu/42", b'{"n": 1}')
    assert msg.headers["trace"] == "abc" and msg.headers["mqtt-topic"] == "orders/eu/42"

    sub = clients(broker.mqtt_port, "5.0", "screen")
    await asyncio.to_thread(sub.connect)
    await asyncio.to_thread(sub.subscribe, "orders/#", 1)
    t = NativeTransport(broker.url, timeout=10.0)
    await t.connect()
    try:
        await t.publish("orders", [Outgoing(b"from tidings", key="us/7", headers={"h": "1"})])
    finally:
        await t.close()
    got = await asyncio.to_thread(sub.next)
    assert (got.topic, got.payload, got.qos) == ("orders/us/7", b"from tidings", 1)
    assert dict(got.properties.UserProperty) == {"h": "1"}


async def test_acknowledged_qos1_publishes_survive_kill_9(tmp_path, clients):
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", "127.0.0.1:0"]).start()
    try:
        pub = clients(mqtt_port(proc), "3.1.1", "durable")
        assert await asyncio.to_thread(pub.connect) == 0
        infos = [pub.c.publish(f"meters/{i % 3}", str(i).encode(), qos=1) for i in range(50)]
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 10)
        assert all(info.is_published() for info in infos)
        proc.kill()  # SIGKILL: no shutdown, no final flush
        proc.start()
        got = await _consume(proc.url, "meters", "after-crash", 50)
        assert sorted(int(m.body) for m in got) == list(range(50))
    finally:
        proc.stop()


def _mosquitto(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
async def test_mosquitto_pub_to_tidings_and_tidings_to_mosquitto_sub(broker, version):
    port = str(broker.mqtt_port)
    done = await asyncio.to_thread(
        _mosquitto, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", version, "-q", "1",
        "-i", "cli-pub", "-t", "sensors/hall/temp", "-m", "19.5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [msg] = await _consume(broker.url, "sensors", "svc", 1)
    assert (msg.key, msg.body) == ("hall/temp", b"19.5")
    t = NativeTransport(broker.url, timeout=10.0)
    await t.connect()
    try:
        await t.publish("sensors", [Outgoing(b"on", key="hall/lamp")])
    finally:
        await t.close()
    # a shared subscription is a durable group starting at the earliest message: no race
    read = await asyncio.to_thread(
        _mosquitto, "mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", version, "-q", "1",
        "-i", "cli-sub", "-t", "$share/panel/sensors/#", "-C", "2", "-W", "15", "-v",
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    assert read.stdout.splitlines() == ["sensors/hall/temp 19.5", "sensors/hall/lamp on"]


def test_mosquitto_wrong_password_and_right_one(secured):
    port = str(secured.mqtt_port)
    base = ["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5", "-q", "1"]
    bad = _mosquitto(*base, "-u", "sensor", "-P", "wrong", "-t", "sensors/a", "-m", "x")
    assert bad.returncode != 0
    assert "bad user name or password" in (bad.stderr + bad.stdout).lower()
    ok = _mosquitto(*base, "-u", "sensor", "-P", PASSWORDS["sensor"], "-t", "sensors/a", "-m", "x")
    assert ok.returncode == 0, ok.stderr
    assert secured.running()
