"""QoS 2 both ways (MQTT 5.0 §4.3.3, 3.1.1 §4.3.3): PUBREC after the durable commit, a
resent PUBLISH not stored twice (also after kill -9), PUBREL/PUBCOMP, QoS 2 to subscribers."""

from __future__ import annotations

import asyncio
import socket

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.model import GroupSpec, Outgoing
from tidings.server.mqtt import codec as m
from tidings.transports.tidings import NativeTransport

from .conftest import mqtt_port
from .raw import Raw


async def stored(url: str, topic: str, n: int) -> list[bytes]:
    """The bodies of exactly ``n`` messages of ``topic`` from its start (and no more)."""
    t = NativeTransport(url, timeout=10.0)
    await t.connect()
    try:
        sub = await t.subscribe(GroupSpec(topic=topic, name="count", start="earliest"))
        got = []
        for _ in range(n):
            msg = await sub.next(timeout=10)
            assert msg is not None, f"only {len(got)} of {n} messages stored"
            got.append(msg.body)
            await msg.ack()
        extra = await sub.next(timeout=1.0)
        assert extra is None, f"a message more than {n}: {extra.body!r}"
        return got
    finally:
        await t.close()


async def publish(url: str, topic: str, body: bytes, key: str | None = None) -> None:
    t = NativeTransport(url, timeout=10.0)
    await t.connect()
    try:
        await t.publish(topic, [Outgoing(body, key=key)])
    finally:
        await t.close()


@pytest.mark.parametrize("version", ["3.1.1", "5.0"])
def test_paho_qos2_publish_reaches_a_qos2_subscriber_once(broker, clients, version):
    """§4.3.3: the whole PUBLISH/PUBREC/PUBREL/PUBCOMP exchange both ways with paho; the
    subscriber is granted QoS 2 (§3.9.3) and receives the message at QoS 2 exactly once."""
    sub = clients(broker.mqtt_port, version, "qos2-sub")
    assert sub.connect() == 0
    assert [int(getattr(rc, "value", rc)) for rc in sub.subscribe("meters/#", 2)] == [2]
    pub = clients(broker.mqtt_port, version, "qos2-pub")
    assert pub.connect() == 0
    info = pub.c.publish("meters/hall/kwh", b"42", qos=2)
    info.wait_for_publish(10)  # PUBCOMP received
    assert info.is_published()
    msg = sub.next()
    assert (msg.topic, msg.payload, msg.qos) == ("meters/hall/kwh", b"42", 2)
    assert sub.nothing_more()


def test_a_resent_qos2_publish_is_answered_and_not_stored_twice(broker):
    """§4.3.3 (receiver, method B): until PUBREL the packet id stays taken, a PUBLISH with it
    again gets PUBREC and is not stored; PUBREL gets PUBCOMP, a PUBREL for a released id
    PUBCOMP 0x92 (§3.7.2.1); after the release the same packet id is a new message."""
    with Raw(broker.mqtt_port) as c:
        assert c.connect("resender").reason == 0
        first = m.Publish("dials/a", b"7", qos=2, packet_id=7)
        c.send(first)
        assert c.next() == m.Ack(m.PUBREC, 7)
        c.send(m.Publish("dials/a", b"7", qos=2, dup=True, packet_id=7))
        assert c.next() == m.Ack(m.PUBREC, 7)
        c.send(m.Ack(m.PUBREL, 7))
        assert c.next() == m.Ack(m.PUBCOMP, 7)
        c.send(m.Ack(m.PUBREL, 7))
        assert c.next() == m.Ack(m.PUBCOMP, 7, m.PACKET_ID_NOT_FOUND)
        c.send(first)  # the same reading again with the packet id reused: a new message
        assert c.next() == m.Ack(m.PUBREC, 7)
        c.send(m.Ack(m.PUBREL, 7))
        assert c.next() == m.Ack(m.PUBCOMP, 7)
    assert asyncio.run(stored(broker.url, "dials", 2)) == [b"7", b"7"]


def test_qos2_delivery_is_settled_at_pubrec_and_released_with_pubrel(broker):
    """§4.3.3 (sender): PUBLISH QoS 2, the client's PUBREC is answered with PUBREL (same
    packet id), PUBCOMP ends it; once PUBREC came, the message is not sent again, also not to
    a new connection of the group (it was acknowledged there)."""
    with Raw(broker.mqtt_port) as c:
        assert c.connect("worker-1").reason == 0
        assert c.subscribe(1, m.Subscription("$share/w/jobs/#", 2)).reasons == [2]
        asyncio.run(publish(broker.url, "jobs", b"once", key="x"))
        got = c.next()
        assert isinstance(got, m.Publish)
        assert (got.topic, got.payload, got.qos, got.dup) == ("jobs/x", b"once", 2, False)
        c.send(m.Ack(m.PUBREC, got.packet_id))
        assert c.next() == m.Ack(m.PUBREL, got.packet_id)
        # gone before PUBCOMP: the message was the client's from PUBREC on
    with Raw(broker.mqtt_port) as c:
        assert c.connect("worker-2").reason == 0
        assert c.subscribe(1, m.Subscription("$share/w/jobs/#", 2)).reasons == [2]
        assert c.silent(1.0)


