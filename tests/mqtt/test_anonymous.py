"""MQTT clients without a user name and password, on a broker with a users file: refused,
unless the file has the ``anonymous`` entry; then they get its topic rights and nothing else
(docs/security.md, "Clients without credentials"), as mosquitto's anonymous ACL."""

from __future__ import annotations

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.server.auth import hash_password

from .conftest import PASSWORDS, VERSIONS, mqtt_port


def code(rc: object) -> int:
    return int(getattr(rc, "value", rc))  # type: ignore[call-overload]


@pytest.fixture
def with_anonymous(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(
        f'''[[users]]
name = "sensor"
password = "{hash_password(PASSWORDS["sensor"])}"
admin = ["sensors"]

[[users]]
name = "anonymous"
admin = ["status"]
subscribe = ["sensors"]
'''
    )
    args = ["--mqtt", "127.0.0.1:0", "--users-file", str(path)]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as proc:
        proc.mqtt_port = mqtt_port(proc)
        yield proc


@pytest.mark.parametrize("version", VERSIONS)
def test_anonymous_clients_get_the_anonymous_entrys_rights(with_anonymous, clients, version):
    port = with_anonymous.mqtt_port
    anon = clients(port, version, f"anon-{version}")
    assert code(anon.connect()) == 0
    forbidden = 0x87 if version == "5.0" else 0x80
    # status: admin (so created on first use); sensors: subscribe only; secrets: nothing
    assert [code(q) for q in anon.subscribe("status/#", 1)] == [1]
    assert [code(q) for q in anon.subscribe("secrets/#", 1)] == [forbidden]
    anon.c.publish("status/door", b"open", qos=1).wait_for_publish(10)
    got = anon.next()
    assert (got.topic, got.payload) == ("status/door", b"open")
    sensor = clients(port, version, f"s-{version}", user="sensor", password=PASSWORDS["sensor"])
    assert code(sensor.connect()) == 0
    sensor.c.publish("sensors/t", b"first", qos=1).wait_for_publish(10)  # creates the topic
    assert [code(q) for q in anon.subscribe("sensors/#", 1)] == [1]
    assert [code(q) for q in sensor.subscribe("sensors/#", 1)] == [1]
    sensor.c.publish("sensors/t", b"21.5", qos=1).wait_for_publish(10)
    for c in (anon, sensor):
        got = c.next()
        assert (got.topic, got.payload) == ("sensors/t", b"21.5")
    # a publish outside its rights: v5 gets PUBACK 0x87, 3.1.1 a closed connection
    info = anon.c.publish("sensors/t", b"forged", qos=1)
    if version == "5.0":
        info.wait_for_publish(10)
        assert anon.nothing_more()
    else:
        assert anon.disconnects.get(timeout=10) is not None
    assert sensor.nothing_more()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_anonymous_name_is_not_a_login(with_anonymous, clients, version):
    """The entry has no secret: a client that names it, with any password, is refused."""
    c = clients(with_anonymous.mqtt_port, version, "x", user="anonymous", password="anything")
    assert code(c.connect()) == 0x86


@pytest.mark.parametrize("version", VERSIONS)
def test_without_the_entry_anonymous_clients_are_refused(secured, clients, version):
    c = clients(secured.mqtt_port, version, "nobody")
    assert code(c.connect()) == 0x86  # paho reports 3.1.1's code 4 as 0x86 too
