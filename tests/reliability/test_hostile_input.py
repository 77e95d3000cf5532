"""Hostile input over a real connection: every request type gets random payloads (hypothesis).

The broker must answer each bad frame with an ERROR frame (or close that one connection for
an undecodable stream), never crash, and keep serving other clients. Bounded: a few hundred
examples per test. (A slow HELLO: tests/reliability/test_limits.py; a reader that stops
reading: tests/server/test_flow_control.py.)
"""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers.broker_process import BrokerProcess

from tidings.protocol import FrameDecoder, constants, decode_body, frame_bytes, hello, raw_frame
from tidings.protocol import messages as m

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
REQUESTS = sorted(constants.REQUEST_TYPES - {constants.HELLO})

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=64)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=20,
)
reply_names = st.sampled_from(["_reply.", "_reply.x", "_reply.x.1", "_reply..x"]) | st.text(
    max_size=30
).map(lambda s: "_reply." + s)
names = (
    st.sampled_from(["t", "fuzz", "", ".", "a" * 300, "ü-topic", "a/b", "_reply.x.1"])
    | reply_names
    | st.text(max_size=30)
)
headers = st.dictionaries(
    st.text(max_size=20) | st.just("reply-to"),
    st.text(max_size=40) | st.integers(-1000, 1000) | reply_names,
    max_size=4,
)
messages = st.lists(
    st.tuples(
        st.binary(max_size=256) | st.text(max_size=5),
        st.none() | st.text(max_size=20) | ints,
        headers,
        st.none() | st.text(max_size=20),
        st.none() | st.floats() | ints,
        st.none() | st.floats(min_value=-5, max_value=0.5) | st.text(max_size=3),
    ),
    max_size=5,
)
group_specs = st.fixed_dictionaries(
    {"topic": names, "name": names},
    optional={
        "mode": st.sampled_from(["shared", "ordered", "bogus"]),
        "lease": st.floats(),
        "max_deliveries": st.integers(-5, 5),
        "start": st.sampled_from(["earliest", "latest", "offset", "time", "never"]),
        "in_flight_per_partition": st.integers(-1, 3),
        "dead_letter_topic": st.none() | names | st.integers(-3, 3),
        "dead_letter_expired": st.booleans() | st.text(max_size=3),
        "auto_ack": st.booleans(),
    },
)
topic_specs = st.fixed_dictionaries(
    {"name": names},
    optional={
        "partitions": st.integers(-2, 2000),
        "max_messages": st.integers(-1, 10),
        "overflow": st.sampled_from(["reject", "drop-oldest", "nope"]),
        "max_message_size": st.integers(-1, 1 << 40),
        "dedup_window": st.floats(),
    },
)
# payloads shaped like the real ones, with hostile values inside
shaped = {
    constants.PUBLISH: st.tuples(names, messages),
    constants.SUBSCRIBE: st.tuples(group_specs, st.integers(-3, 1 << 40) | st.floats()),
    constants.CREATE_TOPIC: st.tuples(topic_specs, st.booleans()),
    constants.ACK: st.tuples(st.integers(-2, 5), st.lists(ints, max_size=6)),
    constants.NACK: st.tuples(
        st.integers(0, 3),
        st.lists(st.tuples(ints, ints, st.floats(), st.none() | st.text()), max_size=3),
    ),
    constants.CREDIT: st.tuples(st.integers(-2, 5), ints),
    constants.RESET_GROUP: st.tuples(names, names, st.text(max_size=8), st.none() | st.floats()),
    constants.CREATE_REPLY_TOPIC: st.tuples(names | st.integers() | st.none()),
    constants.TOPIC_INFO: st.tuples(reply_names | names),
    constants.LIST_GROUPS: st.tuples(reply_names | names),
}


