"""The MQTT ports other than plain TCP, and their limits, with paho (a client nobody here wrote):
``--mqtt-tls`` (the broker's --tls-* settings), MQTT over WebSocket on the HTTP port's
``/mqtt``, ``--mqtt-max-connections`` and ``--mqtt-max-packet-size``."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import time
from collections.abc import Iterator

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tests.helpers.broker_process import BrokerProcess
from tests.reliability.certs import make_certs

from tidings.errors import BadRequest
from tidings.server.config import config_from
from tidings.server.mqtt import codec as m

from .conftest import mqtt_port

VERSIONS = ["3.1.1", "5.0"]
MQTTS_LISTENING = re.compile(r"listening on mqtts://([0-9.]+):(\d+)")
WS_LISTENING = re.compile(r"MQTT over WebSocket on ws://([0-9.]+):(\d+)/mqtt")


def logged_port(broker: BrokerProcess, pattern: re.Pattern[str]) -> int:
    for line in broker.output:
        found = pattern.search(line)
        if found:
            return int(found.group(2))
    raise AssertionError(f"the broker did not log {pattern.pattern}:\n" + broker.log())


def code(rc: object) -> int:
    return int(getattr(rc, "value", rc))  # type: ignore[call-overload]


def roundtrip(sub, pub, topic: str = "sensors/hall/temp") -> None:
    assert code(sub.subscribe("sensors/#", 1)[0]) == 1
    pub.c.publish(topic, b"21.5", qos=1).wait_for_publish(10)
    msg = sub.next()
    assert (msg.topic, msg.payload) == (topic, b"21.5")


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("mqtt-certs"))


@contextlib.contextmanager
def tls_broker(tmp_path, certs, *extra: str) -> Iterator[BrokerProcess]:
    args = ["--mqtt-tls", "127.0.0.1:0", "--tls-cert", str(certs["server"]),
            "--tls-key", str(certs["server.key"]), *extra]  # fmt: skip
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as proc:
        proc.mqtts_port = logged_port(proc, MQTTS_LISTENING)  # type: ignore[attr-defined]
        yield proc


@pytest.mark.parametrize("version", VERSIONS)
def test_paho_over_tls_trusts_the_broker_and_a_wrong_ca_is_refused(
    tmp_path, certs, clients, version
):
    with tls_broker(tmp_path, certs) as broker:
        port = broker.mqtts_port
        sub, pub = clients(port, version, "sub"), clients(port, version, "pub")
        for c in (sub, pub):
            c.c.tls_set(ca_certs=str(certs["ca"]))
            assert c.connect() == 0
        roundtrip(sub, pub)
        stranger = clients(port, version, "stranger")
        stranger.c.tls_set(ca_certs=str(certs["other-ca"]))  # not the CA that signed the broker
        with pytest.raises(ssl.SSLCertVerificationError):
            stranger.c.connect("127.0.0.1", port)
        assert "mqtts://" in broker.log()


def test_mutual_tls_wants_a_client_certificate_signed_by_the_client_ca(tmp_path, certs, clients):
    with tls_broker(tmp_path, certs, "--tls-client-ca", str(certs["ca"])) as broker:
        port = broker.mqtts_port
        good = clients(port, "5.0", "billing")
        good.c.tls_set(ca_certs=str(certs["ca"]), certfile=str(certs["client"]),
                       keyfile=str(certs["client.key"]))  # fmt: skip
        assert good.connect() == 0
        for name, cert in (("anonymous", None), ("stranger", "stranger")):
            ctx = ssl.create_default_context(cafile=str(certs["ca"]))
            if cert is not None:  # signed by the other CA
                ctx.load_cert_chain(str(certs[cert]), str(certs[f"{cert}.key"]))
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:  # TLS 1.3: the refusal arrives on the first read, after the handshake
                with raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(m.encode(m.Connect(name, m.V5), m.V5))
                    got = tls.recv(64)
            except (ssl.SSLError, ConnectionError):
                got = b""
            assert got == b"", f"{name} got an answer without a valid client certificate"
        assert not good.disconnects.qsize()


def test_mqtt_tls_needs_the_tls_settings():
    with pytest.raises(BadRequest, match="--mqtt-tls needs --tls-cert"):
        config_from(["--memory", "--mqtt-tls", "127.0.0.1:8883"])
    with pytest.raises(BadRequest, match="--mqtt-tls expects host:port"):
        config_from(["--memory", "--mqtt-tls", "8883x", "--tls-cert", "x.pem"])
    with pytest.raises(BadRequest, match="--mqtt-websocket expects a path"):
        config_from(["--memory", "--mqtt-websocket", "mqtt"])
    with pytest.raises(BadRequest, match="--mqtt-max-connections must be at least 1"):
        config_from(["--memory"], {"TIDINGS_MQTT_MAX_CONNECTIONS": "0"})
    with pytest.raises(BadRequest, match="--mqtt-max-packet-size must be from 1024"):
        config_from(["--memory", "--mqtt-max-packet-size", "100"])


# -- WebSocket ---------------------------------------------------------------------------------


@pytest.fixture
def ws_broker(tmp_path):
    args = ["--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as proc:
        proc.mqtt_port = mqtt_port(proc)
        proc.ws_port = logged_port(proc, WS_LISTENING)
        yield proc


@pytest.mark.parametrize("version", VERSIONS)
def test_paho_over_websocket_shares_messages_with_tcp_clients(ws_broker, clients, version):
    ws = clients(ws_broker.ws_port, version, "ws-sub", transport="websockets")
    assert ws.connect() == 0
    tcp = clients(ws_broker.mqtt_port, version, "tcp-pub")
    assert tcp.connect() == 0
    roundtrip(ws, tcp)  # TCP -> WebSocket
    ws_pub = clients(ws_broker.ws_port, version, "ws-pub", transport="websockets")
    assert ws_pub.connect() == 0
    ws_pub.c.publish("sensors/door", b"open", qos=1).wait_for_publish(10)  # WebSocket -> WS
    assert ws.next().payload == b"open"


def test_a_websocket_without_the_mqtt_subprotocol_is_refused(ws_broker):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{ws_broker.ws_port}/mqtt"
    with pytest.raises(InvalidStatus):
        connect(url, open_timeout=10).close()
    with connect(url, subprotocols=["mqtt"], open_timeout=10) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "mqtt"
        ws.send(m.encode(m.Connect("raw-ws", m.V5), m.V5))
        assert ws.recv(timeout=10)[:1] == b"\x20"  # CONNACK
    assert "no mqtt subprotocol" in ws_broker.log()


def test_the_websocket_path_is_off_without_mqtt(tmp_path):
    args = ["--http", "127.0.0.1:0"]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as proc:
        assert "MQTT over WebSocket" not in proc.log()


# -- limits ------------------------------------------------------------------------------------


def raw_connack(port: int, version: int, client_id: str) -> bytes:
    """The CONNACK bytes a CONNECT gets (a socket, to see the 3.1.1 code itself)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(m.encode(m.Connect(client_id, version), version))
        data = b""
        while len(data) < 4:
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
        return data


