"""Retention: limits (max age, max messages, max bytes; oldest dropped first) and work-queue
(a message goes once every group has settled it). A mixin of the Broker.

Limits apply per partition (each partition keeps ``ceil(limit / partitions)``), as Kafka's do;
the store drops whole segments, so a partition may briefly hold a little more than its share.
A group whose backlog is trimmed away skips forward to the new first offset.
"""

from __future__ import annotations

import math

from .host import MixinBase
from .topics import TopicState


class RetentionMixin(MixinBase):
    def _enforce_limits(self, t: TopicState) -> None:
        spec = t.spec
        if spec.retention != "limits" or spec.overflow != "drop-oldest":
            return
        if spec.max_messages is None and spec.max_bytes is None:
            return
        n = len(t.parts)
        for p, part in enumerate(t.parts):
            count = part.next - part.first
            before = part.first
            if spec.max_messages is not None:
                share = math.ceil(spec.max_messages / n)
                if count > share:
                    before = part.next - share
            if spec.max_bytes is not None and count:
                share_bytes = math.ceil(spec.max_bytes / n)
                size = self.store.size(t.name, p)
                if size > share_bytes:
                    drop = math.ceil((size - share_bytes) / (size / count))
                    before = max(before, part.first + drop)
            if before > part.first:
                self._trim(t, p, before)

    def _enforce_retention(self, t: TopicState, now: float) -> None:
        spec = t.spec
        if spec.retention == "work-queue":
            if not t.groups:
                return
            for p, part in enumerate(t.parts):
                floor = min(g.cursors[p].floor for g in t.groups.values())
                if floor > part.first:
                    self._trim(t, p, floor)
            return
        if spec.max_age is not None:
            for p, part in enumerate(t.parts):
                cutoff = self.store.offset_at(t.name, p, now - spec.max_age)
                if cutoff > part.first:
                    self._trim(t, p, cutoff)
        self._enforce_limits(t)

    def _trim(self, t: TopicState, p: int, before: int) -> None:
        part = t.parts[p]
        before = min(before, part.visible)
        if before <= part.first:
            return
        self.store.trim(t.name, p, before)
        first = self.store.bounds(t.name, p)[0]
        part.first = first
        for g in t.groups.values():
            cursor = g.cursors[p]
            if cursor.floor < first:
                cursor.move_floor(first)
                self.store.save_floor(t.name, g.name, p, first)
