"""MQTT 5.0 options: No Local (§3.8.3.1), Subscription Identifiers (§3.8.2.1.2, §3.3.2.3.8),
Topic Aliases both ways (§3.3.2.3.4), Will Delay Interval (§3.1.3.2.2), Message Expiry
Interval on delivery (§3.3.2.3.3)."""

from __future__ import annotations

import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tidings.server.mqtt import codec as m

from .raw import Raw


def test_paho_no_local_subscription_does_not_get_its_own_messages(broker, clients):
    """§3.8.3.1 No Local: messages are not forwarded to a connection with the client id
    that published them [MQTT-3.8.3-3]; another client's are."""
    me = clients(broker.mqtt_port, "5.0", "talker")
    assert me.connect() == 0
    me.c.subscribe("chat/#", options=SubscribeOptions(qos=1, noLocal=True))
    me.subacks.get(timeout=10)
    me.c.publish("chat/room", b"mine", qos=1).wait_for_publish(10)
    other = clients(broker.mqtt_port, "5.0", "listener-2")
    assert other.connect() == 0
    other.c.publish("chat/room", b"theirs", qos=1).wait_for_publish(10)
    assert me.next().payload == b"theirs"
    assert me.nothing_more()


def test_no_local_on_a_shared_subscription_is_a_protocol_error(broker):
    """[MQTT-3.8.3-4]: No Local set on a shared subscription is a protocol error."""
    with Raw(broker.mqtt_port) as c:
        assert c.connect("nl-shared").reason == 0
        c.send(m.Subscribe(1, [m.Subscription("$share/g/chat/#", 1, no_local=True)]))
        got = c.next()
        assert isinstance(got, m.Disconnect) and got.reason == m.PROTOCOL_ERROR


def test_subscription_identifiers_come_with_each_matching_subscription(broker):
    """§3.8.2.1.2 / §3.3.2.3.8: CONNACK says they are available; a PUBLISH to the client
    carries the identifier of the subscription it is sent for (overlapping subscriptions:
    one PUBLISH each, with its own); a subscription without one gets none."""
    with Raw(broker.mqtt_port) as c:
        connack = c.connect("ids")
        assert connack.properties.get("subscription_identifier_available") == 1
        c.send(m.Subscribe(1, [m.Subscription("ids/#", 1)], {"subscription_identifier": 7}))
        assert c.next() == m.Suback(1, [1])
        c.send(m.Subscribe(2, [m.Subscription("ids/a", 1)], {"subscription_identifier": 9}))
        assert c.next() == m.Suback(2, [1])
        assert c.subscribe(3, m.Subscription("ids/+", 0)).reasons == [0]
        with Raw(broker.mqtt_port) as p:
            assert p.connect("ids-pub").reason == 0
            p.send(m.Publish("ids/a", b"x", qos=1, packet_id=1))
            assert p.next() == m.Ack(m.PUBACK, 1)
        got = [c.next(), c.next(), c.next()]
        for g in got:
            if g.qos:
                c.send(m.Ack(m.PUBACK, g.packet_id))
        ids = sorted(g.properties.get("subscription_identifier", [0]) for g in got)
        assert ids == [[0], [7], [9]]


def test_topic_aliases_from_the_client(broker):
    """§3.3.2.3.4: CONNACK announces a Topic Alias Maximum; a PUBLISH with topic and alias
    sets it, one with an empty topic uses it; an alias above the maximum is DISCONNECT 0x94
    [MQTT-3.3.2-9], an unknown alias with an empty topic a protocol error."""
    port = broker.mqtt_port
    with Raw(port) as sub, Raw(port) as c:
        assert sub.connect("alias-sub").reason == 0
        assert sub.subscribe(1, m.Subscription("alias/#", 0)).reasons == [0]
        maximum = c.connect("aliaser").properties["topic_alias_maximum"]
        assert maximum >= 1
        c.send(m.Publish("alias/long/topic", b"1", qos=1, packet_id=1,
                         properties={"topic_alias": 1}))  # fmt: skip
        c.send(m.Publish("", b"2", qos=1, packet_id=2, properties={"topic_alias": 1}))
        assert c.take(2) == [m.Ack(m.PUBACK, 1), m.Ack(m.PUBACK, 2)]
        got = [sub.next(), sub.next()]
        assert [(g.topic, g.payload) for g in got] == [
            ("alias/long/topic", b"1"),
            ("alias/long/topic", b"2"),
        ]
        c.send(m.Publish("alias/x", b"3", properties={"topic_alias": maximum + 1}))
        bye = c.next()
        assert isinstance(bye, m.Disconnect) and bye.reason == 0x94
    with Raw(port) as c:
        assert c.connect("aliaser-2").reason == 0
        c.send(m.Publish("", b"4", properties={"topic_alias": 2}))
        bye = c.next()
        assert isinstance(bye, m.Disconnect) and bye.reason == m.PROTOCOL_ERROR


