"""Request/reply and scatter-gather, written once in the client, over memory://."""

from __future__ import annotations

import asyncio

import pytest

from tidings import headers as h
from tidings.errors import BadRequest, RemoteError, RequestTimeout


async def _responder(client, topic, group, answer):
    sub = await client.subscribe(topic, group, start="latest")

    async def loop():
        async for msg in sub:
            result = answer(msg)
            if isinstance(result, Exception):
                await client.reply_error(msg, result)
            else:
                await client.reply(msg, result, headers={"by": group})
            await msg.ack()

    return asyncio.create_task(loop())


async def test_request_gets_the_matching_reply(client):
    await client.create_topic("pricing.quote")
    seen = {}

    def answer(msg):
        seen.update(msg.headers)
        return b"price:" + msg.body

    task = await _responder(client, "pricing.quote", "pricing", answer)
    replies = await asyncio.gather(
        *(client.request("pricing.quote", f"{i}".encode(), timeout=5) for i in range(5))
    )
    assert [r.body for r in replies] == [f"price:{i}".encode() for i in range(5)]
    assert seen[h.MESSAGE_TYPE] == "request" and seen[h.REPLY_TO] and seen[h.CORRELATION_ID]
    assert replies[0].headers[h.MESSAGE_TYPE] == "reply"
    task.cancel()


async def test_request_timeout(client):
    await client.create_topic("nobody.home")
    with pytest.raises(RequestTimeout, match=r"nobody\.home"):
        await client.request("nobody.home", b"?", timeout=0.1)


async def test_remote_error_is_raised_with_its_type(client):
    await client.create_topic("fails")
    task = await _responder(client, "fails", "g", lambda m: KeyError("no such order"))
    with pytest.raises(RemoteError) as info:
        await client.request("fails", b"x", timeout=5)
    assert info.value.remote_type == "KeyError" and "no such order" in info.value.message
    task.cancel()


async def test_scatter_collects_one_reply_per_group(client):
    await client.create_topic("quotes")
    tasks = [
        await _responder(client, "quotes", group, lambda m, g=group: g.encode())
        for group in ("a", "b", "c")
    ]
    replies = await client.scatter("quotes", b"?", timeout=5, max_replies=3)
    assert sorted(r.body for r in replies) == [b"a", b"b", b"c"]
    # without max_replies it waits for the deadline and returns what came
    replies = await client.scatter("quotes", b"?", timeout=0.2)
    assert len(replies) == 3
    for task in tasks:
        task.cancel()


async def test_reply_needs_a_request(client):
    await client.create_topic("plain")
    await client.publish("plain", b"x")
    msg = await (await client.subscribe("plain", "g")).next(2)
    with pytest.raises(BadRequest, match="reply-to"):
        await client.reply(msg, b"y")
