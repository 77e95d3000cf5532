"""paho-mqtt (a client nobody here wrote), MQTT 3.1.1 and 5.0, against `--mqtt`."""

from __future__ import annotations

import contextlib
import queue
import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .conftest import PASSWORDS

VERSIONS = ["3.1.1", "5.0"]


@pytest.mark.parametrize("version", VERSIONS)
def test_qos1_publish_reaches_a_wildcard_subscriber(broker, clients, version):
    sub = clients(broker.mqtt_port, version, "sub")
    assert sub.connect() == 0
    assert [
        int(q.value if hasattr(q, "value") else q) for q in sub.subscribe("sensors/+/temp", 1)
    ] == [1]
    pub = clients(broker.mqtt_port, version, "pub")
    assert pub.connect() == 0
    pub.c.publish("sensors/hall/humidity", b"no", qos=1).wait_for_publish(10)
    info = pub.c.publish("sensors/kitchen/temp", b"21.5", qos=1)
    info.wait_for_publish(10)
    assert info.is_published()
    msg = sub.next()
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == (
        "sensors/kitchen/temp",
        b"21.5",
        1,
        False,
    )
    pub.c.publish("sensors/kitchen/temp", b"22", qos=0)
    msg = sub.next()
    assert (msg.payload, msg.qos) == (b"22", 0)  # published at QoS 0: delivered at QoS 0
    assert sub.nothing_more()


@pytest.mark.parametrize("version", VERSIONS)
def test_hash_matches_the_parent_level_and_everything_under_it(broker, clients, version):
    sub = clients(broker.mqtt_port, version, "sub")
    sub.connect()
    sub.subscribe("sensors/#", 0)
    pub = clients(broker.mqtt_port, version, "pub")
    pub.connect()
    for topic in ("sensors", "sensors/a", "sensors/a/b/c", "other/a"):
        pub.c.publish(topic, topic.encode(), qos=1).wait_for_publish(10)
    got = [sub.next().topic for _ in range(3)]
    assert got == ["sensors", "sensors/a", "sensors/a/b/c"]  # in publish order
    assert sub.nothing_more()


def test_v5_user_properties_round_trip(broker, clients):
    sub = clients(broker.mqtt_port, "5.0", "sub")
    sub.connect()
    sub.subscribe("orders/#", 1)
    pub = clients(broker.mqtt_port, "5.0", "pub")
    pub.connect()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("trace", "abc"), ("tenant", "t1")]
    pub.c.publish("orders/eu/42", b"{}", qos=1, properties=props).wait_for_publish(10)
    msg = sub.next()
    assert dict(msg.properties.UserProperty) == {"trace": "abc", "tenant": "t1"}


def test_shared_subscription_spreads_over_its_members(broker, clients):
    a = clients(broker.mqtt_port, "5.0", "a")
    b = clients(broker.mqtt_port, "5.0", "b")
    for c in (a, b):
        c.connect()
        c.subscribe("$share/workers/jobs/#", 1)
    pub = clients(broker.mqtt_port, "5.0", "pub")
    pub.connect()
    for i in range(20):
        pub.c.publish(f"jobs/{i}", str(i).encode(), qos=1).wait_for_publish(10)
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    deadline = time.monotonic() + 10
    while sum(map(len, got.values())) < 20 and time.monotonic() < deadline:
        for name, c in (("a", a), ("b", b)):
            with contextlib.suppress(queue.Empty):
                got[name].append(c.next(timeout=0.05).payload)
    assert sorted(got["a"] + got["b"], key=int) == [str(i).encode() for i in range(20)]
    assert got["a"] and got["b"]  # both members had a share
    assert a.nothing_more() and b.nothing_more()  # each message once


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_password_gets_the_connack_code(secured, clients, version):
    c = clients(secured.mqtt_port, version, "x", user="sensor", password="wrong")
    rc = c.connect()
    assert int(getattr(rc, "value", rc)) == 0x86  # paho reports 3.1.1's code 4 as 0x86 too


@pytest.mark.parametrize("version", VERSIONS)
def test_topic_rights_of_the_users_file_apply(secured, clients, version):
    reader = clients(secured.mqtt_port, version, "r", user="reader", password=PASSWORDS["reader"])
    assert reader.connect() == 0
    forbidden = 0x87 if version == "5.0" else 0x80
    codes = reader.subscribe("secrets/#", 1)
    assert [int(getattr(q, "value", q)) for q in codes] == [forbidden]
    sensor = clients(secured.mqtt_port, version, "s", user="sensor", password=PASSWORDS["sensor"])
    assert sensor.connect() == 0
    # a topic that does not exist yet needs its admin right: the reader's subscription waits
    # for the sensor (admin of "sensors") to create it with its first publish
    assert [int(getattr(q, "value", q)) for q in reader.subscribe("sensors/#", 1)] == [forbidden]
    sensor.c.publish("sensors/t", b"first", qos=1).wait_for_publish(10)
    assert [int(getattr(q, "value", q)) for q in reader.subscribe("sensors/#", 1)] == [1]
    sensor.c.publish("sensors/t", b"ok", qos=1).wait_for_publish(10)
    assert reader.next().payload == b"ok"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_topic_with_an_empty_first_level_is_served(broker, clients, version):
    """``/devices/7`` (a leading slash, common on devices; the Eclipse suites' ``/TopicA``)
    lives on the tidings topic mqtt-root, apart from names that start with ``mqtt-root/``."""
    sub = clients(broker.mqtt_port, version, "root-sub")
    assert sub.connect() == 0
    granted = [sub.subscribe(flt, 1)[0] for flt in ("/#", "mqtt-root/#")]
    assert [int(getattr(q, "value", q)) for q in granted] == [1, 1]
    pub = clients(broker.mqtt_port, version, "root-pub")
    assert pub.connect() == 0
    for topic in ("/devices/7", "mqtt-root/x", "/"):
        pub.c.publish(topic, topic.encode(), qos=1).wait_for_publish(10)
    got = sorted(sub.next().topic for _ in range(3))
    assert got == ["/", "/devices/7", "mqtt-root/x"]
    assert sub.nothing_more()  # each matched by one filter only
