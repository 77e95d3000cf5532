"""/metrics over real HTTP from a real broker process: the per-group autoscaling gauges, the
totals and the latency histograms follow what clients do through ``tidings.connect``."""

from __future__ import annotations

import asyncio
import time

from prometheus_client.parser import text_string_to_metric_families

import tidings


def scrape(broker) -> dict[tuple[str, tuple], float]:
    with broker.client() as http:
        r = http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def g(samples, name, topic, group=None):
    labels = {"topic": topic} if group is None else {"topic": topic, "group": group}
    return samples[(name, tuple(sorted(labels.items())))]


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


async def test_group_gauges_and_totals_follow_publish_and_consume(open_broker):
    topic, group = "metrics.orders", "billing"
    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic, partitions=2)
        await client.subscribe(topic, group=group, prefetch=1)  # declare, then leave
    async with tidings.connect(open_broker.url) as client:
        for i in range(10):
            await client.publish(topic, b"x" * 100, key=f"k{i}")
        s = await asyncio.to_thread(scrape, open_broker)
        assert g(s, "tidings_topic_published_messages_total", topic) == 10
        assert g(s, "tidings_topic_published_bytes_total", topic) >= 10 * 100
        assert g(s, "tidings_topic_messages", topic) == 10
        assert g(s, "tidings_topic_storage_bytes", topic) >= 10 * 100
        assert g(s, "tidings_group_ready_messages", topic, group) == 10
        assert g(s, "tidings_group_backlog_messages", topic, group) == 10
        assert g(s, "tidings_group_lag_messages", topic, group) == 10
        assert g(s, "tidings_group_oldest_ready_age_seconds", topic, group) >= 0
        assert s[("tidings_publish_confirm_seconds_count", ())] >= 10
        assert s[("tidings_fsync_seconds_count", ())] >= 1  # the data dir syncs (--fsync batch)

        sub = await client.subscribe(topic, group=group, prefetch=3, lease=60)
        held = []
        async for msg in sub:
            held.append(msg)
            if len(held) == 3:
                break

        def in_flight_three():
            s = scrape(open_broker)
            return g(s, "tidings_group_in_flight_messages", topic, group) == 3 and s

        s = await asyncio.to_thread(wait_for, in_flight_three)
        assert s, "in flight never reached 3"
        assert g(s, "tidings_group_ready_messages", topic, group) == 7
        assert g(s, "tidings_group_backlog_messages", topic, group) == 10  # ready + in flight
        assert g(s, "tidings_group_members", topic, group) == 1
        assert s[("tidings_connections", ())] >= 1
        for msg in held:
            await msg.ack()

        def settled_three():
            s = scrape(open_broker)
            return g(s, "tidings_group_settled_messages_total", topic, group) >= 3 and s

        s = await asyncio.to_thread(wait_for, settled_three)
        assert s, "acks never showed up in the settled total"
        assert g(s, "tidings_group_delivered_messages_total", topic, group) >= 3
        assert g(s, "tidings_group_lag_messages", topic, group) <= 7
        await sub.close()


def test_metrics_carry_alarms_and_storage(open_broker):
    s = scrape(open_broker)
    assert s[("tidings_memory_alarm", ())] == 0
    assert s[("tidings_disk_alarm", ())] == 0
    assert s[("tidings_resident_memory_bytes", ())] > 0
    assert s[("tidings_storage_bytes", ())] >= 0
    assert s[("tidings_uptime_seconds", ())] > 0
    (version,) = [labels for name, labels in s if name == "tidings_info"]
    assert dict(version)["version"]


async def test_settlements_are_counted_by_outcome(open_broker):
    """tidings_group_settlements_total{outcome}: scraped after each way a delivery can end."""
    topic, group = "metrics.outcomes", "billing"
    outcomes = ("acked", "nacked", "rejected", "expired", "dead_lettered", "lease_expired",
                "deleted")  # fmt: skip

    def counts():
        s = scrape(open_broker)
        return {
            o: s[("tidings_group_settlements_total",
                  tuple(sorted({"topic": topic, "group": group, "outcome": o}.items())))]
            for o in outcomes
        }  # fmt: skip

    async def expect(**changed):
        want = {o: changed.get(o, 0) for o in outcomes}
        got = await asyncio.to_thread(wait_for, lambda: counts() == want)
        assert got, (await asyncio.to_thread(counts), want)

    async with tidings.connect(open_broker.url) as client:
        await client.create_topic(topic)
        sub = await client.subscribe(topic, group, prefetch=1, lease=1.0)
        await expect()
        await client.publish(topic, b"a")
        await (await sub.next(timeout=10)).ack()
        await expect(acked=1)
        await client.publish(topic, b"b")
        await (await sub.next(timeout=10)).nack()
        await expect(acked=1, nacked=1)
        await (await sub.next(timeout=10)).reject("bad")  # b again: to the dead-letter topic
        await expect(acked=1, nacked=1, rejected=1, dead_lettered=1)
        await sub.close()

        await client.publish(topic, b"c", ttl=0.2)
        await asyncio.sleep(0.5)
        # no extension by the client: a message handed out and left alone loses its lease
        sub = await client.subscribe(topic, group, prefetch=1, lease=1.0, max_lease_extension=0)
        await expect(acked=1, nacked=1, rejected=1, dead_lettered=1, expired=1)
        await client.publish(topic, b"d")
        held = await sub.next(timeout=10)  # handed to us: its lease runs out unsettled
        assert held.body == b"d"
        await expect(acked=1, nacked=1, rejected=1, dead_lettered=1, expired=1,
                     lease_expired=1)  # fmt: skip
        s = await asyncio.to_thread(scrape, open_broker)
        assert g(s, "tidings_group_lease_expiries_total", topic, group) == 1
        await sub.close()

        receipt = await client.publish(topic, b"e")

        def delete():
            with open_broker.client() as http:
                url = f"/api/v1/topics/{topic}/messages/{receipt.id}"
                assert http.delete(url).status_code == 200

        await asyncio.to_thread(delete)
        await expect(acked=1, nacked=1, rejected=1, dead_lettered=1, expired=1,
                     lease_expired=1, deleted=1)  # fmt: skip
