"""Every NativeTransport call against a real broker process."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tidings.errors import AlreadyExists, Closed, Forbidden, LeaseLost, NotFound, TidingsError
from tidings.headers import DLQ_REASON, dead_letter_topic
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.server.app import CAPABILITIES
from tidings.transports.base import ALL_CAPABILITIES, SubscribeOptions


async def _take(sub, n: int, timeout: float = 5.0):
    out = []
    while len(out) < n:
        batch = await sub.next_batch(n - len(out), timeout=timeout)
        assert batch, f"only {len(out)} of {n} messages arrived"
        out += batch
    return out


def test_server_capabilities_match_the_transport_names():
    assert CAPABILITIES == ALL_CAPABILITIES


async def test_topics(transport, name):
    spec = await transport.create_topic(TopicSpec(name=name, partitions=3))
    assert spec.partitions == 3
    again = await transport.create_topic(TopicSpec(name=name, partitions=5), exist_ok=True)
    assert again.partitions == 3
    with pytest.raises(AlreadyExists):
        await transport.create_topic(TopicSpec(name=name), exist_ok=False)
    assert name in [t.name for t in await transport.list_topics()]
    info = await transport.topic_info(name)
    assert info.name == name and len(info.partitions) == 3
    await transport.delete_topic(name)
    with pytest.raises(NotFound):
        await transport.topic_info(name)
    with pytest.raises(NotFound):
        await transport.delete_topic(name)


async def test_bad_requests_raise_the_catalogue_class(transport, name):
    with pytest.raises(TidingsError) as info:
        await transport.create_topic(TopicSpec(name="bad name!"))
    assert info.value.code == 401  # InvalidName
    with pytest.raises(NotFound):
        await transport.publish("no-such-topic", [Outgoing(b"x")])
    # the connection is still fine afterwards
    assert await transport.ping() < 5


async def test_publish_receipts_and_dedup(transport, name):
    await transport.create_topic(TopicSpec(name=name, partitions=2))
    receipts = await transport.publish(
        name, [Outgoing(b"a", key="k"), Outgoing(b"b", key="k"), Outgoing(b"c")]
    )
    assert [r.topic for r in receipts] == [name] * 3
    assert receipts[0].partition == receipts[1].partition
    assert receipts[1].offset == receipts[0].offset + 1
    first = await transport.publish(name, [Outgoing(b"d", msg_id="order-1")])
    again = await transport.publish(name, [Outgoing(b"d", msg_id="order-1")])
    assert again[0].duplicate and again[0].offset == first[0].offset
    assert (await transport.topic_info(name)).messages == 4
    assert await transport.publish(name, []) == []


async def test_headers_ttl_delay_and_large_bodies_travel(transport, name):
    await transport.create_topic(TopicSpec(name=name, max_message_size=4 << 20))
    body = bytes(range(256)) * 8192  # 2 MiB
    await transport.publish(
        name, [Outgoing(body, key="k", headers={"h": "v"}, ttl=60.0), Outgoing(b"later", delay=0.3)]
    )
    sub = await transport.subscribe(GroupSpec(topic=name, name="g"), prefetch=10)
    msg = await sub.next(timeout=5)
    assert msg.body == body and msg.headers == {"h": "v"} and msg.key == "k"
    assert msg.msg_id  # the transport gave it a producer id for safe retries
    await msg.ack()
    loop = asyncio.get_running_loop()
    start = loop.time()
    later = await sub.next(timeout=5)
    assert later.body == b"later" and loop.time() - start > 0.1
    await later.ack()
    await sub.close()


async def test_shared_group_ack_nack_extend_reject(transport, name):
    await transport.create_topic(TopicSpec(name=name))
    await transport.publish(name, [Outgoing(str(i).encode()) for i in range(4)])
    spec = GroupSpec(topic=name, name="workers", lease=5.0, max_deliveries=3)
    sub = await transport.subscribe(spec, prefetch=10, options=SubscribeOptions(confirm_acks=True))
    assert sub.spec == spec
    msgs = await _take(sub, 4)
    assert [m.body for m in msgs] == [b"0", b"1", b"2", b"3"]
    await msgs[0].ack()
    with pytest.raises(LeaseLost):  # acked already: the broker no longer leases it to us
        await sub.ack(msgs[0])
    await msgs[1].extend(30.0)
    await msgs[1].ack()
    await msgs[2].nack(delay=0.0, error="try again")
    await msgs[3].reject("poison")
    redelivered = await sub.next(timeout=5)
    assert redelivered.body == b"2" and redelivered.delivery_count == 2
    await redelivered.ack()
    info = await transport.group_info(name, "workers")
    assert info.in_flight == 0 and info.ready == 0 and info.dead_lettered == 1
    dlq = dead_letter_topic(name, "workers")
    dsub = await transport.subscribe(GroupSpec(topic=dlq, name="inspect"), prefetch=5)
    dead = await dsub.next(timeout=5)
    assert dead.body == b"3" and dead.headers[DLQ_REASON] == "rejected"
    await dsub.close()
    await sub.close()
    with pytest.raises(Closed):
        await sub.next(timeout=0.1)


async def test_many_acks_in_one_iteration_share_a_frame(transport, name):
    await transport.create_topic(TopicSpec(name=name))
    await transport.publish(name, [Outgoing(b"x") for _ in range(200)])
    sub = await transport.subscribe(
        GroupSpec(topic=name, name="g"), prefetch=200, options=SubscribeOptions(confirm_acks=True)
    )
    msgs = await _take(sub, 200)
    before = (await transport.server_stats()).frames_in
    await asyncio.gather(*(m.ack() for m in msgs))
    after = (await transport.server_stats()).frames_in
    assert after - before <= 3  # one ACK frame (+ the STATS request itself)
    assert (await transport.group_info(name, "g")).in_flight == 0


async def test_next_times_out_with_none(transport, name):
    await transport.create_topic(TopicSpec(name=name))
    sub = await transport.subscribe(GroupSpec(topic=name, name="g"))
    assert await sub.next(timeout=0.05) is None
    assert await sub.next_batch(10, timeout=0.05) == []
    await sub.close()


async def test_auto_ack_returns_credit(transport, name):
    await transport.create_topic(TopicSpec(name=name))
    await transport.publish(name, [Outgoing(b"%d" % i) for i in range(50)])
    sub = await transport.subscribe(GroupSpec(topic=name, name="fast", auto_ack=True), prefetch=4)
    got = [m.body for m in await _take(sub, 50)]  # only possible if credit comes back
    assert got == [b"%d" % i for i in range(50)]
    await sub.close()


async def test_competing_members_and_group_admin(transport, connect, name):
    await transport.create_topic(TopicSpec(name=name, partitions=2))
    other = await connect()
    spec = GroupSpec(topic=name, name="g")
    a = await transport.subscribe(spec, prefetch=1)
    b = await other.subscribe(spec, prefetch=1)
    await transport.publish(name, [Outgoing(b"1"), Outgoing(b"2")])
    ma, mb = await a.next(timeout=5), await b.next(timeout=5)
    assert {ma.body, mb.body} == {b"1", b"2"}
    assert (await transport.group_info(name, "g")).members == 2
    assert [g.name for g in await transport.list_groups(name)] == ["g"]
    await ma.ack()
    await mb.ack()
    await transport.reset_group(name, "g", "earliest")
    again = await a.next(timeout=5) or await b.next(timeout=5)
    assert again.body in (b"1", b"2")
    await transport.delete_group(name, "g")
    with pytest.raises(NotFound):  # the broker told both members their group is gone
        while await b.next(timeout=5):
            pass
    with pytest.raises(NotFound):
        await transport.group_info(name, "g")


async def test_reply_topic_is_private_and_deleted_on_close(connect, transport):
    requester = await connect()
    reply_to = await requester.create_reply_topic()
    assert reply_to.startswith("_reply.")  # the broker names it, in its reserved namespace
    assert (await requester.topic_info(reply_to)).spec.temporary
    assert reply_to not in [t.name for t in await transport.list_topics()]  # hidden
    with pytest.raises(Forbidden, match="reply topic"):
        await transport.topic_info(reply_to)
    with pytest.raises(Forbidden, match="reply topic"):  # no request named it: no reply
        await transport.publish(reply_to, [Outgoing(b"forged")])
    name = f"rpc-{uuid.uuid4().hex[:8]}"
    await transport.create_topic(TopicSpec(name=name))
    responder = await transport.subscribe(GroupSpec(topic=name, name="svc"))
    await requester.publish(name, [Outgoing(b"ask", headers={"reply-to": reply_to})])
    assert (await responder.next(timeout=5)).headers["reply-to"] == reply_to
    await transport.publish(reply_to, [Outgoing(b"answer")])  # the request named it
    sub = await requester.subscribe(GroupSpec(topic=reply_to, name="replies"))
    assert (await sub.next(timeout=5)).body == b"answer"
    with pytest.raises(Forbidden, match="one reply per request"):
        await transport.publish(reply_to, [Outgoing(b"a second answer")])
    await requester.close()
    for _ in range(50):
        try:
            await transport.topic_info(reply_to)
        except NotFound:
            break
        except Forbidden:
            pass
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the reply topic outlived its connection")


async def test_ping_and_stats(transport):
    assert 0 <= await transport.ping() < 1
    stats = await transport.server_stats()
    assert stats.connections >= 1 and stats.uptime > 0


async def test_closed_transport_refuses_calls(broker):
    from tidings.transports.tidings import NativeTransport

    t = NativeTransport(broker.url)
    await t.connect()
    await t.close()
    with pytest.raises(Closed):
        await t.list_topics()


async def test_connect_to_nothing_is_a_clear_error():
    from tidings.errors import TransportUnavailable
    from tidings.transports.tidings import NativeTransport

    with pytest.raises(TransportUnavailable, match="Is the broker running"):
        await NativeTransport("tidings://127.0.0.1:1").connect()


async def test_url_options(broker):
    from tidings.errors import BadRequest
    from tidings.transports.registry import transport_for
    from tidings.transports.tidings import NativeTransport

    t = transport_for(broker.url + "?timeout=2.5&name=tester&reconnect=false")
    assert isinstance(t, NativeTransport)
    assert t.options.timeout == 2.5 and t.options.name == "tester" and not t.options.reconnect
    with pytest.raises(BadRequest, match="unknown tidings:// URL option"):
        NativeTransport(broker.url + "?bogus=1")


async def test_acks_in_one_frame_each_learn_their_own_outcome(transport, name):
    await transport.create_topic(TopicSpec(name=name))
    await transport.publish(name, [Outgoing(str(i).encode()) for i in range(3)])
    sub = await transport.subscribe(
        GroupSpec(topic=name, name="g", lease=5.0),
        prefetch=10,
        options=SubscribeOptions(confirm_acks=True),
    )
    msgs = await _take(sub, 3)
    await msgs[1].ack()
    # one loop turn, one ACK frame: only the second (acked already) is refused
    results = await asyncio.gather(
        sub.ack(msgs[0]), sub.ack(msgs[1]), msgs[2].ack(), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], LeaseLost)
    await sub.close()


async def test_cancelling_one_ack_leaves_the_others_of_its_frame(transport, name):
    await transport.create_topic(TopicSpec(name=name))
    await transport.publish(name, [Outgoing(b"a"), Outgoing(b"b")])
    sub = await transport.subscribe(
        GroupSpec(topic=name, name="g", lease=5.0),
        prefetch=10,
        options=SubscribeOptions(confirm_acks=True),
    )
    first, second = await _take(sub, 2)
    cancelled = asyncio.create_task(first.ack())
    kept = asyncio.create_task(second.ack())
    await asyncio.sleep(0)  # both are in the frame now
    cancelled.cancel()
    await kept  # not failed by its neighbour's cancellation
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    info = await transport.group_info(name, "g")
    assert info.in_flight == 0  # the cancelled caller's ack was sent all the same
    await sub.close()
