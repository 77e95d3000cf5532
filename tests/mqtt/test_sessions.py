"""Persistent sessions (3.1.1 §3.1.2.4, 5.0 §3.1.2.4 and §3.1.2.11.2, resends §4.4): what
survives a disconnect and a broker restart, session present, expiry."""

from __future__ import annotations

import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.helpers.broker_process import BrokerProcess

from tidings.server.mqtt import codec as m

from .conftest import mqtt_port
from .raw import Raw


def _publish(port: int, *packets: m.Publish) -> None:
    with Raw(port) as p:
        assert p.connect("publisher").reason == 0
        p.send(*packets)
        for packet in packets:
            assert p.next() == m.Ack(m.PUBACK, packet.packet_id)


def _q1(topic: str, payload: bytes, pid: int) -> m.Publish:
    return m.Publish(topic, payload, qos=1, packet_id=pid)


def test_paho_v311_clean_session_0_gets_what_was_published_while_away(broker):
    """3.1.1 §3.1.2.4: with Clean Session 0 the subscriptions and the QoS 1 messages for them
    survive the disconnect [MQTT-3.1.2-4/-5]; CONNACK says session present [MQTT-3.2.2-2];
    Clean Session 1 discards the session [MQTT-3.1.2-6] (session present 0 [MQTT-3.2.2-1])."""
    port = broker.mqtt_port
    flags: list[bool] = []
    got: list[paho.MQTTMessage] = []
    subacks: list[int] = []

    def client(clean: bool) -> paho.Client:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="keeper", clean_session=clean,
                        protocol=paho.MQTTv311)  # fmt: skip
        c.on_connect = lambda c, u, f, rc, p: flags.append(f.session_present)
        c.on_message = lambda c, u, msg: got.append(msg)
        c.on_subscribe = lambda c, u, mid, rcs, p: subacks.append(mid)
        return c

    c = client(False)
    c.connect("127.0.0.1", port)
    c.loop_start()
    _wait(lambda: flags, "CONNACK")
    assert c.subscribe("plants/#", 1)[0] == paho.MQTT_ERR_SUCCESS
    _wait(lambda: subacks, "SUBACK")
    c.disconnect()
    c.loop_stop()
    _publish(port, *[_q1(f"plants/{i}", b"%d" % i, i + 1) for i in range(3)])
    c = client(False)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        _wait(lambda: len(got) >= 3, "the queued messages")
        assert flags == [False, True]
        assert sorted((g.topic, g.payload, g.qos) for g in got) == [
            (f"plants/{i}", b"%d" % i, 1) for i in range(3)
        ]
    finally:
        c.disconnect()
        c.loop_stop()
    c = client(True)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        _wait(lambda: len(flags) == 3, "CONNACK")
        assert flags[2] is False
        _publish(port, _q1("plants/9", b"9", 1))
        time.sleep(0.5)
        assert len(got) == 3  # the subscription went with the session
    finally:
        c.disconnect()
        c.loop_stop()


def _wait(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.02)


def _persistent(c: Raw, client_id: str, expiry: int = 300, clean: bool = False) -> m.Connack:
    return c.connect(client_id, clean_start=clean,
                     properties={"session_expiry_interval": expiry})  # fmt: skip


def test_unacknowledged_qos1_delivery_is_resent_with_dup_and_its_packet_id(broker):
    """5.0 §4.4 [MQTT-4.4.0-1]: on a resumed session the server resends unacknowledged
    PUBLISHes with their original packet ids and DUP 1 [MQTT-3.3.1-1]."""
    port = broker.mqtt_port
    with Raw(port) as c:
        assert _persistent(c, "resume-1").session_present is False
        assert c.subscribe(1, m.Subscription("belts/#", 1)).reasons == [1]
        _publish(port, _q1("belts/a", b"one", 1))
        first = c.next()
        assert (first.payload, first.dup) == (b"one", False)
    with Raw(port) as c:  # gone without PUBACK
        assert _persistent(c, "resume-1").session_present is True
        again = c.next()
        assert (again.topic, again.payload, again.dup, again.packet_id) == (
            "belts/a", b"one", True, first.packet_id,
        )  # fmt: skip
        c.send(m.Ack(m.PUBACK, again.packet_id))
        assert c.silent(0.5)
    with Raw(port) as c:
        assert _persistent(c, "resume-1").session_present is True
        assert c.silent(0.5)  # acknowledged: not again


