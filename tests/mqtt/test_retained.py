"""Retained messages (MQTT 5.0 §3.3.1.3 and §3.8.3.1, 3.1.1 §3.3.1.3): the last one per
topic, sent to new subscriptions with RETAIN set, cleared by an empty payload, durable."""

from __future__ import annotations

import subprocess

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.server.mqtt import codec as m

from .conftest import mqtt_port
from .raw import Raw


def _publish_retained(port: int, topic: str, payload: bytes, qos: int = 1) -> None:
    with Raw(port) as p:
        assert p.connect("retainer").reason == 0
        p.send(m.Publish(topic, payload, qos=qos, retain=True, packet_id=1 if qos else None))
        if qos == 1:
            assert p.next() == m.Ack(m.PUBACK, 1)
        elif qos == 2:
            assert p.next() == m.Ack(m.PUBREC, 1)
            p.send(m.Ack(m.PUBREL, 1))
            assert p.next() == m.Ack(m.PUBCOMP, 1)


@pytest.mark.parametrize("version", ["3.1.1", "5.0"])
def test_a_new_subscriber_gets_the_last_retained_message_of_each_topic(broker, clients, version):
    """[MQTT-3.3.1-5]: the server stores the message and sends it to future subscribers;
    [MQTT-3.3.1-8]: with RETAIN set; only the last one per topic is kept; [MQTT-3.3.1-10/-11]
    (5.0: -6/-7): an empty retained payload is delivered as usual and clears the topic."""
    port = broker.mqtt_port
    _publish_retained(port, "rooms/kitchen/temp", b"19")
    _publish_retained(port, "rooms/kitchen/temp", b"21")  # replaces the first
    _publish_retained(port, "rooms/hall/temp", b"18", qos=2)
    first = clients(port, version, "late")
    assert first.connect() == 0
    first.subscribe("rooms/+/temp", 1)
    got = sorted([first.next(), first.next()], key=lambda msg: msg.topic)
    assert [(g.topic, g.payload, g.retain, g.qos) for g in got] == [
        ("rooms/hall/temp", b"18", True, 1),  # QoS 2 retained, QoS 1 granted: the lesser
        ("rooms/kitchen/temp", b"21", True, 1),
    ]
    assert first.nothing_more()
    _publish_retained(port, "rooms/kitchen/temp", b"")  # clears it
    cleared = first.next()  # the empty message itself still goes to subscribers
    assert (cleared.topic, cleared.payload, cleared.retain) == ("rooms/kitchen/temp", b"", False)
    second = clients(port, version, "later")
    assert second.connect() == 0
    second.subscribe("rooms/#", 1)
    msg = second.next()
    assert (msg.topic, msg.payload, msg.retain) == ("rooms/hall/temp", b"18", True)
    assert second.nothing_more()


def test_retain_flag_on_forwarded_messages_and_retain_as_published(broker):
    """3.1.1 [MQTT-3.3.1-9] and 5.0 §3.3.1.3: a message forwarded to an existing subscription
    has RETAIN 0, unless the v5 subscription asked for Retain As Published (§3.8.3.1)."""
    port = broker.mqtt_port
    with Raw(port) as plain, Raw(port) as rap, Raw(port, m.V311) as old:
        assert plain.connect("plain").reason == 0 and rap.connect("rap").reason == 0
        assert old.connect("old").reason == 0
        assert plain.subscribe(1, m.Subscription("lamps/#", 1)).reasons == [1]
        assert rap.subscribe(1, m.Subscription("lamps/#", 1, retain_as_published=True)).reasons == [
            1
        ]
        assert old.subscribe(1, m.Subscription("lamps/#", 1)).reasons == [1]
        _publish_retained(port, "lamps/porch", b"on")
        for client, flag in ((plain, False), (rap, True), (old, False)):
            got = client.next()
            assert (got.topic, got.payload, got.retain) == ("lamps/porch", b"on", flag)


