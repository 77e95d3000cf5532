"""``/api/v1/definitions``: a broker's topics and consumer groups as one JSON document, to
export from one broker and import into another (or into the same after a rebuild), as
RabbitMQ's definitions are. Reply topics (temporary, owned by a connection) are left out.

Every setting of a topic (``TopicSpec``: partitions, retention, limits, overflow, dedup
window, message size) and of a group (``GroupSpec``: mode, lease, max deliveries, start,
key order, auto-ack, dead-letter topic and expiry, in-flight window, session timeout) is in
the document, so an import into an empty broker recreates them as they were.

Import is checked before anything changes: a topic that exists with other settings is a
TopicConflict (409) naming them, a group that exists with another mode, key order or auto-ack
(what a group cannot change) is an AlreadyExists (409), a group on a topic that neither
exists nor is imported is a NotFound; then the missing topics and groups are created and the
existing ones kept (a group that exists takes the imported settings a group may change).
Messages are not part of it."""

from __future__ import annotations

import msgspec

from ...errors import AlreadyExists, BadRequest, NotFound
from ...model import GroupSpec, TopicSpec
from ...names import refuse_reply_name
from .api import _broker
from .endpoints import Call, Endpoint
from .users import _require_operator

VERSION = 1
_TOPIC_FIELDS = tuple(f for f in TopicSpec.__struct_fields__ if f != "name")


class Definitions(msgspec.Struct, kw_only=True):
    version: int = VERSION
    topics: list[TopicSpec] = msgspec.field(default_factory=list)
    groups: list[GroupSpec] = msgspec.field(default_factory=list)


class Imported(msgspec.Struct, kw_only=True):
    topics_created: list[str]
    topics_kept: list[str]  # existed with the same settings
    groups_created: list[str]  # "topic/group"
    groups_kept: list[str]


async def export(call: Call) -> Definitions:
    _require_operator(call.user, "export the broker's definitions")
    broker = _broker(call)
    topics = sorted((t for t in broker.list_topics() if not t.temporary), key=lambda t: t.name)
    groups = [g for t in topics for g in sorted(broker.list_groups(t.name), key=lambda g: g.name)]
    return Definitions(topics=topics, groups=groups)


async def import_(call: Call) -> Imported:
    _require_operator(call.user, "import definitions")
    body: Definitions = call.body
    if body.version != VERSION:
        raise BadRequest(f"definitions version {body.version} is not {VERSION}: export again")
    broker = _broker(call)
    existing = {t.name: t for t in broker.list_topics()}
    limit = call.server.config.max_message_size
    for spec in body.topics:  # check everything first: nothing changes on a refusal
        refuse_reply_name(spec.name)
        if spec.temporary:
            raise BadRequest(f"topic {spec.name!r} is temporary: reply topics are not imported")
        spec.validate()
        if spec.max_message_size > limit:
            raise BadRequest(
                f"topic {spec.name!r}: max_message_size {spec.max_message_size} is above this "
                f"broker's limit of {limit} bytes (--max-message-size)"
            )
        if spec.name in existing:
            broker.create_topic(spec, exist_ok=True, given=_TOPIC_FIELDS)  # TopicConflict
    names = existing.keys() | {t.name for t in body.topics}
    for group in body.groups:
        group.validate()
        if group.topic not in names:
            raise NotFound(
                f"group {group.name!r} is on topic {group.topic!r}, which neither exists nor is "
                "in the definitions: add the topic to 'topics'"
            )
        if group.topic in existing:
            _refuse_group_conflict(group, broker.list_groups(group.topic))
    out = Imported(topics_created=[], topics_kept=[], groups_created=[], groups_kept=[])
    for spec in body.topics:
        kept = spec.name in existing
        broker.create_topic(spec, exist_ok=True, given=_TOPIC_FIELDS)
        (out.topics_kept if kept else out.topics_created).append(spec.name)
    for group in body.groups:
        had = any(g.name == group.name for g in broker.list_groups(group.topic))
        broker.create_group(group, exist_ok=True)
        (out.groups_kept if had else out.groups_created).append(f"{group.topic}/{group.name}")
    return out


_FIXED = ("mode", "key_ordered", "auto_ack")  # what a group cannot change once created


def _refuse_group_conflict(group: GroupSpec, present: list[GroupSpec]) -> None:
    for have in present:
        if have.name != group.name:
            continue
        differ = [
            f"{f}={getattr(have, f)!r} (imported {getattr(group, f)!r})"
            for f in _FIXED
            if getattr(have, f) != getattr(group, f)
        ]
        if differ:
            raise AlreadyExists(
                f"group {group.name!r} of topic {group.topic!r} exists with "
                f"{', '.join(differ)}; nothing was imported. Delete the group first, or import "
                "it as it is"
            )


def endpoints(prefix: str) -> list[Endpoint]:
    return [
        Endpoint("GET", prefix + "/definitions", "The broker's topics and groups as one "
                 "document (to import elsewhere)", "definitions", export, Definitions),
        Endpoint("POST", prefix + "/definitions", "Create the topics and groups of a "
                 "definitions document (checked first; existing ones are kept)", "definitions",
                 import_, Imported, body=Definitions),
    ]  # fmt: skip
