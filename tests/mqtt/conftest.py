"""A real broker process with its MQTT port, and paho clients that wait for what they get."""

from __future__ import annotations

import queue
import re
import threading

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from tests.helpers.broker_process import BrokerProcess

from tidings.server.auth import hash_password

MQTT_LISTENING = re.compile(r"listening on mqtt://([0-9.]+):(\d+)")
PASSWORDS = {"sensor": "s3nsor-pw", "reader": "r3ader-pw"}
VERSIONS = {"3.1.1": paho.MQTTv311, "5.0": paho.MQTTv5}


def mqtt_port(broker: BrokerProcess) -> int:
    """The MQTT port the broker logged last (a restarted broker logs its new one)."""
    for line in reversed(broker.output):
        found = MQTT_LISTENING.search(line)
        if found:
            return int(found.group(2))
    raise AssertionError("the broker did not log its MQTT port:\n" + broker.log())


@pytest.fixture
def broker(tmp_path):
    with BrokerProcess(tmp_path / "data", memory=True, args=["--mqtt", "127.0.0.1:0"]) as proc:
        proc.mqtt_port = mqtt_port(proc)
        yield proc


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(
        f'''[[users]]
name = "sensor"
password = "{hash_password(PASSWORDS["sensor"])}"
publish = ["sensors"]
admin = ["sensors"]

[[users]]
name = "reader"
password = "{hash_password(PASSWORDS["reader"])}"
subscribe = ["sensors"]
'''
    )
    return path


@pytest.fixture
def secured(tmp_path, users_file):
    args = ["--mqtt", "127.0.0.1:0", "--users-file", str(users_file)]
    with BrokerProcess(tmp_path / "data", memory=True, args=args) as proc:
        proc.mqtt_port = mqtt_port(proc)
        yield proc


class Client:
    """A paho client on its own network thread; what it receives goes to ``messages``."""

    def __init__(
        self, port: int, version: str, client_id: str = "", transport: str = "tcp", **login: str
    ) -> None:
        self.version = version
        self.c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=VERSIONS[version],
            transport=transport,  # type: ignore[arg-type]
        )
        if transport == "websockets":
            self.c.ws_set_options(path="/mqtt")
        if login:
            self.c.username_pw_set(login["user"], login["password"])
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connack: queue.Queue[object] = queue.Queue()
        self.subacks: queue.Queue[list[object]] = queue.Queue()
        self.disconnects: queue.Queue[object] = queue.Queue()
        self.c.on_message = lambda c, u, msg: self.messages.put(msg)
        self.connack_props: object = None
        self.c.on_connect = lambda c, u, flags, rc, props: self.on_connack(rc, props)
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put(rcs)
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.put(rc)
        self.port = port
        self.lock = threading.Lock()

    def on_connack(self, rc: object, props: object) -> None:
        self.connack_props = props
        self.connack.put(rc)

    def connect(self, keepalive: int = 30, properties: object = None) -> object:
        self.c.connect("127.0.0.1", self.port, keepalive=keepalive, properties=properties)
        self.c.loop_start()
        return self.connack.get(timeout=10)

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[object]:
        self.c.subscribe(topic_filter, qos)
        return self.subacks.get(timeout=10)

    def next(self, timeout: float = 10) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def nothing_more(self, wait: float = 0.5) -> bool:
        try:
            self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients():
    made: list[Client] = []

    def make(
        port: int, version: str, client_id: str = "", transport: str = "tcp", **login: str
    ) -> Client:
        client = Client(port, version, client_id, transport, **login)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
