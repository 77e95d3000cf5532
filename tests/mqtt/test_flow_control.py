"""The client's v5 Receive Maximum bounds the QoS 1/2 PUBLISHes the broker has outstanding to
it over the whole connection (MQTT 5.0 §3.3.4, §4.9), every subscription and every tidings
topic of a first-level wildcard together; what waits is sent, in order, as places free. And
what is outstanding is not sent again while the connection lives (§4.4)."""

from __future__ import annotations

import pytest

from tidings.model import DEFAULT_LEASE
from tidings.server.mqtt import codec as m

from .raw import Raw


def _publish(port: int, messages: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish at ``qos`` (1 or 2) from another client, each stored before the next."""
    with Raw(port) as pub:
        assert pub.connect("flow-publisher").reason == m.SUCCESS
        for pid, (topic, payload) in enumerate(messages, 1):
            pub.send(m.Publish(topic, payload, qos=qos, packet_id=pid))
            ack = pub.next()
            assert isinstance(ack, m.Ack) and ack.packet_id == pid, ack
            assert ack.type == (m.PUBACK if qos == 1 else m.PUBREC), ack
            if qos == 2:
                pub.send(m.Ack(m.PUBREL, pid))
                assert pub.next() == m.Ack(m.PUBCOMP, pid)


def _publishes(client: Raw, n: int) -> list[m.Publish]:
    got = client.take(n)
    assert all(isinstance(p, m.Publish) for p in got), got
    return got  # type: ignore[return-value]


def test_receive_maximum_2_holds_over_two_subscriptions_and_a_wildcard(broker):
    """Receive Maximum 2, subscriptions ``alpha/#`` and ``+/x`` (a member on ``beta`` and one
    on ``gamma``): never more than 2 unacknowledged PUBLISHes, each PUBACK lets exactly one
    more through, and all six arrive."""
    port = broker.mqtt_port
    with Raw(port) as sub:
        connack = sub.connect("flow-2", properties={"receive_maximum": 2})
        assert connack.reason == m.SUCCESS
        suback = sub.subscribe(1, m.Subscription("alpha/#", qos=1), m.Subscription("+/x", qos=1))
        assert suback.reasons == [1, 1]
        sent = [(f"{t}/{'x' if t != 'alpha' else i}", f"{t}-{i}".encode())
                for i in range(2) for t in ("alpha", "beta", "gamma")]  # fmt: skip
        _publish(port, sent)
        outstanding = {p.packet_id: p for p in _publishes(sub, 2)}
        assert sub.silent(), "a third PUBLISH before any PUBACK"
        received = [p.payload for p in outstanding.values()]
        while len(received) < len(sent):
            pid = min(outstanding)  # type: ignore[type-var]
            sub.send(m.Ack(m.PUBACK, pid))  # type: ignore[arg-type]
            del outstanding[pid]
            [more] = _publishes(sub, 1)
            outstanding[more.packet_id] = more
            received.append(more.payload)
            assert len(outstanding) == 2
            assert sub.silent(0.2), "more than one PUBLISH for one PUBACK"
        assert sorted(received) == sorted(payload for _, payload in sent)
        for pid in list(outstanding):
            sub.send(m.Ack(m.PUBACK, pid))  # type: ignore[arg-type]
        assert sub.silent()


def test_a_qos_2_delivery_holds_its_place_until_pubcomp(broker):
    """Receive Maximum 1 over two QoS 2 subscriptions: PUBREC does not free the place (the
    broker answers PUBREL and sends nothing else), PUBCOMP does."""
    port = broker.mqtt_port
    with Raw(port) as sub:
        assert sub.connect("flow-1", properties={"receive_maximum": 1}).reason == m.SUCCESS
        suback = sub.subscribe(1, m.Subscription("alpha/#", qos=2), m.Subscription("beta/#", qos=2))
        assert suback.reasons == [2, 2]
        _publish(port, [("alpha/1", b"a"), ("beta/1", b"b")], qos=2)
        received = []
        for _ in range(2):
            [publish] = _publishes(sub, 1)
            assert publish.qos == 2
            received.append(publish.payload)
            assert sub.silent(), "a second PUBLISH while one is outstanding"
            sub.send(m.Ack(m.PUBREC, publish.packet_id))  # type: ignore[arg-type]
            pubrel = sub.next()
            assert isinstance(pubrel, m.Ack) and pubrel.type == m.PUBREL, pubrel
            assert sub.silent(), "a PUBLISH after PUBREC, before PUBCOMP"
            sub.send(m.Ack(m.PUBCOMP, publish.packet_id))  # type: ignore[arg-type]
        assert sorted(received) == [b"a", b"b"]
        assert sub.silent()


def test_the_disconnect_for_too_many_publishes_reaches_a_client_that_keeps_writing(broker):
    """1001 unreleased QoS 2 publishes (the broker's Receive Maximum is 1000), then, as the
    Eclipse suite's test_flow_control2 does, a PUBREL for each PUBREC read, and more after
    the DISCONNECT (a client that has not looked yet): the client reads DISCONNECT 0x93,
    then the end of the stream. Its writes after the broker's close neither reset the
    connection (a lingering close) nor are acted on."""
    with Raw(broker.mqtt_port) as client:
        connack = client.connect("flow-writer")
        assert connack.properties["receive_maximum"] == 1000
        qos2 = [m.Publish("sensors/q2", b"y", qos=2, packet_id=i) for i in range(1, 1002)]
        client.send(*qos2)
        while True:
            packet = client.next()  # a reset would raise ConnectionResetError here
            if isinstance(packet, m.Disconnect):
                break
            assert isinstance(packet, m.Ack) and packet.type == m.PUBREC, packet
            client.send(m.Ack(m.PUBREL, packet.packet_id))
        assert packet.reason == m.RECEIVE_MAXIMUM_EXCEEDED
        for pid in range(1, 101):  # still writing
            client.send(m.Ack(m.PUBREL, pid))
        client.sock.settimeout(10)
        assert client.sock.recv(65536) == b""  # the end, no PUBCOMP: nothing was acted on


@pytest.mark.slow
def test_an_unacknowledged_delivery_is_not_sent_again_while_connected(broker):
    """MQTT 5.0 §4.4: a PUBLISH is sent again only when the session resumes. A client that
    holds its PUBACK past the default group lease (30 s) gets no second copy; its late
    PUBACK settles the message (nothing follows)."""
    port = broker.mqtt_port
    with Raw(port) as sub:
        assert sub.connect("slow-acker").reason == m.SUCCESS
        assert sub.subscribe(1, m.Subscription("alpha/#", qos=1)).reasons == [1]
        _publish(port, [("alpha/1", b"once")])
        [first] = _publishes(sub, 1)
        assert sub.silent(DEFAULT_LEASE + 3), "sent again while the connection lives"
        sub.send(m.Ack(m.PUBACK, first.packet_id))  # type: ignore[arg-type]
        assert sub.silent(1)
