"""SIGHUP rereads the users file for MQTT connections too (docs/security.md, "Changing users
while the broker runs"): a removed user's connection and one whose password changed get
DISCONNECT 0x87 (3.1.1: a close), narrowed rights end the subscriptions they no longer
allow (a first-level wildcard stops reading just those topics), and a persistent session
resumed after a reload is checked against the new rights."""

from __future__ import annotations

import asyncio

import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.reliability.test_users_reload import reload

from tidings.server.auth import hash_password
from tidings.server.mqtt import codec as m

from .conftest import mqtt_port
from .raw import Raw

PASSWORDS = {"writer": "writer-pw", "reader": "reader-pw", "gone": "gone-pw"}
HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}


def user(name: str, password_hash: str | None = None, **lists: list[str]) -> str:
    lines = ["[[users]]", f'name = "{name}"', f'password = "{password_hash or HASHES[name]}"']
    lines += [f"{action} = {patterns!r}".replace("'", '"') for action, patterns in lists.items()]
    return "\n".join(lines) + "\n"


WRITER = user("writer", admin=["alpha", "beta"])


@pytest.fixture
def broker(tmp_path):
    path = tmp_path / "users.toml"
    anonymous = '[[users]]\nname = "anonymous"\nsubscribe = ["alpha"]\n'
    reader = user("reader", subscribe=["alpha", "beta"])
    path.write_text("\n".join((WRITER, reader, user("gone"), anonymous)))
    args = ["--mqtt", "127.0.0.1:0"]
    env = {"TIDINGS_USERS_FILE": str(path)}
    with BrokerProcess(tmp_path / "data", memory=True, args=args, env=env) as proc:
        proc.mqtt_port = mqtt_port(proc)
        proc.users_path = path  # type: ignore[attr-defined]
        yield proc


def code(rc: object) -> int:
    return int(getattr(rc, "value", rc))  # type: ignore[call-overload]


def test_sighup_reaches_mqtt_connections(broker, clients):
    port = broker.mqtt_port
    writer = clients(port, "5.0", "w", user="writer", password=PASSWORDS["writer"])
    assert code(writer.connect()) == 0
    for topic in ("alpha/1", "beta/1"):  # creates the topics
        writer.c.publish(topic, b"first", qos=1).wait_for_publish(10)
    reader = clients(port, "5.0", "r", user="reader", password=PASSWORDS["reader"])
    assert code(reader.connect()) == 0
    assert [code(q) for q in reader.subscribe("alpha/#", 1)] == [1]
    assert [code(q) for q in reader.subscribe("+/2", 1)] == [1]  # alpha and beta
    gone = clients(port, "5.0", "g", user="gone", password=PASSWORDS["gone"])
    assert code(gone.connect()) == 0
    anon = clients(port, "3.1.1", "a")
    assert code(anon.connect()) == 0
    new_writer = hash_password("writer-pw-2")
    # writer: a new password; reader: beta only; gone and anonymous removed
    writer_now = user("writer", new_writer, admin=["alpha", "beta"])
    broker.users_path.write_text("\n".join((writer_now, user("reader", subscribe=["beta"]))))
    asyncio.run(reload(broker, "1 connections updated, 3 closed, 2 subscriptions ended"))
    assert code(gone.disconnects.get(timeout=10)) == m.NOT_AUTHORIZED
    assert code(writer.disconnects.get(timeout=10)) == m.NOT_AUTHORIZED
    anon.disconnects.get(timeout=10)  # 3.1.1: closed
    writer = clients(port, "5.0", "w2", user="writer", password="writer-pw-2")
    assert code(writer.connect()) == 0
    for topic in ("alpha/2", "beta/2", "alpha/x"):
        writer.c.publish(topic, topic.encode(), qos=1).wait_for_publish(10)
    assert reader.next().payload == b"beta/2"  # the wildcard reads beta only now
    assert reader.nothing_more()
    assert reader.c.is_connected()


def test_a_persistent_session_resumed_after_a_reload_has_the_new_rights(broker, clients):
    port = broker.mqtt_port
    writer = clients(port, "5.0", "w", user="writer", password=PASSWORDS["writer"])
    assert code(writer.connect()) == 0
    writer.c.publish("alpha/1", b"first", qos=1).wait_for_publish(10)
    login = {"username": "reader", "password": PASSWORDS["reader"].encode(), "clean_start": False,
             "properties": {"session_expiry_interval": 300}}  # fmt: skip
    with Raw(port) as reader:
        assert reader.connect("keeper", **login).session_present is False
        assert reader.subscribe(1, m.Subscription("alpha/#", qos=1)).reasons == [1]
    broker.users_path.write_text("\n".join((WRITER, user("reader", subscribe=["beta"]))))
    asyncio.run(reload(broker, "reload: 2 users"))
    writer.c.publish("alpha/2", b"while away", qos=1).wait_for_publish(10)
    with Raw(port) as reader:
        assert reader.connect("keeper", **login).session_present is True
        assert reader.silent(), "the alpha subscription still delivers"
    assert "subscriptions ended or narrowed: user 'reader'" in broker.log()
