"""Permission patterns are segment-aware ('*' one segment, '>' the rest, as NATS subjects),
and reading a topic's groups needs the subscribe right, as docs/security.md says (issue #23,
"Also")."""

from __future__ import annotations

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.errors import BadRequest, Forbidden
from tidings.model import GroupSpec, TopicSpec
from tidings.server.auth import Authenticator, hash_password, hash_token
from tidings.transports.tidings import NativeTransport

OPS = "ops-token-abcdef0123456789"
USERS = f"""
[[users]]
name = "ops"
token = "{hash_token(OPS)}"
admin = [">"]

[[users]]
name = "one"
password = "{hash_password("one-pw")}"
subscribe = ["orders.*"]
publish = ["audit"]

[[users]]
name = "all"
password = "{hash_password("all-pw")}"
subscribe = ["orders.>"]
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("patterns")
    (directory / "users.toml").write_text(USERS)
    proc = BrokerProcess(
        directory / "data", env={"TIDINGS_USERS_FILE": str(directory / "users.toml")}
    )
    proc.start()
    yield proc
    proc.stop()


async def _connect(broker, creds: str) -> NativeTransport:
    t = NativeTransport(f"tidings://{creds}@{broker.host}:{broker.port}", reconnect=False)
    await t.connect()
    return t


async def test_star_is_one_segment_and_gt_the_rest(broker):
    ops = await _connect(broker, OPS)
    one = await _connect(broker, "one:one-pw")
    everything = await _connect(broker, "all:all-pw")
    try:
        for name in ("orders.eu", "orders.eu.billing.dlq", "orders", "audit"):
            await ops.create_topic(TopicSpec(name=name), exist_ok=True)
        await one.subscribe(GroupSpec(topic="orders.eu", name="g"))
        with pytest.raises(Forbidden, match=r"may not subscribe on topic 'orders\.eu\.billing"):
            await one.subscribe(GroupSpec(topic="orders.eu.billing.dlq", name="g"))
        with pytest.raises(Forbidden):
            await one.subscribe(GroupSpec(topic="orders", name="g"))  # '*' is one segment
        await everything.subscribe(GroupSpec(topic="orders.eu.billing.dlq", name="g"))
        await everything.subscribe(GroupSpec(topic="orders.eu", name="g2"))
        with pytest.raises(Forbidden):
            await everything.subscribe(GroupSpec(topic="orders", name="g"))  # '>' is one or more
        listed = {t.name for t in await one.list_topics()}
        assert listed == {"orders.eu", "audit"}
    finally:
        for t in (ops, one, everything):
            await t.close()


async def test_group_info_and_list_groups_need_the_subscribe_right(broker):
    ops = await _connect(broker, OPS)
    one = await _connect(broker, "one:one-pw")
    try:
        await ops.create_topic(TopicSpec(name="audit"), exist_ok=True)
        await ops.subscribe(GroupSpec(topic="audit", name="auditors"))
        with pytest.raises(Forbidden, match="may not subscribe on topic 'audit'"):
            await one.group_info("audit", "auditors")  # it may publish there, not read
        with pytest.raises(Forbidden, match="may not subscribe on topic 'audit'"):
            await one.list_groups("audit")
        assert (await one.topic_info("audit")).name == "audit"  # some right: topic_info
    finally:
        await ops.close()
        await one.close()


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("orders*", "whole segments"), ("orders.>.x", "only be the last"), ("a..b", "empty")],
)
def test_a_pattern_that_is_not_segment_aware_is_a_clear_error(tmp_path, pattern, why):
    path = tmp_path / "users.toml"
    path.write_text(f'[[users]]\nname = "u"\ntoken = "{hash_token("t")}"\npublish = ["{pattern}"]')
    with pytest.raises(BadRequest, match=why):
        Authenticator.from_file(str(path))
