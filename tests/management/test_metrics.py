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
