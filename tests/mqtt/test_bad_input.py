"""Bad input on the MQTT port, byte for byte: the reason code the client is owed, or a clean
close, and the broker serves the next client."""

from __future__ import annotations

import socket
import time

import pytest

from tidings.server.mqtt import codec as m

from .conftest import PASSWORDS


def _open(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _read_all(sock: socket.socket, version: int = m.V5) -> list[m.Packet]:
    """Every packet the server sends until it closes the connection."""
    sock.settimeout(10)
    decoder = m.PacketDecoder(server=False)
    decoder.version = version
    packets: list[m.Packet] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return packets
        packets += decoder.feed(data)


def _connect(
    sock: socket.socket, version: int = m.V5, client_id: str = "raw", **fields
) -> m.Packet:
    sock.sendall(m.encode(m.Connect(client_id, version, **fields), version))
    decoder = m.PacketDecoder(server=False)
    decoder.version = version
    packets: list[m.Packet] = []
    while not packets:
        packets = decoder.feed(sock.recv(65536))
    return packets[0]


def _still_serving(port: int) -> None:
    with _open(port) as sock:
        assert _connect(sock).reason == m.SUCCESS


GARBAGE = [
    (b"\x30\x04\x00\x01+\x00", m.TOPIC_NAME_INVALID),  # a wildcard in a topic name
    (b"\x82\x05\x00\x01\x00\x00\x01", m.MALFORMED),  # cut inside a filter
    (b"\x36\x03\x00\x01a", m.MALFORMED),  # QoS 3
    (b"\x10\x02\x00\x00", m.PROTOCOL_ERROR),  # a second CONNECT
    (b"\x30\xff\xff\xff\xff\x01", m.MALFORMED),  # a 5-byte remaining length
    (b"\x30\xff\xff\xff\x7f", m.PACKET_TOO_LARGE),  # 256 MiB announced
]


@pytest.mark.parametrize(("garbage", "reason"), GARBAGE)
def test_v5_malformed_packets_get_disconnect_with_the_reason(broker, garbage, reason):
    with _open(broker.mqtt_port) as sock:
        assert _connect(sock).reason == m.SUCCESS
        sock.sendall(garbage)
        assert _read_all(sock) == [m.Disconnect(reason, _any())]
    _still_serving(broker.mqtt_port)


class _any(dict):  # compares equal to any properties (the reason string is for people)
    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict)


def test_v311_malformed_packet_closes_cleanly(broker):
    with _open(broker.mqtt_port) as sock:
        assert _connect(sock, m.V311).reason == 0
        sock.sendall(b"\x30\x04\x00\x01#\x00")
        assert _read_all(sock) == []  # 3.1.1 has no DISCONNECT from the server: a close
    _still_serving(broker.mqtt_port)