def test_the_connection_limit_answers_quota_exceeded_or_server_unavailable(tmp_path, clients):
    args = ["--mqtt", "127.0.0.1:0", "--mqtt-max-connections", "2"]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as broker:
        port = mqtt_port(broker)
        a, b = clients(port, "5.0", "a"), clients(port, "3.1.1", "b")
        assert a.connect() == 0 and b.connect() == 0
        third = clients(port, "5.0", "c")
        assert code(third.connect()) == m.QUOTA_EXCEEDED
        assert raw_connack(port, m.V311, "d") == b"\x20\x02\x00\x03"  # server unavailable
        again = clients(port, "3.1.1", "b")  # a client id connected already: a takeover
        assert again.connect() == 0
        assert "--mqtt-max-connections" in broker.log()
        a.close()
        deadline = time.monotonic() + 10  # the broker sees the close soon after
        while raw_connack(port, m.V5, "e")[3:4] != b"\x00":
            assert time.monotonic() < deadline, "a session ended but no new one was let in"
            time.sleep(0.1)


def test_the_packet_size_limits_of_both_sides(tmp_path, clients):
    args = ["--mqtt", "127.0.0.1:0", "--mqtt-max-packet-size", "2048"]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as broker:
        port = mqtt_port(broker)
        small = Properties(PacketTypes.CONNECT)
        small.MaximumPacketSize = 1024  # this client takes packets up to 1 KiB
        sub = clients(port, "5.0", "sub")
        assert sub.connect(properties=small) == 0
        assert sub.connack_props.MaximumPacketSize == 2048  # type: ignore[attr-defined]
        assert code(sub.subscribe("sensors/#", 1)[0]) == 1
        pub = clients(port, "5.0", "pub")
        assert pub.connect() == 0
        pub.c.publish("sensors/big", b"x" * 1500, qos=1).wait_for_publish(10)  # > 1 KiB
        pub.c.publish("sensors/small", b"y", qos=1).wait_for_publish(10)
        assert sub.next().topic == "sensors/small"  # the big one was not sent to it
        pub.c.publish("sensors/huge", b"z" * 3000, qos=1)  # > the broker's 2 KiB
        assert code(pub.disconnects.get(timeout=10)) == m.PACKET_TOO_LARGE
        old = clients(port, "3.1.1", "old")
        assert old.connect() == 0
        old.c.publish("sensors/huge", b"z" * 3000, qos=1)
        old.disconnects.get(timeout=10)  # 3.1.1: the connection is closed
        assert sub.nothing_more()


