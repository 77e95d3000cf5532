"""``svc.publish`` gives every message a Snowflake ``msg_id``: left to the client's batch when
the client takes ids from the service's own generator (the process-wide one, publish retries
on), given by the service itself otherwise. Either way each id is unique, the handler sees it,
and the publish middleware's leave (the DEBUG "published" line) sees the same id."""

from __future__ import annotations

import asyncio
import logging
import re

import tidings
from tidings.ids import Snowflake, default_snowflake
from tidings.testing import ServiceKit

PUBLISHED = re.compile(r"^published event to jobs msg_id=(\S+) ")
FRESH = re.compile(r"^published event to fresh msg_id=(\S+) ")


async def _publish_concurrently(svc: tidings.Service, n: int, caplog) -> tuple[list, list]:
    seen: list[str | None] = []

    @svc.on("jobs", concurrency=n)
    async def job(payload: dict, ctx: tidings.Context) -> None:
        seen.append(ctx.message.msg_id)

    async with ServiceKit(svc) as kit:
        await svc.publish("jobs", {"n": -1})  # the topic exists: the rest go out coalesced
        with caplog.at_level(logging.DEBUG, logger="tidings.service"):
            await asyncio.gather(*(svc.publish("jobs", {"n": i}) for i in range(n)))
        await kit.handled("jobs", count=n + 1)
    logged = [m.group(1) for r in caplog.records if (m := PUBLISHED.match(r.getMessage()))]
    return seen, logged


async def test_ids_left_to_the_client_are_unique_and_seen_by_the_leave_hooks(caplog):
    svc = tidings.Service("ids-by-client")
    seen, logged = await _publish_concurrently(svc, 200, caplog)
    assert len(seen) == 201 and None not in seen and len(set(seen)) == 201
    assert len(logged) == 200 and "None" not in logged
    assert set(logged) <= set(seen)  # the leave saw the id the message went out with
    assert {Snowflake.parse(i).worker_id for i in seen} == {default_snowflake().worker_id}


async def test_a_service_with_its_own_worker_id_gives_its_own_ids(caplog):
    svc = tidings.Service("ids-by-service", worker_id=77)
    seen, logged = await _publish_concurrently(svc, 50, caplog)
    assert len(set(seen)) == 51 and {Snowflake.parse(i).worker_id for i in seen} == {77}
    assert set(logged) <= set(seen) and len(logged) == 50


async def test_a_client_without_retries_still_gets_ids_from_the_service(caplog):
    svc = tidings.Service("ids-no-retries", client_options={"publish_retries": 0})
    seen, logged = await _publish_concurrently(svc, 50, caplog)
    assert None not in seen and len(set(seen)) == 51
    assert set(logged) <= set(seen) and len(logged) == 50


async def test_the_first_publish_to_a_topic_nobody_made_yet_has_its_id_logged(caplog):
    svc = tidings.Service("ids-new-topic")  # no handler: the publish creates the topic
    async with ServiceKit(svc) as kit:
        with caplog.at_level(logging.DEBUG, logger="tidings.service"):
            await svc.publish("fresh", {"n": 0})
        assert kit.client is not None
        sub = await kit.client.subscribe("fresh", "reader")
        (message,) = await sub.next_batch(1, timeout=5)
        await sub.close()
    logged = [m.group(1) for r in caplog.records if (m := FRESH.match(r.getMessage()))]
    assert message.msg_id and logged == [message.msg_id]


def test_publish_call_stays_a_dataclass_middleware_can_copy_and_extend():
    import dataclasses

    from tidings.model import Outgoing
    from tidings.service import PublishCall

    call = PublishCall("t", Outgoing(b"x"), "event")
    moved = dataclasses.replace(call, topic="u")
    moved.note = "a middleware's own attribute"  # type: ignore[attr-defined]
    assert (moved.topic, moved.message, call.topic) == ("u", call.message, "t")
    other = PublishCall("t", Outgoing(b"y"), "event")
    assert call.state == {} and call.state is not other.state  # one dict per call
