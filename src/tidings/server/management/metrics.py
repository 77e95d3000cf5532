"""``/metrics``: the broker's state in the Prometheus text format, collected at scrape time.

A custom prometheus-client Collector reads the broker's public stats (``topic_info`` per
topic, with its groups), the server's counters and the two latency histograms when scraped;
nothing is kept per message. Reply topics (one per requesting connection, short-lived) are
left out: they would make series come and go by the thousand. The reference is in
docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ...broker.group.outcomes import OUTCOMES
from ...broker.latency import LatencyHistogram
from ...errors import NotFound
from ...names import is_reply_topic

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from ..app import BrokerServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (name, help, GroupInfo attribute) of the per-group gauges
GROUP_GAUGES = (
    ("ready_messages", "Messages ready for delivery (loaded and not yet loaded)", "ready"),
    ("in_flight_messages", "Messages delivered and leased, not settled yet", "in_flight"),
    ("delayed_messages", "Messages waiting for their delay (or nack delay) to pass", "delayed"),
    ("lag_messages", "Messages the group has not acknowledged yet", "lag"),
    ("members", "Members (consumers) in the group", "members"),
)
GROUP_COUNTERS = (
    ("delivered_messages", "Deliveries, first and redeliveries, since start", "delivered_total"),
    ("settled_messages", "Messages done with: acked, dead-lettered or expired", "acked_total"),
    ("dead_lettered_messages", "Messages moved to the dead-letter topic", "dead_lettered"),
)


def _histogram(name: str, doc: str, h: LatencyHistogram) -> HistogramMetricFamily:
    buckets = [("+Inf" if b == float("inf") else repr(b), n) for b, n in h.cumulative()]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.sum)


class BrokerCollector(Collector):
    """Everything under ``tidings_``, read from one :class:`BrokerServer` per scrape."""

    def __init__(self, server: BrokerServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        stats = server.stats()
        info = GaugeMetricFamily("tidings_info", "The broker's version", labels=["version"])
        info.add_metric([stats.version], 1)
        yield info
        yield GaugeMetricFamily("tidings_uptime_seconds", "Seconds since start", stats.uptime)
        yield GaugeMetricFamily("tidings_connections", "Open client connections", stats.connections)
        yield GaugeMetricFamily(
            "tidings_subscriptions", "Subscriptions (group members) of all connections",
            stats.subscriptions,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tidings_paused_connections",
            "Connections over the write high-water mark (not read, not dispatched to)",
            stats.paused_connections,
        )
        yield GaugeMetricFamily(
            "tidings_write_buffer_bytes", "Bytes waiting to be written to clients",
            stats.write_buffer_bytes,
        )  # fmt: skip
        yield from self._alarms()
        yield from self._topics()
        yield _histogram(
            "tidings_publish_confirm_seconds",
            "Seconds from a publish's append to its confirm (includes the fsync under "
            "--fsync batch), per PUBLISH frame",
            server.publish_latency,
        )
        yield _histogram(
            "tidings_fsync_seconds", "Seconds per store sync (fsync)",
            server.runtime.sync_latency,
        )  # fmt: skip
        yield CounterMetricFamily(
            "tidings_syncs", "Store syncs (group commits) since start", server.runtime.syncs
        )

    def _alarms(self) -> Iterator[Metric]:
        alarms = self.server.alarms
        yield GaugeMetricFamily(
            "tidings_memory_alarm", "1 while the memory alarm refuses publishes",
            int(alarms.memory is not None),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tidings_disk_alarm", "1 while the disk free limit refuses publishes",
            int(alarms.disk is not None),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tidings_resident_memory_bytes", "Resident memory at the last alarm check",
            alarms.rss,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tidings_memory_high_watermark_bytes", "The memory alarm's limit (0: off)",
            alarms.memory_limit,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tidings_disk_free_limit_bytes", "The disk alarm's limit (0: off)",
            alarms.disk_free_limit,
        )  # fmt: skip
        if alarms.free is not None:
            yield GaugeMetricFamily(
                "tidings_disk_free_bytes", "Free bytes on the data disk at the last check",
                alarms.free,
            )  # fmt: skip

    def _topics(self) -> Iterator[Metric]:
        broker = self.server.runtime.broker
        t_labels = ["topic"]
        g_labels = ["topic", "group"]
        messages = GaugeMetricFamily("tidings_topic_messages", "Messages stored", labels=t_labels)
        size = GaugeMetricFamily(
            "tidings_topic_storage_bytes", "Bytes the topic's log takes on disk", labels=t_labels
        )
        partitions = GaugeMetricFamily("tidings_topic_partitions", "Partitions", labels=t_labels)
        published = CounterMetricFamily(
            "tidings_topic_published_messages",
            "Messages accepted since start (duplicates answered from the dedup window too)",
            labels=t_labels,
        )
        published_bytes = CounterMetricFamily(
            "tidings_topic_published_bytes",
            "PUBLISH payload bytes accepted since start (bodies with their framing)",
            labels=t_labels,
        )
        gauges = {
            attr: GaugeMetricFamily(f"tidings_group_{name}", doc, labels=g_labels)
            for name, doc, attr in GROUP_GAUGES
        }
        backlog = GaugeMetricFamily(
            "tidings_group_backlog_messages",
            "ready + in flight: the autoscaling signal (KEDA's queue length)",
            labels=g_labels,
        )
        oldest = GaugeMetricFamily(
            "tidings_group_oldest_ready_age_seconds",
            "Age of the oldest ready message (0 when none is ready)",
            labels=g_labels,
        )
        counters = {
            attr: CounterMetricFamily(f"tidings_group_{name}", doc, labels=g_labels)
            for name, doc, attr in GROUP_COUNTERS
        }
        outcomes = CounterMetricFamily(
            "tidings_group_settlements",
            "How deliveries ended, by outcome: acked, nacked, rejected, expired (TTL), "
            "dead_lettered, lease_expired, deleted",
            labels=[*g_labels, "outcome"],
        )
        expiries = CounterMetricFamily(
            "tidings_group_lease_expiries",
            "Leases that ran out without a settlement (each one a redelivery)",
            labels=g_labels,
        )
        total_bytes = 0
        sizes = self.server.published_bytes
        for spec in broker.list_topics():
            if is_reply_topic(spec.name):
                continue
            try:
                info = broker.topic_info(spec.name)
            except NotFound:  # deleted meanwhile
                continue
            labels = [info.name]
            messages.add_metric(labels, info.messages)
            size.add_metric(labels, info.bytes)
            partitions.add_metric(labels, len(info.partitions))
            published.add_metric(labels, info.published_total)
            published_bytes.add_metric(labels, sizes.get(info.name, 0))
            total_bytes += info.bytes
            for g in info.groups:
                labels = [info.name, g.name]
                for attr, family in gauges.items():
                    family.add_metric(labels, getattr(g, attr))
                backlog.add_metric(labels, g.ready + g.in_flight)
                oldest.add_metric(labels, g.oldest_ready_age or 0.0)
                for attr, counter in counters.items():
                    counter.add_metric(labels, getattr(g, attr, 0))
                for outcome in OUTCOMES:
                    outcomes.add_metric([*labels, outcome], g.settlements.get(outcome, 0))
                expiries.add_metric(labels, g.settlements.get("lease_expired", 0))
        yield from (messages, size, partitions, published, published_bytes)
        yield from gauges.values()
        yield from (backlog, oldest)
        yield from counters.values()
        yield from (outcomes, expiries)
        yield GaugeMetricFamily(
            "tidings_storage_bytes", "Bytes of every topic's log on disk", total_bytes
        )


class Metrics:
    """A registry holding the broker's collector; ``render()`` is the /metrics body."""

    def __init__(self, server: BrokerServer) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BrokerCollector(server))

    def render(self) -> bytes:
        return generate_latest(self.registry)
