"""Stats per topic and group: ready, in flight, delayed, dead-lettered, lag, oldest age and
rates (together, the autoscaling signal), and the members whose leases keep expiring. A mixin
of :class:`tidings.broker.engine.Broker`."""

from __future__ import annotations

from ..model import GroupInfo, PartitionInfo, StuckMember, TopicInfo
from .host import MixinBase


class StatsMixin(MixinBase):
    # -- stats -------------------------------------------------------------------------------

    def group_info(self, topic: str, group: str) -> GroupInfo:
        g = self._group(topic, group)
        now = self.clock.now()
        queued = len(g.ready) + g.waiting_count + sum(len(q) for q in g.pqueues)
        oldest: float | None = None
        candidates = [e.timestamp for e in (g.ready[0],)] if g.ready else []
        for q in g.pqueues:
            if q:
                candidates.append(q[0].timestamp)
        for p, part in enumerate(g.topic.parts):
            pos = max(g.read_pos[p], part.first)
            if pos < part.visible and not candidates:
                first = self.store.read(g.topic.name, p, pos, 1)
                if first:
                    candidates.append(first[0].timestamp)
        if candidates:
            oldest = max(now - min(candidates), 0.0)
        return GroupInfo(
            topic=topic,
            name=group,
            mode=g.spec.mode,
            ready=queued + g.unloaded(),
            in_flight=len(g.inflight),
            delayed=len(g.delayed),
            dead_lettered=g.dead_lettered,
            lag=g.lag(),
            oldest_ready_age=oldest,
            members=len(g.members),
            deliver_rate=g.deliver_meter.rate(now),
            ack_rate=g.ack_meter.rate(now),
            spec=g.spec,
            delivered_total=g.deliver_meter.total,
            acked_total=g.ack_meter.total,
            settlements=g.outcomes.as_dict(),
            stuck_members=[
                StuckMember(
                    member_id=m.id,
                    expiries=m.expiries,
                    in_flight=len(m.inflight),
                    partitions=sorted(m.partitions),
                )
                for m in g.members
                if m.expiries
            ],
        )

    def topic_info(self, name: str) -> TopicInfo:
        t = self._topic(name)
        parts = [
            PartitionInfo(
                partition=p,
                first_offset=part.first,
                next_offset=part.next,
                bytes=self.store.size(name, p),
            )
            for p, part in enumerate(t.parts)
        ]
        return TopicInfo(
            name=name,
            spec=t.spec,
            messages=t.messages(),
            bytes=sum(p.bytes for p in parts),
            partitions=parts,
            groups=[self.group_info(name, g) for g in t.groups],
            publish_rate=t.publish_meter.rate(self.clock.now()),
            published_total=t.publish_meter.total,
        )
