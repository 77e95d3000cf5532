"""`redis://`: the tidings transport on Redis Streams.

``RedisTransport("redis://host:6379/0")`` (credentials as ``redis://user:password@host:6379/0``,
TLS as ``rediss://``). A Redis Cluster is found by itself: the URL names any node, and when that
node has cluster mode on the transport talks to the cluster through redis-py's ``RedisCluster``
(a topic's keys share one hash tag, so every script stays in one slot; a member's blocking reads
go to the node that owns its topic). A topic partition is a stream, a group is a consumer group
on each of them, a member is a consumer; the keys are declared in :mod:`.naming`, the atomic
steps in :mod:`.scripts`, a member's loop in :mod:`.subscription`, the stats in :mod:`.stats`.
What Redis cannot do as the built-in broker does is left out of ``capabilities`` and listed in
docs/transports.md. Needs Redis 7.0 or later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rx
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url

from ...errors import (
    AlreadyExists,
    BadRequest,
    Closed,
    ConnectionLost,
    MessageTooLarge,
    NotFound,
    Unsupported,
)
from ...model import DeadLetter, GroupInfo, GroupSpec, Outgoing, Receipt, TopicInfo, TopicSpec
from ...names import REPLY_PREFIX, is_reply_topic
from ...partitioning import RoundRobin, partition_for
from ..base import (
    ALL_CAPABILITIES,
    CAP_KEY_ORDERED,
    CAP_PREFETCH_BYTES,
    CAP_WORK_QUEUE,
    SubscribeOptions,
    Transport,
    TransportSubscription,
)
from ..capabilities import require_group, require_topic
from ..rules import deadletter as dl
from ..rules.stuck import STUCK_MEMBER_LEASES
from . import positions, redrive, scripts, stats
from .codec import fields_of
from .errors import connect_error, translated
from .naming import REGISTRY, TopicKeys, offset_of
from .ordered import OrderedSubscription
from .replies import text
from .subscription import RedisSubscription

log = logging.getLogger("tidings.transports.redis")

MAX_BATCH = 500  # messages per publish script call (a script blocks the server while it runs)
MIN_VERSION = (7, 0)
REPLY_TTL = 600  # seconds a crashed requester's reply topic outlives its last refresh


class Scripts:
    """The Lua scripts of :mod:`.scripts`, registered on one client (EVALSHA, else EVAL)."""

    def __init__(self, r: aioredis.Redis | RedisCluster) -> None:
        self.publish = r.register_script(scripts.PUBLISH)
        self.claim = r.register_script(scripts.CLAIM)
        self.settle = r.register_script(scripts.SETTLE)
        self.dead_letter = r.register_script(scripts.DEAD_LETTER)
        self.heartbeat = r.register_script(scripts.HEARTBEAT)
        self.members = r.register_script(scripts.MEMBERS)
        self.stuck = r.register_script(scripts.STUCK)
        self.membership = r.register_script(scripts.MEMBERSHIP)
        self.ordered_read = r.register_script(scripts.ORDERED_READ)
        self.prune = r.register_script(scripts.PRUNE)


class RedisTransport(Transport):
    scheme = "redis"
    capabilities = ALL_CAPABILITIES - {
        CAP_KEY_ORDERED,
        CAP_PREFETCH_BYTES,
        CAP_WORK_QUEUE,
    }

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        stuck_member_leases: int = STUCK_MEMBER_LEASES,
    ) -> None:
        self.url = url
        if stuck_member_leases < 0:
            raise BadRequest("stuck_member_leases must be >= 0 (0: never close a stuck member)")
        # lease periods a member may stay stuck before it closes itself (docs/transports.md R9)
        self.stuck_member_leases = stuck_member_leases
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise BadRequest(f"not a Redis URL: {url!r}; use redis://host:6379/0")
        self._address = f"{parts.hostname}:{parts.port or 6379}"
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._r: aioredis.Redis | RedisCluster | None = None
        self._scripts: Scripts | None = None
        self._specs: dict[str, tuple[TopicSpec, TopicKeys]] = {}
        self._subs: set[RedisSubscription] = set()
        self._replies: set[str] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._rr = RoundRobin()

    # ------------------------------------------------------------------ connection
    @property
    def r(self) -> aioredis.Redis | RedisCluster:
        if self._r is None:
            raise Closed("the redis:// transport is not connected: call connect() first")
        return self._r

    @property
    def scripts(self) -> Scripts:
        self.r  # noqa: B018 - raises Closed when not connected
        assert self._scripts is not None
        return self._scripts

    async def connect(self) -> None:
        r = aioredis.from_url(
            self.url,
            decode_responses=False,
            socket_connect_timeout=self._connect_timeout,
            health_check_interval=30,
        )
        try:
            info = await r.info("server")
        except Exception as exc:
            await r.aclose()
            raise connect_error(exc, self._address) from exc
        version = tuple(int(x) for x in str(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_VERSION:
            await r.aclose()
            raise Unsupported(
                f"redis://{self._address} runs Redis {info.get('redis_version')}; tidings needs "
                "Redis 7.0 or later (stream ids 0-*, XAUTOCLAIM's deleted-entry handling)"
            )
        self._r = await self._cluster_or(r)
        self._scripts = Scripts(self._r)
        await self._check_persistence()

    async def _cluster_or(self, r: aioredis.Redis) -> aioredis.Redis | RedisCluster:
        """``r`` itself, or a ``RedisCluster`` client when the node runs in cluster mode."""
        try:
            enabled = int((await r.info("cluster")).get("cluster_enabled", 0))
        except rx.ResponseError:  # INFO cluster not allowed: take the node as it is
            enabled = 0
        if not enabled:
            return r
        await r.aclose()
        cluster = RedisCluster.from_url(
            self.url, decode_responses=False, socket_connect_timeout=self._connect_timeout
        )
        try:
            await cluster.initialize()
        except Exception as exc:
            await cluster.aclose()
            raise connect_error(exc, self._address) from exc
        return cluster

    def blocking_client(self, key: str) -> tuple[aioredis.Redis, aioredis.Redis]:
        """A connection of its own for blocking reads of ``key`` and a client on the same
        server that can unblock it (CLIENT UNBLOCK works on one server only)."""
        r = self.r
        if not isinstance(r, RedisCluster):
            return r.client(), r
        node = r.get_node_from_key(key)
        if node is None:  # the cluster's slot map has a hole: a transient state
            raise ConnectionLost(f"no Redis Cluster node serves key {key!r} right now: retry")
        skip = ("host", "port", "db")
        options: dict[str, Any] = {k: v for k, v in parse_url(self.url).items() if k not in skip}

        def make() -> aioredis.Redis:
            return aioredis.Redis(
                host=node.host, port=int(node.port), decode_responses=False,
                socket_connect_timeout=self._connect_timeout, **options,
            )  # fmt: skip

        return make(), make()

    async def _check_persistence(self) -> None:
        """Warn when the server keeps nothing on disk (no AOF, no RDB snapshots)."""
        try:
            config: dict[Any, Any] = dict(await self.r.config_get("appendonly"))
            config.update(await self.r.config_get("save"))
            config.update(await self.r.config_get("appendfsync"))
        except rx.ResponseError:  # CONFIG disabled (managed services): nothing to check
            log.debug("redis: CONFIG GET is not allowed; persistence not checked")
            return

        def setting(name: str) -> str:
            return text(config.get(name, config.get(name.encode(), ""))).strip()

        aof, save = setting("appendonly"), setting("save")
        if aof != "yes" and not save:
            log.warning(
                "redis://%s runs without persistence (appendonly no, no save points): every "
                "message is lost when the server stops. Start it with --appendonly yes "
                "(docs/transports.md, Durability)",
                self._address,
            )
        elif aof != "yes":
            log.warning(
                "redis://%s has no AOF (appendonly no): messages since the last RDB snapshot "
                "are lost when the server stops. Start it with --appendonly yes "
                "(docs/transports.md, Durability)",
                self._address,
            )

    async def close(self) -> None:
        """Close every subscription, delete this connection's reply topics, disconnect."""
        if self._r is None:
            return
        await asyncio.gather(*(s.close() for s in list(self._subs)), return_exceptions=True)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresher
        for name in list(self._replies):
            with contextlib.suppress(Exception):
                await self.delete_topic(name)
        r, self._r = self._r, None
        with contextlib.suppress(Exception):
            await r.aclose()

    def forget(self, sub: RedisSubscription) -> None:
        self._subs.discard(sub)

    # ------------------------------------------------------------------ topics
    async def _lookup(self, name: str, fresh: bool = False) -> tuple[TopicSpec, TopicKeys]:
        if not fresh and name in self._specs:
            return self._specs[name]
        with translated(f"topic {name!r}"):
            if is_reply_topic(name):
                tag: str | None = name
            else:
                raw_tag = await self.r.hget(REGISTRY, name)
                tag = None if raw_tag is None else text(raw_tag)
            if tag is None:
                raise NotFound(f"topic {name!r} does not exist: create it first")
            keys = TopicKeys(name, tag)
            raw = await self.r.get(keys.meta)
        if raw is None:
            self._specs.pop(name, None)
            raise NotFound(f"topic {name!r} does not exist: create it first")
        spec = msgspec.json.decode(raw, type=TopicSpec)
        self._specs[name] = (spec, keys)
        return spec, keys

    async def create_topic(
        self, spec: TopicSpec, *, exist_ok: bool = True, given: Sequence[str] | None = None
    ) -> TopicSpec:
        spec = spec.validate()
        require_topic(self, spec)
        return await self._create(spec, TopicKeys(spec.name), exist_ok)

    async def _create(self, spec: TopicSpec, keys: TopicKeys, exist_ok: bool) -> TopicSpec:
        if spec.max_bytes is not None:
            raise Unsupported(
                f"topic {spec.name!r} with max_bytes is not supported by redis:// (streams are "
                "trimmed by count): use max_messages or max_age; see docs/transports.md"
            )
        with translated(f"create topic {spec.name!r}"):
            if not is_reply_topic(spec.name):
                await self.r.hsetnx(REGISTRY, spec.name, keys.tag)
                tag = await self.r.hget(REGISTRY, spec.name)
                keys = TopicKeys(spec.name, text(tag) if tag else keys.tag)
            created = await self.r.set(keys.meta, msgspec.json.encode(spec), nx=True)
        if created:
            self._specs[spec.name] = (spec, keys)
            return spec
        if not exist_ok:
            raise AlreadyExists(f"topic {spec.name!r} already exists")
        existing, _ = await self._lookup(spec.name, fresh=True)
        return existing

    async def ensure_dead_letter_topic(
        self, source: TopicSpec, source_keys: TopicKeys, name: str
    ) -> TopicKeys:
        """The keys of the dead-letter topic ``name``, created on demand in the source
        topic's slot (its hash tag), so that the move is one script."""
        try:
            return (await self._lookup(name))[1]
        except NotFound:
            pass
        await self._create(dl.topic_spec(source, name), TopicKeys(name, source_keys.tag), True)
        return (await self._lookup(name))[1]

    async def delete_topic(self, name: str) -> None:
        _, keys = await self._lookup(name, fresh=True)
        self._specs.pop(name, None)
        with translated(f"delete topic {name!r}"):
            await self.r.delete(keys.meta)  # first: publishers see NOTOPIC from now on
            batch: list[bytes] = []
            async for key in self.r.scan_iter(match=keys.pattern(), count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self.r.unlink(*batch)
                    batch = []
            if batch:
                await self.r.unlink(*batch)
            if not is_reply_topic(name):
                await self.r.hdel(REGISTRY, name)

    async def list_topics(self) -> list[TopicSpec]:
        with translated("list topics"):
            names = sorted(text(n) for n in await self.r.hkeys(REGISTRY))
        out = []
        for name in names:
            with contextlib.suppress(NotFound):
                out.append((await self._lookup(name, fresh=True))[0])
        return out

    async def _acks_applied(self) -> None:
        """Let this connection's queued acknowledgements land before reading stats."""
        await asyncio.gather(*(sub.acks_applied() for sub in self._subs))

    async def topic_info(self, name: str) -> TopicInfo:
        await self._acks_applied()
        spec, keys = await self._lookup(name, fresh=True)
        info = await stats.topic_info(self, spec, keys)
        info.groups = [await self.group_info(name, g.name) for g in await self._group_specs(keys)]
        return info

    # ------------------------------------------------------------------ publishing
    async def publish(self, topic: str, messages: Sequence[Outgoing]) -> list[Receipt]:
        if not messages:
            return []
        spec, keys = await self._lookup(topic)
        receipts: list[Receipt] = []
        for start in range(0, len(messages), MAX_BATCH):
            receipts += await self._publish(spec, keys, messages[start : start + MAX_BATCH])
        return receipts

    async def _publish(
        self,
        spec: TopicSpec,
        keys: TopicKeys,
        messages: Sequence[Outgoing],
        partitions: Sequence[int] | None = None,
        ids: Sequence[str] | None = None,
        dedup: bool = True,
    ) -> list[Receipt]:
        window = int(spec.dedup_window * 1000) if dedup else 0
        streams, dkeys, argv = [], [], []
        mids = []
        for i, m in enumerate(messages):
            if len(m.body) > spec.max_message_size:
                raise MessageTooLarge(
                    f"a message of {len(m.body)} bytes exceeds the max_message_size of topic "
                    f"{spec.name!r} ({spec.max_message_size} bytes): send less or raise the limit"
                )
            if partitions is not None:
                p = partitions[i]
            elif m.key is not None:
                p = partition_for(m.key, spec.partitions)
            else:
                p = self._rr.next(spec.partitions)
            fields = fields_of(m, None if ids is None else ids[i])
            mids.append(str(fields[1]))
            checked = window > 0 and m.msg_id is not None
            streams.append(keys.stream(p))
            dkeys.append(keys.dedup(m.msg_id) if checked and m.msg_id else keys.stream(p))
            argv += [p, 1 if checked else 0, mids[-1], len(fields), *fields]
        maxlen = spec.max_messages or 0
        reject = 1 if spec.overflow == "reject" else 0
        max_age = int(spec.max_age * 1000) if spec.max_age else 0
        try:
            with translated(f"publish to topic {spec.name!r}"):
                out = await self.scripts.publish(
                    keys=[keys.meta, *streams, *dkeys],
                    args=[len(messages), window, maxlen, reject, max_age, *argv],
                )
        except NotFound:
            self._specs.pop(spec.name, None)
            raise NotFound(f"topic {spec.name!r} does not exist: create it first") from None
        receipts = []
        for (dup, place), mid in zip(out, mids, strict=True):
            p_text, entry, original = place.decode().split(" ")
            receipts.append(
                Receipt(spec.name, int(p_text), offset_of(entry), original or mid, bool(dup))
            )
        return receipts

    # ------------------------------------------------------------------ groups
    async def _group_specs(self, keys: TopicKeys) -> list[GroupSpec]:
        with translated(f"groups of topic {keys.name!r}"):
            raw = await self.r.hgetall(keys.groups)
        return [msgspec.json.decode(v, type=GroupSpec) for _, v in sorted(raw.items())]

    async def _group(self, topic: str, group: str) -> tuple[TopicSpec, TopicKeys, GroupSpec]:
        spec, keys = await self._lookup(topic)
        with translated(f"group {group!r} of topic {topic!r}"):
            raw = await self.r.hget(keys.groups, group)
        if raw is None:
            raise NotFound(f"group {group!r} of topic {topic!r} does not exist")
        return spec, keys, msgspec.json.decode(raw, type=GroupSpec)

    async def subscribe(
        self, spec: GroupSpec, *, prefetch: int = 100, options: SubscribeOptions | None = None
    ) -> TransportSubscription:
        spec = spec.validate()
        require_group(self, spec)
        if options is not None and options.prefetch_bytes:
            self.require(CAP_PREFETCH_BYTES, f"prefetch_bytes for group {spec.name!r}")
        topic, keys = await self._lookup(spec.topic)
        with translated(f"group {spec.name!r} of topic {spec.topic!r}"):
            await self.r.hsetnx(keys.groups, spec.name, msgspec.json.encode(spec))
            raw = await self.r.hget(keys.groups, spec.name)  # set just above
            stored = msgspec.json.decode(cast(bytes, raw), type=GroupSpec)
            await positions.create_groups(self, topic, keys, stored)
        cls = OrderedSubscription if stored.mode == "ordered" else RedisSubscription
        sub = cls(self, stored, topic, keys, prefetch, options)
        await sub.start()
        self._subs.add(sub)
        return sub

    async def heartbeat(
        self, keys: TopicKeys, spec: GroupSpec, member: str, left: bool = False
    ) -> None:
        await self.scripts.heartbeat(
            keys=[keys.members(spec.name)],
            args=[member, 1 if left else 0, int(spec.session_timeout * 1000)],
        )

    async def group_info(self, topic: str, group: str) -> GroupInfo:
        await self._acks_applied()
        spec, keys, gspec = await self._group(topic, group)
        return await stats.group_info(self, spec, keys, gspec)

    async def delete_group(self, topic: str, group: str) -> None:
        spec, keys, _ = await self._group(topic, group)
        with translated(f"delete group {group!r} of topic {topic!r}"):
            await positions.destroy_groups(self, spec, keys, group)
            await self.r.hdel(keys.groups, group)
            await self.r.delete(keys.members(group), keys.stuck(group))

    async def reset_group(
        self, topic: str, group: str, start: str = "earliest", start_value: float | None = None
    ) -> None:
        spec, keys, gspec = await self._group(topic, group)
        new = msgspec.structs.replace(gspec, start=start, start_value=start_value).validate()
        with translated(f"reset group {group!r} of topic {topic!r}"):
            await positions.destroy_groups(self, spec, keys, group)
            await self.r.hset(keys.groups, group, msgspec.json.encode(new))
            await positions.create_groups(self, spec, keys, new)
        for sub in self._subs:
            if sub.spec.topic == topic and sub.spec.name == group:
                sub.flush()

    # ------------------------------------------------------------------ dead letters
    async def dead_letters(self, topic: str, group: str, limit: int = 100) -> list[DeadLetter]:
        if limit < 1:
            raise BadRequest("limit must be >= 1")
        await self._acks_applied()
        return [d for _, d in await redrive.waiting(self, topic, group, limit)]

    async def redrive(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        return await redrive.redrive(self, topic, group, ids, limit)

    async def discard_dead_letters(
        self, topic: str, group: str, ids: Sequence[str] | None = None, limit: int | None = None
    ) -> list[str]:
        return await redrive.discard(self, topic, group, ids, limit)

    # ------------------------------------------------------------------ request/reply
    async def create_reply_topic(self) -> str:
        """A topic private to this connection, deleted by :meth:`close`; its keys expire
        ``REPLY_TTL`` seconds after the last refresh, so a crashed requester leaves nothing."""
        name = f"{REPLY_PREFIX}{secrets.token_hex(8)}"
        await self._create(TopicSpec(name=name, temporary=True), TopicKeys(name), exist_ok=False)
        self._replies.add(name)
        await self._refresh_replies()
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_loop())
        return name

    async def _refresh_replies(self) -> None:
        for name in list(self._replies):
            keys = TopicKeys(name)
            async for key in self.r.scan_iter(match=keys.pattern(), count=100):
                await self.r.expire(key, REPLY_TTL)

    async def _refresh_loop(self) -> None:
        while self._replies:
            await asyncio.sleep(REPLY_TTL / 10)
            try:
                await self._refresh_replies()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("redis: refreshing reply topics failed: %s", exc)

    async def delete_reply_topic(self, name: str) -> None:
        self._replies.discard(name)
        await self.delete_topic(name)

    def _debug(self) -> dict[str, Any]:
        return {"url": self.url, "topics": sorted(self._specs), "members": len(self._subs)}