def test_topic_aliases_to_the_client_up_to_its_maximum(broker):
    """§3.3.2.3.4: the server sends aliases only up to the client's Topic Alias Maximum
    [MQTT-3.3.2-10/-11]: the first PUBLISH of a topic sets one, the next use it."""
    port = broker.mqtt_port
    with Raw(port) as c:
        assert c.connect("takes-aliases", properties={"topic_alias_maximum": 1}).reason == 0
        assert c.subscribe(1, m.Subscription("feed/#", 0)).reasons == [0]
        with Raw(port) as p:
            assert p.connect("feeder").reason == 0
            for i, topic in enumerate(["feed/a", "feed/a", "feed/b"]):
                p.send(m.Publish(topic, b"%d" % i, qos=1, packet_id=i + 1))
                assert p.next() == m.Ack(m.PUBACK, i + 1)
        got = c.take(3)
        assert [(g.topic, g.properties.get("topic_alias")) for g in got] == [
            ("feed/a", 1),
            ("", 1),
            ("feed/b", None),  # the one alias is taken
        ]


def test_paho_publishes_with_a_topic_alias(broker, clients):
    """paho v5 sets an alias with its first PUBLISH and then sends an empty topic with it
    (§3.3.2.3.4); the subscriber gets the full topic both times. (Neither paho-mqtt nor
    libmosquitto take aliases from a server: a client that sends no Topic Alias Maximum gets
    none, so only the raw test above covers that direction.)"""
    sub = clients(broker.mqtt_port, "5.0", "alias-reader")
    assert sub.connect() == 0
    sub.subscribe("pahoalias/#", 1)
    pub = clients(broker.mqtt_port, "5.0", "alias-writer")
    assert pub.connect() == 0
    for topic, payload in (("pahoalias/x/y", b"1"), ("", b"2")):
        props = Properties(PacketTypes.PUBLISH)
        props.TopicAlias = 1
        pub.c.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)
    got = [sub.next(), sub.next()]
    assert [(g.topic, g.payload) for g in got] == [("pahoalias/x/y", b"1"), ("pahoalias/x/y", b"2")]


def _will_client(port: int, client_id: str, delay: int, expiry: int) -> Raw:
    c = Raw(port)
    will = m.Will("wills/" + client_id, b"gone", 1, False, {"will_delay_interval": delay})
    props = {"session_expiry_interval": expiry} if expiry else {}
    assert c.connect(client_id, clean_start=False, will=will, properties=props).reason == 0
    return c


def test_will_delay_interval(broker):
    """§3.1.3.2.2: the will is published after the Will Delay Interval, or when the session
    ends if that is sooner [MQTT-3.1.3-9]; not at all if the session resumes before
    [MQTT-3.1.3-10]."""
    port = broker.mqtt_port
    with Raw(port) as watcher:
        assert watcher.connect("watcher").reason == 0
        assert watcher.subscribe(1, m.Subscription("wills/#", 0)).reasons == [0]
        late = _will_client(port, "late", delay=3, expiry=60)
        back = _will_client(port, "back", delay=3, expiry=60)
        now = _will_client(port, "now", delay=30, expiry=0)  # the session ends: at once
        started = time.monotonic()
        for c in (late, back, now):
            c.close()  # gone without DISCONNECT
        first = watcher.next()
        assert first.topic == "wills/now"  # before the 3 s wills: not delayed by its 30 s
        with Raw(port) as again:  # resumes before the delay: no will
            assert again.connect(
                "back", clean_start=False, properties={"session_expiry_interval": 60}
            ).session_present
            late_will = watcher.next()
            assert late_will.topic == "wills/late" and time.monotonic() - started >= 2.9
            assert watcher.silent(1.5)


def test_message_expiry_interval_is_the_time_left_on_delivery(broker):
    """§3.3.2.3.3: a PUBLISH to a client carries the expiry interval minus the time the
    message waited [MQTT-3.3.2-6]; an expired retained message is not sent."""
    port = broker.mqtt_port
    with Raw(port) as p:
        assert p.connect("expirer").reason == 0
        p.send(m.Publish("milk/fresh", b"a", qos=1, retain=True, packet_id=1,
                         properties={"message_expiry_interval": 60}))  # fmt: skip
        p.send(m.Publish("milk/sour", b"b", qos=1, retain=True, packet_id=2,
                         properties={"message_expiry_interval": 1}))  # fmt: skip
        assert p.take(2) == [m.Ack(m.PUBACK, 1), m.Ack(m.PUBACK, 2)]
    time.sleep(2.2)
    with Raw(port) as c:
        assert c.connect("drinker").reason == 0
        assert c.subscribe(1, m.Subscription("milk/#", 0)).reasons == [0]
        got = c.next()
        assert (got.topic, got.retain) == ("milk/fresh", True)
        assert 50 <= got.properties["message_expiry_interval"] <= 58
        assert c.silent(0.5)  # milk/sour expired
