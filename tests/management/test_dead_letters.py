"""Dead letters over /api/v1 against a real broker process: list a group's dead letters,
redrive them to that group only (under the original id), purge them; bad input is a 4xx with
the catalogue's code; the users file's rights hold (subscribe lists, publish redrives, admin
purges)."""

from __future__ import annotations

import asyncio

from tests.management.conftest import ADMIN_TOKEN, READER_PASSWORD

import tidings

BASE = "/api/v1/topics/{topic}/groups/{group}/dead-letters"


async def _dead_letter(url: str, topic: str, bodies: list[bytes], **connect) -> list[str]:
    async with tidings.connect(url, **connect) as client:
        await client.create_topic(topic)
        billing = await client.subscribe(topic, "billing", max_deliveries=1)
        audit = await client.subscribe(topic, "audit")
        ids = [(await client.publish(topic, b, headers={"x": "1"})).id for b in bodies]
        for _ in bodies:
            await (await billing.next(timeout=10)).reject("declined")
            await (await audit.next(timeout=10)).ack()
        await billing.close()
        await audit.close()
        for _ in range(100):
            if len(await client.dead_letters(topic, "billing")) == len(bodies):
                break
            await asyncio.sleep(0.05)
    return ids


async def test_list_redrive_and_purge(open_broker):
    topic = "orders.http.dlq"
    first, second, third = await _dead_letter(open_broker.url, topic, [b"o-1", b"\xff", b"o-3"])
    path = BASE.format(topic=topic, group="billing")
    with open_broker.client() as http:
        r = http.get(path)
        assert r.status_code == 200, r.text
        letters = r.json()
        assert [d["id"] for d in letters] == [first, second, third]
        assert letters[0]["reason"] == "rejected" and letters[0]["error"] == "declined"
        assert letters[0]["deliveries"] == 1 and letters[0]["headers"] == {"x": "1"}
        assert letters[0]["body"] == "o-1" and letters[1]["body"] is None  # not text
        assert [d["id"] for d in http.get(path, params={"limit": 1}).json()] == [first]

        r = http.post(path + "/redrive", json={"ids": [second]})
        assert r.status_code == 200, r.text
        assert r.json() == {"count": 1, "ids": [second]}
        r = http.post(path + "/redrive", json={"ids": [second]})
        assert r.status_code == 404 and "already redriven" in r.json()["message"]
        r = http.post(path + "/purge", json={"limit": 1})
        assert r.json() == {"count": 1, "ids": [first]}
        assert http.post(path + "/redrive").json() == {"count": 1, "ids": [third]}  # no body: all
        assert http.get(path).json() == []

        for bad, code in (
            (http.post(path + "/redrive", json={"ids": []}), 422),
            (http.post(path + "/redrive", json={"limit": 0}), 422),
            (http.post(path + "/redrive", json={"idz": ["x"]}), 422),
            (http.post(path + "/redrive", content=b"{not json"), 400),
            (http.get(path, params={"limit": "0"}), 400),
            (http.get(BASE.format(topic=topic, group="nobody")), 404),
            (http.post(BASE.format(topic="no.such", group="billing") + "/redrive"), 404),
        ):
            assert bad.status_code == code, (bad.request.url, bad.text)
            assert bad.json()["error"] and bad.json()["message"]

    async with tidings.connect(open_broker.url) as client:
        billing = await client.subscribe(topic, "billing")
        audit = await client.subscribe(topic, "audit")
        got = sorted([(await billing.next(timeout=10)).id for _ in range(2)])
        assert got == sorted([second, third])
        assert await audit.next(timeout=1.0) is None  # redriven for billing only
        await billing.close()
        await audit.close()


async def test_rights_over_http(secured):
    topic = "orders.http.rights"
    [only] = await _dead_letter(secured.url.replace("tidings://", f"tidings://{ADMIN_TOKEN}@"),
                                topic, [b"o-1"])  # fmt: skip
    path = BASE.format(topic=topic, group="billing")
    with secured.client(auth=("reader", READER_PASSWORD)) as reader:  # subscribe orders.>
        assert [d["id"] for d in reader.get(path).json()] == [only]
        for r, right in ((reader.post(path + "/redrive"), "publish"),
                         (reader.post(path + "/purge"), "admin")):  # fmt: skip
            assert r.status_code == 403, r.text
            assert f"may not {right}" in r.json()["message"]
    with secured.client() as anonymous:
        assert anonymous.get(path).status_code == 401
    with secured.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        assert admin.get(path).json()[0]["id"] == only  # the refusals changed nothing
        assert admin.post(path + "/redrive").json()["ids"] == [only]


async def test_a_change_from_another_sites_page_is_refused(open_broker):
    topic = "orders.http.csrf"
    [only] = await _dead_letter(open_broker.url, topic, [b"o-1"])
    path = BASE.format(topic=topic, group="billing")
    with open_broker.client() as http:
        for evil in ("https://evil.example", "null"):
            r = http.post(path + "/purge", headers={"Origin": evil})
            assert r.status_code == 403, r.text
            assert "refused" in r.json()["message"]
        assert [
            d["id"] for d in http.get(path, headers={"Origin": "https://x.example"}).json()
        ] == [only]  # reading is not a change
        own = open_broker.base
        assert http.post(path + "/redrive", headers={"Origin": own}).json()["ids"] == [only]