def test_unsupported_protocol_level_gets_the_v311_code(broker):
    with _open(broker.mqtt_port) as sock:
        sock.sendall(b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x3c\x00\x00")  # level 3 (MQTT 3.1)
        assert _read_all(sock, m.V311) == [m.Connack(m.V3_UNACCEPTABLE_VERSION)]


def test_first_packet_not_connect_closes(broker):
    with _open(broker.mqtt_port) as sock:
        sock.sendall(m.encode(m.Pingreq()))
        assert _read_all(sock) == []


@pytest.mark.parametrize(("version", "code"), [(m.V311, 4), (m.V5, m.BAD_USER_OR_PASSWORD)])
def test_wrong_password_on_the_wire(secured, version, code):
    with _open(secured.mqtt_port) as sock:
        connack = _connect(sock, version, username="sensor", password=b"nope")
        assert connack.reason == code
        assert _read_all(sock, version) == []
    with _open(secured.mqtt_port) as sock:
        assert _connect(sock, version, username="sensor", password=b"").reason == code
    with _open(secured.mqtt_port) as sock:
        ok = _connect(sock, version, username="sensor", password=PASSWORDS["sensor"].encode())
        assert ok.reason == 0


def test_v5_forbidden_publish_gets_puback_not_authorized(secured):
    with _open(secured.mqtt_port) as sock:
        pw = PASSWORDS["reader"].encode()
        assert _connect(sock, username="reader", password=pw).reason == 0
        sock.sendall(m.encode(m.Publish("sensors/x", b"no", 1, packet_id=9)))
        sock.sendall(m.encode(m.Disconnect()))
        [ack] = _read_all(sock)
        assert (ack.type, ack.packet_id, ack.reason) == (m.PUBACK, 9, m.NOT_AUTHORIZED)
        assert "may not publish" in ack.properties["reason_string"]


def test_request_problem_information_0_gets_no_reason_string_on_a_puback(secured):
    """MQTT 5.0 §3.1.2.11.7 [MQTT-3.1.2-29]: a Reason String only on CONNACK, DISCONNECT and
    PUBLISH then."""
    with _open(secured.mqtt_port) as sock:
        pw = PASSWORDS["reader"].encode()
        props = {"request_problem_information": 0}
        assert _connect(sock, username="reader", password=pw, properties=props).reason == 0
        sock.sendall(m.encode(m.Publish("sensors/x", b"no", 1, packet_id=9)))
        sock.sendall(m.encode(m.Disconnect()))
        [ack] = _read_all(sock)
        assert (ack.type, ack.packet_id, ack.reason) == (m.PUBACK, 9, m.NOT_AUTHORIZED)
        assert ack.properties == {}


def test_keep_alive_closes_a_silent_client_after_one_and_a_half_times(broker):
    with _open(broker.mqtt_port) as sock:
        began = time.monotonic()
        assert _connect(sock, keep_alive=1).reason == 0
        assert _read_all(sock) == [m.Disconnect(m.KEEP_ALIVE_TIMEOUT, _any())]
        silent = time.monotonic() - began
    assert 1.5 <= silent < 6


def test_keep_alive_is_kept_by_pings(broker):
    with _open(broker.mqtt_port) as sock:
        assert _connect(sock, keep_alive=1).reason == 0
        for _ in range(4):
            time.sleep(0.5)
            sock.sendall(m.encode(m.Pingreq()))
        sock.settimeout(5)
        assert sock.recv(100).startswith(bytes([m.PINGRESP << 4, 0]))


_unread: dict[m.PacketDecoder, list[m.Packet]] = {}  # packets that came in the same recv


def _read_packet(sock: socket.socket, decoder: m.PacketDecoder) -> m.Packet:
    """The next packet; one recv may carry several (SUBACK and a PUBLISH right after it):
    the rest wait for the next call instead of being dropped."""
    backlog = _unread.setdefault(decoder, [])
    sock.settimeout(10)
    while not backlog:
        backlog.extend(decoder.feed(sock.recv(65536)))
    return backlog.pop(0)


def test_an_unacknowledged_qos1_delivery_goes_to_the_next_member_of_its_group(broker):
    def member(name: str) -> tuple[socket.socket, m.PacketDecoder]:
        sock = _open(broker.mqtt_port)
        assert _connect(sock, client_id=name).reason == 0
        sock.sendall(m.encode(m.Subscribe(1, [m.Subscription("$share/workers/jobs/#", 1)])))
        decoder = m.PacketDecoder(server=False)
        decoder.version = m.V5
        assert _read_packet(sock, decoder) == m.Suback(1, [1])
        return sock, decoder

    first, first_decoder = member("first")
    with _open(broker.mqtt_port) as pub:
        assert _connect(pub, client_id="pub").reason == 0
        pub.sendall(m.encode(m.Publish("jobs/1", b"work", 1, packet_id=5)))
        ack = _read_packet(pub, m.PacketDecoder(server=False))
        assert (ack.type, ack.packet_id) == (m.PUBACK, 5)
    delivered = _read_packet(first, first_decoder)
    assert (delivered.topic, delivered.payload, delivered.qos) == ("jobs/1", b"work", 1)
    first.close()  # gone without PUBACK
    second, second_decoder = member("second")
    with second:
        again = _read_packet(second, second_decoder)
        assert (again.topic, again.payload) == ("jobs/1", b"work")
        second.sendall(m.encode(m.Ack(m.PUBACK, again.packet_id)))


def test_mqtt_option_is_validated():
    from tidings.errors import BadRequest
    from tidings.server.config import config_from

    assert config_from(["--memory", "--mqtt", "127.0.0.1:1883"]).mqtt == "127.0.0.1:1883"
    assert config_from(["--memory"], {"TIDINGS_MQTT": "0.0.0.0:1884"}).mqtt == "0.0.0.0:1884"
    assert config_from(["--memory"], {}).mqtt == "off"
    with pytest.raises(BadRequest, match="--mqtt expects host:port"):
        config_from(["--memory", "--mqtt", "1883x"])


def test_a_second_connection_with_the_client_id_takes_over(broker):
    with _open(broker.mqtt_port) as old, _open(broker.mqtt_port) as new:
        assert _connect(old, client_id="same").reason == 0
        assert _connect(new, client_id="same").reason == 0
        assert _read_all(old) == [m.Disconnect(m.SESSION_TAKEN_OVER)]
        new.sendall(m.encode(m.Pingreq()))
        new.settimeout(5)
        assert new.recv(2) == bytes([m.PINGRESP << 4, 0])