class SyncClient:
    """A blocking raw client: send one frame, then PING, and collect what came back."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.closes = 0
        self.nonce = 0
        self._open()

    def _open(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=5)
        self.decoder = FrameDecoder(constants.SERVER_TO_CLIENT, constants.MAX_FRAME_SIZE_LIMIT)
        self.sock.sendall(frame_bytes(constants.HELLO, 1, hello("fuzz")))
        assert self._read_until(lambda f: f.type == constants.WELCOME)

    def _read_until(self, done) -> list | None:
        frames = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 16)
            except (ConnectionError, TimeoutError):
                data = b""
            if not data:
                return None
            for frame in self.decoder.feed(data):
                frames.append(frame)
                if done(frame):
                    return frames
        raise AssertionError("the broker stopped answering")

    def exchange(self, data: bytes, rid: int, answered: bool = True) -> list | None:
        """Frames answering ``rid`` (waiting for one if ``answered``; a PING's PONG marks the
        end otherwise); None if the broker closed this connection."""
        self.nonce += 1
        nonce = self.nonce
        ping = frame_bytes(constants.PING, 0xFFFF_FFF0, m.Ping(nonce))
        seen = {"pong": False, "answer": not answered}

        def done(f) -> bool:
            if f.type == constants.PING | constants.REPLY_BIT and decode_body(f).nonce == nonce:
                seen["pong"] = True
            elif f.request_id == rid:
                seen["answer"] = True
            return seen["pong"] and seen["answer"]

        try:
            self.sock.sendall(data + ping)
        except ConnectionError:
            frames = None
        else:
            frames = self._read_until(done)
        if frames is None:
            self.closes += 1
            self.sock.close()
            self._open()
            return None
        return [f for f in frames if f.request_id == rid]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("fuzz"), args=["--heartbeat", "2.0"])
    proc.start()
    yield proc
    assert proc.running(), "the broker died:\n" + proc.log()[-3000:]
    assert proc.stop() == 0
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


@pytest.fixture(scope="module")
def client(broker):
    c = SyncClient(broker.host, broker.port)
    yield c
    c.close()


def _check_answered(client: SyncClient, ftype: int, payload: bytes) -> None:
    rid = 77
    answers = client.exchange(raw_frame(ftype, rid, payload), rid, ftype != constants.CREDIT)
    if answers is None:
        return  # the broker closed this one connection: allowed for undecodable input
    if ftype == constants.CREDIT:
        assert all(f.type == constants.ERROR for f in answers)
        return
    assert len(answers) == 1, answers
    frame = answers[0]
    assert frame.type in (constants.ERROR, ftype | constants.REPLY_BIT), frame
    if frame.type == constants.ERROR:
        error = decode_body(frame)
        assert error.code >= 400 and error.message, error
        assert "internal error" not in error.message, error.message


@FUZZ
@given(ftype=st.sampled_from(REQUESTS), value=values)
def test_random_payloads_for_every_request_type(client, ftype, value):
    import msgspec

    _check_answered(client, ftype, msgspec.msgpack.encode(value))


@FUZZ
@given(data=st.data())
def test_shaped_payloads_with_hostile_values(client, data):
    import msgspec

    ftype = data.draw(st.sampled_from(sorted(shaped)))
    _check_answered(client, ftype, msgspec.msgpack.encode(data.draw(shaped[ftype])))


@FUZZ
@given(payload=st.binary(max_size=200), ftype=st.sampled_from(REQUESTS))
def test_random_bytes_as_payload(client, ftype, payload):
    _check_answered(client, ftype, payload)


@settings(max_examples=60, deadline=None, suppress_health_check=FUZZ.suppress_health_check)
@given(data=st.data())
def test_reply_topic_and_dead_letter_paths_with_hostile_values(broker, client, data):
    """A real reply topic of another connection, then hostile publishes into it, subscribes to
    it, and groups that would dead-letter into it or anywhere else: refused or served, never
    an internal error."""
    import msgspec

    owner = SyncClient(broker.host, broker.port)
    try:
        [made] = owner.exchange(
            raw_frame(constants.CREATE_REPLY_TOPIC, 9, msgspec.msgpack.encode([data.draw(names)])),
            9,
        )
        assert made.type == constants.CREATE_REPLY_TOPIC | constants.REPLY_BIT, made
        inbox = decode_body(made).name
        target = data.draw(st.sampled_from([inbox, inbox + "x"]) | reply_names | names)
        publish = [target, data.draw(messages)]
        _check_answered(client, constants.PUBLISH, msgspec.msgpack.encode(publish))
        spec = data.draw(group_specs)
        spec = {**spec, "topic": data.draw(st.sampled_from([inbox, "t"]) | names)}
        if data.draw(st.booleans()):
            spec["dead_letter_topic"] = data.draw(st.sampled_from([inbox, "t.dead"]) | names)
        _check_answered(client, constants.SUBSCRIBE, msgspec.msgpack.encode([spec, 5]))
    finally:
        owner.close()


def test_oversize_and_broken_streams_close_only_their_connection(broker, client):
    for garbage in (
        (1 << 30).to_bytes(4, "big") + bytes([constants.PUBLISH]) + b"\0\0\0\1",
        raw_frame(0x77, 1, b""),
        b"\x00" * 9,  # a frame of type 0
    ):
        other = SyncClient(broker.host, broker.port)
        assert other.exchange(garbage, 1) is None or True
        other.close()
    assert client.exchange(frame_bytes(constants.STATS, 5, m.Empty()), 5)[0].type == (
        constants.STATS | constants.REPLY_BIT
    )
