"""Registration is best effort under authentication: a user without the discovery topics
still runs a working service (not discoverable, with a warning); one granted them is found."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tests.helpers.broker_process import BrokerProcess

import tidings
from tidings.client.registry import EXTERNAL_TOPIC, HEARTBEAT_TOPIC, SRV_TOPIC, Registry
from tidings.server.auth import hash_password, hash_token

TOKEN = "ops-token-0123456789abcdef"
USERS = f"""
[[users]]
name = "plain"
password = "{hash_password("plain-pw")}"
publish = ["jobs"]
subscribe = ["jobs"]
admin = ["jobs"]

[[users]]
name = "listed"
password = "{hash_password("listed-pw")}"
publish = ["jobs", "{SRV_TOPIC}", "{HEARTBEAT_TOPIC}"]
subscribe = ["jobs", "{SRV_TOPIC}"]
admin = ["jobs"]

[[users]]
name = "ops"
token = "{hash_token(TOKEN)}"
admin = [">"]
"""


@pytest.fixture
def secure_broker(tmp_path):
    users = tmp_path / "users.toml"
    users.write_text(USERS)
    with BrokerProcess(tmp_path / "data", env={"TIDINGS_USERS_FILE": str(users)}) as proc:
        yield proc


def url(broker, creds: str) -> str:
    return f"tidings://{creds}@{broker.host}:{broker.port}"


async def test_a_user_without_discovery_permissions_still_runs_its_service(secure_broker, caplog):
    ops = url(secure_broker, TOKEN)
    async with tidings.connect(ops) as admin:
        for topic in ("jobs", SRV_TOPIC, HEARTBEAT_TOPIC, EXTERNAL_TOPIC):
            await admin.create_topic(topic)
    done = asyncio.Event()

    def service(name: str, creds: str) -> tidings.Service:
        svc = tidings.Service(name, url(secure_broker, creds))

        @svc.on("jobs", group=name)
        async def job(payload: dict) -> None:
            done.set()

        return svc

    plain, listed = service("plain", "plain:plain-pw"), service("listed", "listed:listed-pw")
    with caplog.at_level(logging.WARNING, logger="tidings.discovery"):
        async with plain.running(), listed.running():
            await plain.publish("jobs", {"n": 1})
            await asyncio.wait_for(done.wait(), 30)  # the service works
            async with tidings.connect(ops) as admin:
                names = {i.name for i in await Registry(admin).instances()}
    assert names == {"listed"}
    assert "plain does not answer $SRV discovery" in caplog.text
    assert "plain is not in the broker's registry" in caplog.text