def test_v5_retain_handling(broker):
    """5.0 §3.8.3.1 Retain Handling: 0 sends retained messages at every SUBSCRIBE, 1 only if
    the subscription did not exist, 2 never; a shared subscription gets none (§4.8.2)."""
    port = broker.mqtt_port
    _publish_retained(port, "doors/front", b"closed")
    with Raw(port) as c:
        assert c.connect("handling").reason == 0
        for handling, expect_first, expect_again in (
            (0, True, True),
            (1, True, False),
            (2, False, False),
        ):
            flt = m.Subscription("doors/#", 0, retain_handling=handling)
            assert c.subscribe(10 + handling, flt).reasons == [0]
            if expect_first:
                got = c.next()
                assert (got.topic, got.payload, got.retain) == ("doors/front", b"closed", True)
            assert c.silent(0.3)
            assert c.subscribe(20 + handling, flt).reasons == [0]  # the same filter again
            if expect_again:
                assert c.next().payload == b"closed"
            assert c.silent(0.3)
            c.send(m.Unsubscribe(30 + handling, ["doors/#"]))
            assert isinstance(c.next(), m.Unsuback)
        assert c.subscribe(40, m.Subscription("$share/g/doors/#", 0)).reasons == [0]
        # the group starts at the topic's first message: that one comes, but not as retained
        got = c.next()
        assert (got.payload, got.retain) == (b"closed", False)
        assert c.silent(0.5)


def test_retained_qos1_delivery_waits_for_its_puback(broker):
    """§4.3.2: a retained message sent at QoS 1 has a packet id and is acknowledged."""
    port = broker.mqtt_port
    _publish_retained(port, "gauges/oil", b"3")
    with Raw(port) as c:
        assert c.connect("gauge").reason == 0
        assert c.subscribe(1, m.Subscription("gauges/oil", 1)).reasons == [1]
        got = c.next()
        assert (got.payload, got.qos, got.retain) == (b"3", 1, True)
        c.send(m.Ack(m.PUBACK, got.packet_id), m.Pingreq())
        assert c.next() == m.Pingresp()


@pytest.mark.parametrize("crash", [False, True])
def test_retained_messages_survive_a_restart(tmp_path, crash):
    """Retained messages are stored durably (acknowledged after the commit): after a restart
    (kill -9 too) a new subscriber gets the last one, and a cleared topic stays cleared."""
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", "127.0.0.1:0"]).start()
    try:
        _publish_retained(mqtt_port(proc), "valves/a", b"open")
        _publish_retained(mqtt_port(proc), "valves/b", b"open")
        _publish_retained(mqtt_port(proc), "valves/b", b"")
        _publish_retained(mqtt_port(proc), "valves/a", b"half", qos=2)
        proc.restart(crash=crash)
        with Raw(mqtt_port(proc)) as c:
            assert c.connect("after").reason == 0
            assert c.subscribe(1, m.Subscription("valves/#", 0)).reasons == [0]
            got = c.next()
            assert (got.topic, got.payload, got.retain) == ("valves/a", b"half", True)
            assert c.silent(0.5)
    finally:
        proc.stop()


def test_the_internal_retained_topic_is_not_an_mqtt_topic(broker):
    with Raw(broker.mqtt_port) as c:
        assert c.connect("nosy").reason == 0
        assert c.subscribe(1, m.Subscription("_mqtt.retained/#", 0)).reasons == [
            m.TOPIC_FILTER_INVALID
        ]


def test_mosquitto_retained_message_with_the_cli_tools(broker):
    """Debian's mosquitto_pub -r, then mosquitto_sub --retained-only gets it."""
    port = str(broker.mqtt_port)
    run = lambda *a: subprocess.run(a, capture_output=True, text=True, timeout=20, check=False)  # noqa: E731
    pub = run(
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-t",
        "signs/exit",
        "-m",
        "lit",
        "-r",
        "-q",
        "1",
    )
    assert pub.returncode == 0, pub.stderr
    sub = run("mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5", "-t", "signs/#",
              "-v", "-C", "1", "-W", "10", "--retained-only")  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.strip() == "signs/exit lit"
