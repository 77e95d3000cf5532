"""Fixtures of the security suite: a broker process with a users file of narrow rights, and
clients that speak the wire protocol (the tidings:// transport, or raw frames)."""

from __future__ import annotations

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.server.auth import hash_password, hash_token
from tidings.transports.tidings import NativeTransport

OPS_TOKEN = "ops-token-0123456789abcdef"
PASSWORDS = {"mallory": "mallory-pw", "alice": "alice-pw", "billing": "billing-pw"}
USERS = f"""
[[users]]
name = "ops"
token = "{hash_token(OPS_TOKEN)}"
admin = [">"]

[[users]]
name = "mallory"                              # may use its own topics only
password = "{hash_password(PASSWORDS["mallory"])}"
publish = ["mallory.>", "brand.>"]
subscribe = ["mallory.>", "brand.>"]

[[users]]
name = "alice"                                # pays refunds
password = "{hash_password(PASSWORDS["alice"])}"
publish = ["payments.refunds", "rpc.>"]
subscribe = ["rpc.>"]

[[users]]
name = "billing"
password = "{hash_password(PASSWORDS["billing"])}"
publish = ["orders.*.dlq"]
subscribe = ["orders.*"]
"""


def url(broker: BrokerProcess, name: str | None = None) -> str:
    creds = f"{OPS_TOKEN}@" if name is None else f"{name}:{PASSWORDS[name]}@"
    return f"tidings://{creds}{broker.host}:{broker.port}"


async def connect(broker: BrokerProcess, name: str | None = None) -> NativeTransport:
    t = NativeTransport(url(broker, name), timeout=10.0, reconnect=False)
    await t.connect()
    return t


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    directory = tmp_path_factory.mktemp("secured")
    users = directory / "users.toml"
    users.write_text(USERS)
    proc = BrokerProcess(
        directory / "data", args=["--heartbeat", "1.0"], env={"TIDINGS_USERS_FILE": str(users)}
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def open_broker(tmp_path_factory):
    proc = BrokerProcess(tmp_path_factory.mktemp("open") / "data", args=["--heartbeat", "1.0"])
    proc.start()
    yield proc
    proc.stop()