def test_pubrel_is_resent_on_a_resumed_session(broker):
    """5.0 §4.4 / 3.1.1 §4.4: a QoS 2 delivery PUBREC'd but not PUBCOMP'd gets its PUBREL
    again on the next connection of the session, not the PUBLISH."""
    port = broker.mqtt_port
    with Raw(port) as c:
        assert _persistent(c, "resume-2").session_present is False
        assert c.subscribe(1, m.Subscription("vats/#", 2)).reasons == [2]
        with Raw(port) as p:
            assert p.connect("p2").reason == 0
            p.send(m.Publish("vats/1", b"x", qos=2, packet_id=3))
            assert p.next() == m.Ack(m.PUBREC, 3)
        got = c.next()
        assert got.qos == 2
        c.send(m.Ack(m.PUBREC, got.packet_id))
        assert c.next() == m.Ack(m.PUBREL, got.packet_id)
    with Raw(port) as c:  # gone without PUBCOMP
        assert _persistent(c, "resume-2").session_present is True
        assert c.next() == m.Ack(m.PUBREL, got.packet_id)
        c.send(m.Ack(m.PUBCOMP, got.packet_id))
        assert c.silent(0.5)


def test_v5_session_expiry(broker):
    """5.0 §3.1.2.11.2: a session ends its expiry interval after the connection closed
    [MQTT-3.1.2-23]; without the property (0) it ends with the connection; clean start 1
    ends an earlier session [MQTT-3.1.2-4] and CONNACK session present is 0 [MQTT-3.2.2-2]."""
    port = broker.mqtt_port
    with Raw(port) as c:
        assert _persistent(c, "short", expiry=1).session_present is False
        assert c.subscribe(1, m.Subscription("taps/#", 1)).reasons == [1]
    with Raw(port) as c:
        assert c.connect("none", clean_start=False).session_present is False
        assert c.subscribe(1, m.Subscription("taps/#", 1)).reasons == [1]
    with Raw(port) as c:
        assert _persistent(c, "long").session_present is False
        assert c.subscribe(1, m.Subscription("taps/#", 1)).reasons == [1]
    time.sleep(3.0)  # past 1 s (the sweep runs every second)
    _publish(port, _q1("taps/1", b"drip", 1))
    with Raw(port) as c:
        assert _persistent(c, "short").session_present is False
        assert c.silent(0.5)
    with Raw(port) as c:
        assert c.connect("none", clean_start=False).session_present is False
    with Raw(port) as c:
        assert _persistent(c, "long").session_present is True
        assert c.next().payload == b"drip"
        c.send(m.Ack(m.PUBACK, 1))
    with Raw(port) as c:
        assert _persistent(c, "long", clean=True).session_present is False
        assert c.silent(0.5)


def test_v5_disconnect_changes_the_session_expiry(broker):
    """5.0 §3.14.2.2.2: DISCONNECT may set the Session Expiry Interval (0: the session ends
    now), but not when CONNECT had 0: that is a protocol error [MQTT-3.14.2-2]."""
    port = broker.mqtt_port
    with Raw(port) as c:
        assert _persistent(c, "ender").reason == 0
        assert c.subscribe(1, m.Subscription("fans/#", 1)).reasons == [1]
        c.send(m.Disconnect(0, {"session_expiry_interval": 0}))
    time.sleep(0.3)
    with Raw(port) as c:
        assert _persistent(c, "ender").session_present is False
    with Raw(port) as c:
        assert c.connect("zero").reason == 0
        c.send(m.Disconnect(0, {"session_expiry_interval": 30}))
        got = c.next()
        assert isinstance(got, m.Disconnect) and got.reason == m.PROTOCOL_ERROR


def test_takeover_with_clean_start_0_keeps_the_session(broker):
    """5.0 §3.1.4 (takeover) with Clean Start 0: the new connection continues the session,
    session present 1, and gets the old connection's unacknowledged message again."""
    port = broker.mqtt_port
    with Raw(port) as old:
        assert _persistent(old, "moving").session_present is False
        assert old.subscribe(1, m.Subscription("carts/#", 1)).reasons == [1]
        _publish(port, _q1("carts/9", b"load", 1))
        assert old.next().payload == b"load"
        with Raw(port) as new:
            assert _persistent(new, "moving").session_present is True
            got = new.next()
            assert (got.payload, got.dup) == (b"load", True)