def test_the_receive_maximum_counts_unanswered_qos_1_and_2_only(broker):
    """CONNACK's receive maximum (1000): QoS 0 publishes do not count, however many arrive at
    once; QoS 2 ones count until PUBREL (the Eclipse suite's test_flow_control2)."""
    from .test_bad_input import _connect, _open, _read_all

    burst = b"".join(m.encode(m.Publish("sensors/q0", b"x"), m.V5) for _ in range(1500))
    with _open(broker.mqtt_port) as sock:
        assert _connect(sock, client_id="q0").reason == m.SUCCESS
        sock.sendall(burst + m.encode(m.Pingreq(), m.V5))  # one read: all queued at once
        sock.settimeout(10)
        assert sock.recv(2) == bytes([m.PINGRESP << 4, 0])  # still connected
    with _open(broker.mqtt_port) as sock:
        connack = _connect(sock, client_id="q2")
        assert connack.properties["receive_maximum"] == 1000
        qos2 = [m.Publish("sensors/q2", b"y", qos=2, packet_id=i) for i in range(1, 1002)]
        sock.sendall(b"".join(m.encode(p, m.V5) for p in qos2[:1000]))  # and never a PUBREL
        decoder = m.PacketDecoder(server=False)
        decoder.version = m.V5
        recs: list[m.Packet] = []
        while len(recs) < 1000:  # each answered with PUBREC, held until its PUBREL
            data = sock.recv(65536)
            assert data, "closed before the 1000 PUBRECs"
            recs += decoder.feed(data)
        assert all(isinstance(p, m.Ack) and p.type == m.PUBREC for p in recs)
        sock.sendall(m.encode(qos2[1000], m.V5))  # the 1001st unreleased QoS 2 publish
        got = _read_all(sock)
    assert len(got) == 1 and isinstance(got[0], m.Disconnect)
    assert got[0].reason == m.RECEIVE_MAXIMUM_EXCEEDED


def test_the_max_keep_alive_is_told_to_v5_clients_and_enforced(tmp_path, clients):
    from .test_bad_input import _connect, _open, _read_all

    args = ["--mqtt", "127.0.0.1:0", "--mqtt-max-keep-alive", "1"]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as broker:
        port = mqtt_port(broker)
        v5 = clients(port, "5.0", "asks-120")
        assert v5.connect(keepalive=120) == 0
        assert v5.connack_props.ServerKeepAlive == 1  # type: ignore[attr-defined]
        with _open(port) as sock:  # keep-alive 0 (none) is replaced too, then enforced
            connack = _connect(sock, client_id="silent", keep_alive=0)
            assert connack.properties["server_keep_alive"] == 1
            got = _read_all(sock)  # silent: closed after 1.5 s (the old code: never)
            assert [type(p) for p in got] == [m.Disconnect]
            assert got[0].reason == m.KEEP_ALIVE_TIMEOUT
        with _open(port) as sock:  # within the limit: its own, no Server Keep Alive
            own = _connect(sock, client_id="ok", keep_alive=1)
            assert "server_keep_alive" not in own.properties
    with pytest.raises(BadRequest, match="--mqtt-max-keep-alive must be from 0"):
        config_from(["--memory", "--mqtt-max-keep-alive", "70000"])
