"""Deleting one message by id and purging a topic over real HTTP against a real broker
process: no group gets a deleted message again (nor one created after the deletion), browsing
leaves it out, a purge empties the topic for every group,
unknown ids and topics are 404, and a read-only user gets 403 for both."""

from __future__ import annotations

import asyncio

import tidings

from .conftest import ADMIN_TOKEN, READER_PASSWORD


async def _received(sub, n: int) -> list[bytes]:
    got = []
    while len(got) < n:
        msg = await sub.next(timeout=10)
        assert msg is not None, f"got {got}, wanted {n}"
        got.append(msg.body)
        await msg.ack()
    return got


async def test_a_deleted_message_reaches_no_group(open_broker):
    topic = "http.delete"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic)
        for group in ("billing", "audit"):
            await (await client.subscribe(topic, group)).close()
        receipts = [await client.publish(topic, f"m{i}".encode()) for i in range(3)]
        gone = receipts[1]

        def delete():
            with open_broker.client() as http:
                r = http.delete(f"/api/v1/topics/{topic}/messages/{gone.id}")
                assert r.status_code == 200, r.text
                assert r.json() == {
                    "id": gone.id, "partition": 0, "offset": gone.offset,
                    "groups": ["audit", "billing"],
                }  # fmt: skip
                again = http.delete(f"/api/v1/topics/{topic}/messages/{gone.id}")
                assert again.status_code == 200 and again.json()["groups"] == []
                r = http.delete(f"/api/v1/topics/{topic}/messages/0123456789abcdef")
                assert r.status_code == 404 and "no message with id" in r.json()["message"]
                r = http.delete(f"/api/v1/topics/nowhere/messages/{gone.id}")
                assert r.status_code == 404
                # browsing no longer shows it (the neighbours stay), nor the dashboard
                page = http.get(f"/api/v1/topics/{topic}/messages").json()
                ids = [m["id"] for m in page["messages"]]
                assert ids == [receipts[0].id, receipts[2].id]
                html = http.get(f"/topics/{topic}").text
                assert receipts[0].id in html and gone.id not in html

        await asyncio.to_thread(delete)
        for group in ("billing", "audit", "late"):  # "late": a group created after the delete
            sub = await client.subscribe(topic, group, start="earliest")
            assert await _received(sub, 2) == [b"m0", b"m2"]
            assert await sub.next(timeout=0.5) is None
            await sub.close()


async def test_purge_empties_the_topic_for_every_group(open_broker):
    topic = "http.purge"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic, partitions=2)
        await (await client.subscribe(topic, "billing")).close()
        await (await client.subscribe(topic, "ledger", mode="ordered")).close()
        for i in range(10):
            await client.publish(topic, f"old {i}".encode(), key=str(i))

        def purge():
            with open_broker.client() as http:
                r = http.post(f"/api/v1/topics/{topic}/purge")
                assert r.status_code == 200, r.text
                assert r.json() == {"topic": topic, "count": 10, "groups": ["billing", "ledger"]}
                info = http.get(f"/api/v1/topics/{topic}").json()
                assert info["messages"] == 0
                assert [(g["ready"], g["lag"]) for g in info["groups"]] == [(0, 0), (0, 0)]
                assert http.post("/api/v1/topics/nowhere/purge").status_code == 404

        await asyncio.to_thread(purge)
        await client.publish(topic, b"new", key="k")
        for group, mode in (("billing", "shared"), ("ledger", "ordered")):
            sub = await client.subscribe(topic, group, mode=mode)
            assert await _received(sub, 1) == [b"new"]
            await sub.close()


def test_a_read_only_user_cannot_delete_or_purge(secured):
    with secured.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        assert admin.post("/api/v1/topics", json={"name": "orders.purge"}).status_code == 201
        r = admin.post("/api/v1/topics/orders.purge/messages", json={"body": "keep"})
        message_id = r.json()["id"]
    with secured.client(auth=("reader", READER_PASSWORD)) as reader:
        for r in (
            reader.delete(f"/api/v1/topics/orders.purge/messages/{message_id}"),
            reader.post("/api/v1/topics/orders.purge/purge"),
        ):
            assert r.status_code == 403, (r.request.method, r.request.url, r.text)
            assert "admin" in r.json()["message"]
    with secured.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        assert admin.get("/api/v1/topics/orders.purge").json()["messages"] == 1
        r = admin.delete(f"/api/v1/topics/orders.purge/messages/{message_id}")
        assert r.status_code == 200 and r.json()["groups"] == []  # no group yet
        assert admin.post("/api/v1/topics/orders.purge/purge").json()["count"] == 1