@pytest.mark.parametrize("crash", [False, True])
def test_persistent_session_survives_a_broker_restart(tmp_path, crash):
    """What the broker's store holds survives a restart (kill -9 too): the session and its
    subscription (SUBACK came after the commit), the message delivered and not acknowledged
    before, and what was published after the restart; session present 1."""
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", "127.0.0.1:0"]).start()
    try:
        with Raw(mqtt_port(proc)) as c:
            assert _persistent(c, "survivor").session_present is False
            assert c.subscribe(1, m.Subscription("silos/#", 1)).reasons == [1]
            _publish(mqtt_port(proc), _q1("silos/a", b"before", 1))
            assert c.next().payload == b"before"  # not acknowledged
            proc.restart(crash=crash)
        port = mqtt_port(proc)
        _publish(port, _q1("silos/b", b"after", 1))
        with Raw(port) as c:
            assert _persistent(c, "survivor").session_present is True
            got = [c.next(), c.next()]
            assert [g.payload for g in got] == [b"before", b"after"]
            c.send(*[m.Ack(m.PUBACK, g.packet_id) for g in got])
            assert c.silent(0.5)
        with Raw(port) as c:  # a clean start ends it, in the store too
            assert _persistent(c, "survivor", expiry=0, clean=True).session_present is False
        proc.restart(crash=crash)
        with Raw(mqtt_port(proc)) as c:
            assert _persistent(c, "survivor").session_present is False
    finally:
        proc.stop()


def test_paho_v5_resumes_its_session_with_clean_start_0(broker):
    """paho v5 with Clean Start 0 and a Session Expiry Interval (§3.1.2.11.2): the second
    CONNECT gets session present and the QoS 1 message published while it was away."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    port = broker.mqtt_port
    flags: list[bool] = []
    got: list[bytes] = []
    subacks: list[int] = []

    def session() -> paho.Client:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="paho-v5-keeper",
                        protocol=paho.MQTTv5)  # fmt: skip
        c.on_connect = lambda c, u, f, rc, p: flags.append(f.session_present)
        c.on_message = lambda c, u, msg: got.append(msg.payload)
        c.on_subscribe = lambda c, u, mid, rcs, p: subacks.append(mid)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        c.connect("127.0.0.1", port, clean_start=False, properties=props)
        c.loop_start()
        _wait(lambda: flags, "CONNACK")
        return c

    c = session()
    c.subscribe("ovens/#", 1)
    _wait(lambda: subacks, "SUBACK")
    c.disconnect()
    c.loop_stop()
    flags.clear()
    _publish(port, _q1("ovens/1", b"hot", 1))
    c = session()
    try:
        _wait(lambda: got, "the queued message")
        assert flags == [True] and got == [b"hot"]
    finally:
        c.disconnect()
        c.loop_stop()


def test_mosquitto_sub_persistent_session(broker):
    """Debian's mosquitto_sub -c (clean session 0, 3.1.1): a message published while it is
    away is delivered when it comes back with the same client id."""
    import subprocess

    port = str(broker.mqtt_port)
    args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-i", "mos-keeper", "-c",
            "-q", "1", "-t", "lamps/#", "-v"]  # fmt: skip
    first = subprocess.run([*args, "-E"], capture_output=True, text=True, timeout=20)
    assert first.returncode == 0, first.stderr  # -E: gone once the SUBACK came
    _publish(broker.mqtt_port, _q1("lamps/hall", b"on", 1))
    again = subprocess.run([*args, "-C", "1", "-W", "10"], capture_output=True, text=True,
                           timeout=20)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "lamps/hall on"


def test_a_session_belongs_to_its_user(secured):
    """A client id is not a credential: another user connecting with the client id of a
    session (to resume, end or take it over) gets CONNACK not authorized (0x87; 3.1.1: 5),
    so it cannot receive what the subscriptions, checked for the owner, deliver."""
    from .conftest import PASSWORDS

    port = secured.mqtt_port
    sensor = {"username": "sensor", "password": PASSWORDS["sensor"].encode()}
    reader = {"username": "reader", "password": PASSWORDS["reader"].encode()}
    with Raw(port) as s:  # the topic exists once the sensor (its admin) published
        assert s.connect("sensor-1", **sensor).reason == 0
        s.send(_q1("sensors/t", b"first", 1))
        assert s.next() == m.Ack(m.PUBACK, 1)
    for version, refused in ((m.V5, m.NOT_AUTHORIZED), (m.V311, m.V3_NOT_AUTHORIZED)):
        client_id = f"reader-{version}"
        with Raw(port, version) as r:
            assert r.connect(client_id, clean_start=False, **reader,
                             properties={"session_expiry_interval": 300}).reason == 0  # fmt: skip
            assert r.subscribe(1, m.Subscription("sensors/#", 1)).reasons == [1]
        with Raw(port, version) as other:
            got = other.connect(client_id, clean_start=False, **sensor)
            assert (got.reason, got.session_present) == (refused, False)
        with Raw(port, version) as r:
            again = r.connect(client_id, clean_start=False, **reader,
                              properties={"session_expiry_interval": 300})  # fmt: skip
            assert (again.reason, again.session_present) == (0, True)
