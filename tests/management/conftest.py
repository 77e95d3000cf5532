"""Fixtures of the management suite: real broker processes with their HTTP port on a free
loopback port (one open, one with a users file), and an httpx client for each."""

from __future__ import annotations

import time

import httpx
import pytest
from tests.helpers.broker_process import BrokerProcess
from tests.helpers.nats_server import free_port

from tidings.server.auth import hash_password, hash_token

ADMIN_TOKEN = "admin-token-0123456789abcdef"
MONITOR_TOKEN = "monitor-token-0123456789abcdef"
READER_PASSWORD = "reader-pw"
USERS = f"""
[[users]]
name = "ops"
token = "{hash_token(ADMIN_TOKEN)}"
admin = [">"]

[[users]]
name = "reader"                       # reads orders.*, changes nothing
password = "{hash_password(READER_PASSWORD, n=1024)}"
subscribe = ["orders.>"]

[[users]]
name = "prometheus"                   # metrics only
token = "{hash_token(MONITOR_TOKEN)}"
monitor = true
"""


class HttpBroker:
    def __init__(self, proc: BrokerProcess, http_port: int) -> None:
        self.proc = proc
        self.base = f"http://127.0.0.1:{http_port}"

    @property
    def url(self) -> str:
        return self.proc.url

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30.0, **kwargs)


def start(directory, env=None) -> HttpBroker:
    port = free_port()
    proc = BrokerProcess(directory / "data", args=["--http", f"127.0.0.1:{port}"], env=env)
    proc.start()
    broker = HttpBroker(proc, port)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(broker.base + "/livez", timeout=5).status_code == 200:
                return broker
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError("the broker's HTTP port did not answer:\n" + proc.log())
        time.sleep(0.05)


@pytest.fixture(scope="module")
def open_broker(tmp_path_factory):
    broker = start(tmp_path_factory.mktemp("open"))
    yield broker
    broker.proc.stop()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    directory = tmp_path_factory.mktemp("secured")
    users = directory / "users.toml"
    users.write_text(USERS)
    broker = start(directory, env={"TIDINGS_USERS_FILE": str(users)})
    yield broker
    broker.proc.stop()
