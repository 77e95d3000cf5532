"""Consumer groups as the broker keeps them: create (at a start position), redeclare, delete
and reset. A mixin of :class:`tidings.broker.engine.Broker`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import AlreadyExists, BadRequest, NotFound
from ..model import GroupSpec
from ..storage.cursor import GroupCursor
from .host import MixinBase

if TYPE_CHECKING:
    from .group.consumer_group import ConsumerGroup
    from .topics import TopicState


class GroupCatalogueMixin(MixinBase):
    # -- groups ------------------------------------------------------------------------------

    def _group(self, topic: str, group: str) -> ConsumerGroup:
        g = self._topic(topic).groups.get(group)
        if g is None:
            raise NotFound(f"group {group!r} does not exist on topic {topic!r}")
        return g

    def _start_floor(self, t: TopicState, p: int, start: str, value: float | None) -> int:
        part = t.parts[p]
        if start == "earliest":
            return part.first
        if start == "latest":
            return part.next
        if start == "offset":
            return min(max(int(value or 0), part.first), part.next)
        return max(self.store.offset_at(t.name, p, float(value or 0.0)), part.first)

    def _start_cursors(
        self, t: TopicState, group: str, start: str, start_value: float | None
    ) -> dict[int, GroupCursor]:
        """A new (or reset) group's durable cursors at ``start``: the offsets deleted above
        it count as settled, so the group never delivers a deleted message."""
        cursors = {}
        for p in range(len(t.parts)):
            floor = self._start_floor(t, p, start, start_value)
            self.store.save_floor(t.name, group, p, floor)
            deleted = t.deleted_from(p, floor)
            if deleted:
                self.store.save_acks(t.name, group, p, deleted)
            cursors[p] = GroupCursor(floor, set(deleted))
        return cursors

    def create_group(self, spec: GroupSpec, *, exist_ok: bool = True) -> GroupSpec:
        spec.validate()
        t = self._topic(spec.topic)
        existing = t.groups.get(spec.name)
        if existing is not None:
            if not exist_ok:
                raise AlreadyExists(f"group {spec.name!r} already exists on {spec.topic!r}")
            return self._redeclare(existing, spec)
        self.store.put_group(spec)
        cursors = self._start_cursors(t, spec.name, spec.start, spec.start_value)
        t.groups[spec.name] = self._new_group(spec, t, cursors)
        self._catalogue_changed()
        return spec

    def _redeclare(self, g: ConsumerGroup, spec: GroupSpec) -> GroupSpec:
        old = g.spec
        if (spec.mode, spec.key_ordered, spec.auto_ack) != (
            old.mode,
            old.key_ordered,
            old.auto_ack,
        ):
            raise BadRequest(
                f"group {old.name!r} on {old.topic!r} exists with mode={old.mode!r}, "
                f"key_ordered={old.key_ordered}, auto_ack={old.auto_ack}; use another group "
                "name or delete the group first"
            )
        # Tunables (lease, max deliveries, dead-letter settings) follow the latest declaration.
        merged = GroupSpec(
            **{
                **{f: getattr(spec, f) for f in spec.__struct_fields__},
                "start": old.start,
                "start_value": old.start_value,
            }
        )
        if merged != old:
            self.store.put_group(merged)
            g.spec = merged
            self._catalogue_changed()
        return g.spec

    def delete_group(self, topic: str, group: str) -> None:
        g = self._group(topic, group)
        self._drop_group_members(g)
        del g.topic.groups[group]
        self._acks_due.pop(id(g), None)
        self.store.drop_group(topic, group)
        self._catalogue_changed()

    def _drop_group_members(self, g: ConsumerGroup) -> None:
        for m in g.close():
            self._members.pop(m.id, None)

    def list_groups(self, topic: str) -> list[GroupSpec]:
        return [g.spec for g in self._topic(topic).groups.values()]

    def reset_group(
        self, topic: str, group: str, start: str = "earliest", start_value: float | None = None
    ) -> None:
        """Move the group to a new start position; in-flight deliveries lose their leases."""
        g = self._group(topic, group)
        spec = GroupSpec(
            **{
                **{f: getattr(g.spec, f) for f in g.spec.__struct_fields__},
                "start": start,
                "start_value": start_value,
            }
        ).validate()
        g.take_back_leases()
        t = g.topic
        self.store.drop_group(topic, group)
        self.store.put_group(g.spec)
        cursors = self._start_cursors(t, group, spec.start, spec.start_value)
        self._acks_due.pop(id(g), None)
        fresh = self._new_group(g.spec, t, cursors)
        fresh.adopt(g)
        t.groups[group] = fresh
        self._catalogue_changed()
        fresh.resume()
