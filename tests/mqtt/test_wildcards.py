"""A wildcard in the first level (``+/status``, ``#``, ``+/+``): one MQTT subscription over
every tidings topic it covers, topics created later included, with the retained messages of
each and the rights of the user on each (docs/mqtt.md, "The mapping")."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.model import Outgoing, TopicSpec
from tidings.server.auth import hash_password
from tidings.server.mqtt import codec as m
from tidings.transports.tidings import NativeTransport

from .conftest import VERSIONS, mqtt_port
from .raw import Raw


def _publish(port: int, *packets: m.Publish) -> None:
    with Raw(port) as p:
        assert p.connect("wild-publisher").reason == 0
        for packet in packets:
            p.send(packet)
            if packet.qos:
                assert p.next() == m.Ack(m.PUBACK, packet.packet_id)


def _q1(topic: str, payload: bytes, pid: int, retain: bool = False) -> m.Publish:
    return m.Publish(topic, payload, qos=1, packet_id=pid, retain=retain)


def _granted(codes: list[object]) -> list[int]:
    return [int(getattr(q, "value", q)) for q in codes]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_first_level_wildcard_reads_every_topic_and_topics_created_later(
    broker, clients, version
):
    """MQTT 4.7.1: ``+`` matches one level, the first too, ``#`` every name; here the first
    level is the tidings topic, so one subscription reads many topics, and a topic created
    after the SUBSCRIBE (by a PUBLISH) is read from its first message."""
    port = broker.mqtt_port
    _publish(port, _q1("boilers/1/status", b"x", 1), _q1("pumps/status", b"x", 2))
    sub = clients(port, version, "wild")
    assert sub.connect() == 0
    assert _granted(sub.subscribe("+/status", 1)) == [1]
    every = clients(port, version, "every")
    assert every.connect() == 0
    assert _granted(every.subscribe("#", 1)) == [1]
    _publish(
        port,
        _q1("pumps/status", b"pump ok", 1),
        _q1("boilers/1/status", b"boiler ok", 2),  # three levels: not +/status
        _q1("fans/status", b"fan ok", 3),  # the topic "fans" is created by this PUBLISH
        _q1("/status", b"root ok", 4),  # an empty first level: + matches it too
    )
    got = sorted((msg.topic, msg.payload) for msg in (sub.next() for _ in range(3)))
    assert got == [
        ("/status", b"root ok"),
        ("fans/status", b"fan ok"),
        ("pumps/status", b"pump ok"),
    ]
    assert sub.nothing_more()
    got = sorted(msg.topic for msg in (every.next() for _ in range(4)))
    assert got == ["/status", "boilers/1/status", "fans/status", "pumps/status"]
    assert every.nothing_more()  # and nothing of the internal _mqtt.* topics


async def test_a_topic_a_tidings_service_creates_later_is_read_too(broker, clients):
    """A topic created by a tidings client (not by MQTT) after the subscription: its
    messages reach the ``+/+`` subscriber, in order, nothing missed."""
    sub = clients(broker.mqtt_port, "5.0", "wild-service")
    assert await asyncio.to_thread(sub.connect) == 0
    assert _granted(await asyncio.to_thread(sub.subscribe, "+/+", 1)) == [1]
    t = NativeTransport(broker.url, timeout=10.0)
    await t.connect()
    try:
        await t.create_topic(TopicSpec(name="invoices", partitions=1))
        await t.publish("invoices", [Outgoing(f"n{i}".encode(), key="eu") for i in range(5)])
    finally:
        await t.close()
    got = [await asyncio.to_thread(sub.next) for _ in range(5)]
    assert [(g.topic, g.payload) for g in got] == [
        ("invoices/eu", f"n{i}".encode()) for i in range(5)
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_messages_of_every_matching_topic_come_on_subscribe(broker, clients, version):
    """[MQTT-3.3.1-6] (5.0 -9): a new subscription gets the retained message of each
    matching topic name, across tidings topics, with RETAIN set."""
    port = broker.mqtt_port
    _publish(
        port,
        _q1("lamps/porch", b"on", 1, retain=True),
        _q1("doors/porch", b"shut", 2, retain=True),
        _q1("doors/garage/left", b"open", 3, retain=True),
    )
    porch = clients(port, version, "porch")
    assert porch.connect() == 0
    porch.subscribe("+/porch", 1)
    got = sorted((g.topic, g.payload, g.retain) for g in (porch.next() for _ in range(2)))
    assert got == [("doors/porch", b"shut", True), ("lamps/porch", b"on", True)]
    assert porch.nothing_more()
    every = clients(port, version, "all-retained")
    assert every.connect() == 0
    every.subscribe("#", 0)
    got = sorted(g.topic for g in (every.next() for _ in range(3)))
    assert got == ["doors/garage/left", "doors/porch", "lamps/porch"]
    assert every.nothing_more()


@pytest.fixture
def two_topics(tmp_path):
    """A users file where "writer" owns the topics sensors and secrets, and "reader" may
    subscribe to sensors only."""
    path = tmp_path / "users.toml"
    path.write_text(
        f'''[[users]]
name = "writer"
password = "{hash_password("w-pw")}"
admin = ["sensors", "secrets"]

[[users]]
name = "reader"
password = "{hash_password("r-pw")}"
subscribe = ["sensors"]
'''
    )
    args = ["--mqtt", "127.0.0.1:0", "--users-file", str(path)]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as proc:
        proc.mqtt_port = mqtt_port(proc)
        yield proc


@pytest.mark.parametrize("version", VERSIONS)
def test_a_wildcard_reads_only_the_topics_its_user_may_subscribe_to(two_topics, clients, version):
    """The rights apply to each tidings topic a wildcard spans: the reader's ``#`` is
    granted, and brings what is published and retained on sensors, nothing of secrets (nor
    of a topic created later that it has no right on)."""
    port = two_topics.mqtt_port
    writer = clients(port, version, "w", user="writer", password="w-pw")
    assert writer.connect() == 0
    for topic in ("sensors/t", "secrets/key"):
        writer.c.publish(topic, b"retained " + topic.encode(), qos=1, retain=True).wait_for_publish(
            10
        )
    reader = clients(port, version, "r", user="reader", password="r-pw")
    assert reader.connect() == 0
    assert _granted(reader.subscribe("#", 1)) == [1]
    first = reader.next()
    assert (first.topic, first.payload, first.retain) == ("sensors/t", b"retained sensors/t", True)
    for topic in ("secrets/key", "sensors/t"):
        writer.c.publish(topic, b"new " + topic.encode(), qos=1).wait_for_publish(10)
    got = reader.next()
    assert (got.topic, got.payload) == ("sensors/t", b"new sensors/t")
    assert reader.nothing_more()


def _persistent(c: Raw, client_id: str) -> m.Connack:
    return c.connect(client_id, clean_start=False, properties={"session_expiry_interval": 3600})


@pytest.mark.parametrize("crash", [False, True])
def test_a_persistent_wildcard_session_gets_what_came_while_it_was_away(tmp_path, crash):
    """A persistent session's ``#``: what is published while it is offline waits, on the
    topics it read and on a topic created meanwhile; across a broker restart too."""
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", "127.0.0.1:0"]).start()
    try:
        port = mqtt_port(proc)
        _publish(port, _q1("silos/a", b"exists", 1))
        with Raw(port) as c:
            assert _persistent(c, "roamer").session_present is False
            assert c.subscribe(1, m.Subscription("#", 1)).reasons == [1]
        _publish(port, _q1("silos/a", b"while away", 1), _q1("barns/b", b"new topic", 2))
        proc.restart(crash=crash)
        port = mqtt_port(proc)
        _publish(port, _q1("silos/a", b"after restart", 1))
        with Raw(port) as c:
            assert _persistent(c, "roamer").session_present is True
            got = c.take(3)
            assert sorted((g.topic, g.payload) for g in got) == [
                ("barns/b", b"new topic"),
                ("silos/a", b"after restart"),
                ("silos/a", b"while away"),
            ]
            c.send(*[m.Ack(m.PUBACK, g.packet_id) for g in got])
            assert c.silent(0.5)
    finally:
        proc.stop()


async def test_unsubscribing_a_wildcard_deletes_its_groups_on_every_topic(broker):
    """A private subscription is a group on each topic it read: UNSUBSCRIBE deletes them
    all (no group is left behind to hold messages back)."""
    port = broker.mqtt_port
    await asyncio.to_thread(_publish, port, _q1("alpha/x", b"1", 1), _q1("beta/x", b"2", 2))

    def subscribe_then_unsubscribe() -> None:
        with Raw(port) as c:
            assert c.connect("passing").reason == 0
            assert c.subscribe(1, m.Subscription("+/x", 1)).reasons == [1]
            _publish(port, _q1("gamma/x", b"3", 1))  # a third topic, created later
            assert c.next().payload == b"3"
            c.send(m.Unsubscribe(2, ["+/x"]))
            assert c.next() == m.Unsuback(2, [m.SUCCESS])

    t = NativeTransport(broker.url, timeout=10.0)
    await t.connect()
    try:
        await asyncio.to_thread(subscribe_then_unsubscribe)
        for topic in ("alpha", "beta", "gamma"):
            assert [g.name for g in await t.list_groups(topic)] == []
    finally:
        await t.close()


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_sub_hash_gets_the_retained_messages_of_every_topic(broker, version):
    """Debian's mosquitto_sub with ``-t '#'`` (the Eclipse suites' clean-up does the same):
    the retained message of each topic, then a new message on a new topic."""
    port = str(broker.mqtt_port)
    _publish(broker.mqtt_port, _q1("lamps/porch", b"on", 1, retain=True))
    _publish(broker.mqtt_port, _q1("doors/porch", b"shut", 1, retain=True))
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-V", version, "-t", "#", "-v",
         "-C", "3", "-W", "20", "-q", "1"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline_lines: list[str] = []
        assert sub.stdout is not None
        for _ in range(2):
            deadline_lines.append(sub.stdout.readline().strip())
        _publish(broker.mqtt_port, _q1("gates/north", b"closed", 1))
        deadline_lines.append(sub.stdout.readline().strip())
        assert sub.wait(20) == 0
    finally:
        if sub.poll() is None:
            sub.kill()
    assert sorted(deadline_lines[:2]) == ["doors/porch shut", "lamps/porch on"]
    assert deadline_lines[2] == "gates/north closed"
