"""Dead-letter settings cannot make the broker write where the user may not (issue #23, hole
2): a group's chosen dead-letter topic needs the publish right on it, and the admin right if
the broker would have to create it; a reply topic is never one."""

from __future__ import annotations

import asyncio

import pytest

from tidings.errors import Forbidden, NotFound
from tidings.model import GroupSpec, Outgoing, TopicSpec

from .conftest import connect


async def _reject_one(t, spec: GroupSpec) -> None:
    sub = await t.subscribe(spec)
    message = await sub.next(timeout=10)
    await message.reject("bad")
    await sub.close()


async def test_a_dead_letter_topic_outside_the_users_rights_is_refused(secured):
    ops = await connect(secured)
    mallory = await connect(secured, "mallory")
    try:
        await ops.create_topic(TopicSpec(name="payments.done"), exist_ok=True)
        await ops.create_topic(TopicSpec(name="mallory.jobs"), exist_ok=True)
        await mallory.publish("mallory.jobs", [Outgoing(b"refund-42 card 4111")])
        with pytest.raises(Forbidden, match=r"may not publish on topic 'payments\.done'"):
            await mallory.subscribe(
                GroupSpec(topic="mallory.jobs", name="g1", dead_letter_topic="payments.done")
            )
        with pytest.raises(Forbidden, match=r"may not admin on topic 'brand\.new\.topic'"):
            await mallory.subscribe(  # it may publish there, but the broker would create it
                GroupSpec(topic="mallory.jobs", name="g2", dead_letter_topic="brand.new.topic")
            )
        inbox = await ops.create_reply_topic()
        with pytest.raises(Forbidden, match="reply topic and cannot be a dead-letter topic"):
            await mallory.subscribe(
                GroupSpec(topic="mallory.jobs", name="g3", dead_letter_topic=inbox)
            )
        assert (await ops.topic_info("payments.done")).messages == 0
        with pytest.raises(NotFound):
            await ops.topic_info("brand.new.topic")
        # within its rights it works: an existing topic it may publish to
        await ops.create_topic(TopicSpec(name="mallory.dead"), exist_ok=True)
        await _reject_one(
            mallory, GroupSpec(topic="mallory.jobs", name="g4", dead_letter_topic="mallory.dead")
        )
        for _ in range(100):
            if (await ops.topic_info("mallory.dead")).messages == 1:
                break
            await asyncio.sleep(0.05)
        assert (await ops.topic_info("mallory.dead")).messages == 1
    finally:
        await ops.close()
        await mallory.close()


async def test_the_default_dead_letter_topic_needs_no_extra_right(secured):
    ops = await connect(secured)
    billing = await connect(secured, "billing")
    try:
        await ops.create_topic(TopicSpec(name="orders.eu"), exist_ok=True)
        await ops.publish("orders.eu", [Outgoing(b"o1")])
        await _reject_one(billing, GroupSpec(topic="orders.eu", name="billing"))
        for _ in range(100):
            try:
                if (await ops.topic_info("orders.eu.billing.dlq")).messages == 1:
                    break
            except NotFound:
                pass
            await asyncio.sleep(0.05)
        assert (await ops.topic_info("orders.eu.billing.dlq")).messages == 1
    finally:
        await ops.close()
        await billing.close()


async def test_a_reload_that_takes_the_right_away_ends_the_subscription(tmp_path):
    import os
    import signal

    from tests.helpers.broker_process import BrokerProcess

    from tidings.server.auth import hash_token

    def users(publish: str) -> str:
        return (
            f'[[users]]\nname = "ops"\ntoken = "{hash_token("ops-token-0000000000")}"\n'
            f'admin = [">"]\n[[users]]\nname = "w"\ntoken = "{hash_token("w-token-0000000000")}"'
            f'\nsubscribe = ["jobs"]\npublish = [{publish}]\n'
        )

    path = tmp_path / "users.toml"
    path.write_text(users('"jobs.dead"'))
    broker = BrokerProcess(tmp_path / "data", env={"TIDINGS_USERS_FILE": str(path)}).start()
    try:
        from tidings.transports.tidings import NativeTransport

        ops = NativeTransport(f"tidings://ops-token-0000000000@{broker.host}:{broker.port}")
        worker = NativeTransport(f"tidings://w-token-0000000000@{broker.host}:{broker.port}")
        await ops.connect()
        await worker.connect()
        await ops.create_topic(TopicSpec(name="jobs"))
        await ops.create_topic(TopicSpec(name="jobs.dead"))
        sub = await worker.subscribe(
            GroupSpec(topic="jobs", name="w", dead_letter_topic="jobs.dead")
        )
        path.write_text(users(""))
        os.kill(broker.pid, signal.SIGHUP)
        with pytest.raises(Forbidden, match="dead letters"):
            for _ in range(100):
                await sub.next(timeout=0.2)
        await worker.close()
        await ops.close()
    finally:
        broker.stop()
