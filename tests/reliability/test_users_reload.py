"""SIGHUP rereads the users file of a running broker: added users may connect, removed users
and changed credentials lose their connections, narrowed permissions apply at once, and a
broken file changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from tests.helpers.broker_process import BrokerProcess

from tidings.errors import ConnectionLost, Forbidden, Unauthorized
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.server.auth import hash_password
from tidings.transports.tidings import NativeTransport

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "admin": "admin-pw"}
HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}


def users_file(*entries: str) -> str:
    return "\n".join(entries)


def user(name: str, password_hash: str | None = None, **lists: list[str]) -> str:
    lines = ["[[users]]", f'name = "{name}"', f'password = "{password_hash or HASHES[name]}"']
    lines += [f"{action} = {patterns!r}".replace("'", '"') for action, patterns in lists.items()]
    return "\n".join(lines) + "\n"


ADMIN = user("admin", admin=[">"])


@pytest.fixture
def broker(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(
        users_file(
            ADMIN,
            user("alice", publish=["a.*"], subscribe=["a.*", "b.*"]),
            user("bob", publish=["b.*"], subscribe=["b.*"]),
        )
    )
    proc = BrokerProcess(tmp_path / "data", env={"TIDINGS_USERS_FILE": str(path)}).start()
    proc.users_path = path  # type: ignore[attr-defined]
    yield proc
    proc.stop()


async def connect(broker: BrokerProcess, name: str) -> NativeTransport:
    url = f"tidings://{name}:{PASSWORDS[name]}@{broker.host}:{broker.port}"
    t = NativeTransport(url, timeout=10.0, reconnect=False)
    await t.connect()
    return t


async def reload(broker: BrokerProcess, expect: str) -> None:
    """SIGHUP the broker and wait until its log shows ``expect`` (the reload's outcome)."""
    before = broker.log().count(expect)
    os.kill(broker.pid, signal.SIGHUP)
    for _ in range(200):
        if broker.log().count(expect) > before:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"no {expect!r} in the broker log:\n{broker.log()[-2000:]}")


async def test_sighup_applies_added_removed_and_narrowed_users(broker) -> None:
    admin = await connect(broker, "admin")
    for topic in ("a.x", "b.x"):
        await admin.create_topic(TopicSpec(name=topic))
    alice = await connect(broker, "alice")
    bob = await connect(broker, "bob")
    sub_a = await alice.subscribe(GroupSpec(topic="a.x", name="ga"), prefetch=10)
    sub_b = await alice.subscribe(GroupSpec(topic="b.x", name="gb"), prefetch=10)
    await alice.publish("a.x", [Outgoing(b"before")])
    with pytest.raises(Unauthorized):
        await connect(broker, "carol")

    # alice may no longer publish anywhere nor read b.*; bob is gone; carol is new
    broker.users_path.write_text(
        users_file(ADMIN, user("alice", subscribe=["a.*"]), user("carol", publish=["b.*"]))
    )
    await reload(broker, "reload: 3 users")

    with pytest.raises(Forbidden, match="may not publish"):
        await alice.publish("a.x", [Outgoing(b"after")])  # the publish check starts afresh
    assert (await sub_a.next(timeout=5)).body == b"before"  # a.* is still allowed
    with pytest.raises(Forbidden, match="may no longer subscribe"):
        await sub_b.next(timeout=5)
    with pytest.raises((ConnectionLost, Forbidden)):
        await bob.publish("b.x", [Outgoing(b"bob")])  # bob's connection was closed
    carol = await connect(broker, "carol")
    await carol.publish("b.x", [Outgoing(b"carol")])
    for t in (admin, alice, bob, carol):
        await t.close()


async def test_new_credentials_close_the_old_connections(broker) -> None:
    alice = await connect(broker, "alice")
    PASSWORDS["alice"], old = "alice-new-pw", PASSWORDS["alice"]
    try:
        broker.users_path.write_text(
            users_file(ADMIN, user("alice", hash_password("alice-new-pw"), publish=["a.*"]))
        )
        await reload(broker, "reload: 2 users")
        with pytest.raises((ConnectionLost, Forbidden)):
            await alice.ping()
        fresh = await connect(broker, "alice")  # with the new password
        await fresh.ping()
        await fresh.close()
    finally:
        PASSWORDS["alice"] = old
    await alice.close()


async def test_a_broken_users_file_leaves_the_old_users_in_effect(broker) -> None:
    alice = await connect(broker, "alice")
    broker.users_path.write_text("[[users]\nname = ")  # not TOML
    await reload(broker, "the users loaded before stay in effect")
    await alice.ping()  # still connected
    other = await connect(broker, "bob")  # and the old users still log in
    await other.close()
    await alice.close()