def test_delivered_qos_is_the_lesser_of_published_and_granted(broker):
    """§3.8.4 (5.0) / §3.3.5 (3.1.1): published at QoS 1, delivered at QoS 1 to a QoS 2
    subscription; published at QoS 2, delivered at QoS 1 to a QoS 1 subscription."""
    with Raw(broker.mqtt_port) as two, Raw(broker.mqtt_port) as one, Raw(broker.mqtt_port) as p:
        assert two.connect("two").reason == 0 and one.connect("one").reason == 0
        assert two.subscribe(1, m.Subscription("levels/#", 2)).reasons == [2]
        assert one.subscribe(1, m.Subscription("levels/#", 1)).reasons == [1]
        assert p.connect("pub").reason == 0
        p.send(m.Publish("levels/q1", b"a", qos=1, packet_id=1))
        assert p.next() == m.Ack(m.PUBACK, 1)
        p.send(m.Publish("levels/q2", b"b", qos=2, packet_id=2))
        assert p.next() == m.Ack(m.PUBREC, 2)
        got_two = [two.next(), two.next()]
        got_one = [one.next(), one.next()]
        assert [(g.topic, g.qos) for g in got_two] == [("levels/q1", 1), ("levels/q2", 2)]
        assert [(g.topic, g.qos) for g in got_one] == [("levels/q1", 1), ("levels/q2", 1)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_acknowledged_qos2_publishes_survive_kill_9_and_resends_are_not_stored_twice(
    tmp_path,
):
    """§4.3.3 across a crash: 40 QoS 2 messages PUBREC'd (so committed), the broker killed
    with SIGKILL before any PUBREL; the client connects again and resends all of them with
    DUP set (§3.3.1.1, §4.4), as paho does with a clean session: each is answered with PUBREC
    and none is stored a second time; the PUBRELs then complete."""
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", "127.0.0.1:0"]).start()
    try:
        messages = [m.Publish(f"tallies/{i % 4}", b"%d" % i, qos=2, packet_id=i + 1)
                    for i in range(40)]  # fmt: skip
        with Raw(mqtt_port(proc)) as c:
            assert c.connect("counter").reason == 0
            c.send(*messages)
            assert c.take(40) == [m.Ack(m.PUBREC, i + 1) for i in range(40)]
            proc.kill()  # SIGKILL: no shutdown, no final flush
        proc.start()
        with Raw(mqtt_port(proc)) as c:
            assert c.connect("counter").reason == 0
            for p in messages:
                p.dup = True
            c.send(*messages)
            assert c.take(40) == [m.Ack(m.PUBREC, i + 1) for i in range(40)]
            c.send(*[m.Ack(m.PUBREL, i + 1) for i in range(40)])
            assert {p.packet_id for p in c.take(40)} == set(range(1, 41))
        bodies = await stored(proc.url, "tallies", 40)
        assert sorted(int(b) for b in bodies) == list(range(40))
    finally:
        proc.stop()


async def test_paho_qos2_stream_killed_midway_stores_every_message_once(tmp_path, clients):
    """§4.3.3 with paho (3.1.1, clean session) and SIGKILL in the middle of 150 QoS 2
    publishes: paho reconnects to the restarted broker and resends what it has not
    completed (DUP set); in the end every message is published and stored exactly once."""
    port = _free_port()
    proc = BrokerProcess(tmp_path / "data", args=["--mqtt", f"127.0.0.1:{port}"]).start()
    try:
        pub = clients(port, "3.1.1", "stream")
        pub.c.reconnect_delay_set(0.1, 0.5)
        assert await asyncio.to_thread(pub.connect) == 0
        infos = [pub.c.publish(f"stream/{i % 3}", b"%d" % i, qos=2) for i in range(150)]
        for _ in range(200):  # killed once some (not all) exchanges completed
            if sum(info.is_published() for info in infos) >= 30:
                break
            await asyncio.sleep(0.01)
        proc.kill()
        done_before = sum(info.is_published() for info in infos)
        proc.start()
        for info in infos:
            await asyncio.to_thread(info.wait_for_publish, 20)
        assert all(info.is_published() for info in infos), done_before
        bodies = await stored(proc.url, "stream", 150)
        assert sorted(int(b) for b in bodies) == list(range(150))
    finally:
        proc.stop()
