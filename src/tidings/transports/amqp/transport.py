"""`amqp://`: the tidings transport on RabbitMQ (AMQP 0-9-1, aio-pika).

``AmqpTransport("amqp://user:password@host:5672/vhost")``; the management API (for topic
settings and stats, :mod:`.management`) is ``http://host:15672`` unless the URL says
``?management=http://...``. The mapping onto exchanges and quorum queues is declared in
:mod:`.naming`; publishing waits for publisher confirms (a confirmed message is on disk in
every quorum queue it was routed to). A lost connection is re-opened and the subscriptions
resume (:mod:`.reconnect`). What RabbitMQ cannot do as the built-in broker does is listed in
docs/transports.md and left out of ``capabilities``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import aio_pika
import msgspec
from pamqp.common import FieldTable

from ...errors import (
    AlreadyExists,
    BadRequest,
    Closed,
    MessageTooLarge,
    NotFound,
    TransportUnavailable,
    Unsupported,
)
from ...model import GroupInfo, GroupSpec, Outgoing, PartitionInfo, Receipt, TopicInfo, TopicSpec
from ...names import REPLY_PREFIX
from ...partitioning import RoundRobin, partition_for
from ..base import (
    CAP_AUTO_ACK,
    CAP_DEAD_LETTER_EXPIRED,
    CAP_DEDUP,
    CAP_GROUP_RESET,
    CAP_ORDERED,
    CAP_PREFETCH_BYTES,
    CAP_TTL,
    CAP_WORK_QUEUE,
    SubscribeOptions,
    Transport,
    TransportSubscription,
)
from ..capabilities import require_group, require_topic
from ..rules import deadletter
from .codec import Incoming, encode, new_offset
from .errors import translated
from .management import Management
from .naming import (
    GROUP_ARG,
    TOPIC_ARG,
    exchange_name,
    partition_queue,
    queue_prefix,
    routing_key,
    shared_queue,
    topic_of_exchange,
    unclaimed_name,
)
from .ordered import OrderedSubscription
from .reconnect import Reconnector
from .subscription import AmqpSubscription

log = logging.getLogger("tidings.transports.amqp")

DEDUP_ENTRIES = 100_000  # producer ids remembered per connection

# what to do instead of what stock RabbitMQ cannot do (docs/transports.md, "amqp://")
ALTERNATIVES = {
    "delay": "stock RabbitMQ has no delayed delivery; publish when the message is due (a "
    "scheduler, or an outbox row with a due time), or use tidings://, nats:// or redis://",
    "start_offset": "a RabbitMQ group starts where it is declared; declare it before "
    "publishing, or use tidings://, nats:// or redis:// to read from an offset",
    "start_time": "a RabbitMQ group starts where it is declared; declare it before "
    "publishing, or use tidings://, nats:// or redis:// to read from a time",
    "group_reset": "RabbitMQ keeps no consumed messages to go back to; delete the group and "
    "subscribe again to start from new messages",
    "key_ordered": "use an ordered group (mode='ordered'): one in flight per partition",
    "prefetch_bytes": "bound a member by message count (prefetch)",
    "replicas": "quorum queues are replicated by RabbitMQ itself on a cluster "
    "(x-quorum-initial-group-size); leave replicas at 1",
}


def split_url(url: str) -> tuple[str, str, str, str, str]:
    """(the URL aio-pika connects to, the management base URL, vhost, user, password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise BadRequest(f"not an amqp:// URL: {url!r}")
    query = dict(parse_qsl(parts.query))
    host = parts.hostname or "127.0.0.1"
    user = unquote(parts.username or "guest")
    password = unquote(parts.password or "guest")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    management = query.pop("management", None) or f"http://{host}:15672"
    amqp = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))
    return amqp, management, vhost, user, password


def _spec_of(arguments: dict[str, Any] | None) -> TopicSpec | None:
    raw = (arguments or {}).get(TOPIC_ARG)
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw.encode() if isinstance(raw, str) else raw, type=TopicSpec)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _group_spec_of(arguments: dict[str, Any] | None) -> GroupSpec | None:
    raw = (arguments or {}).get(GROUP_ARG)
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw.encode() if isinstance(raw, str) else raw, type=GroupSpec)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def retention_arguments(spec: TopicSpec) -> dict[str, Any]:
    """A topic's retention as quorum-queue arguments (each group queue holds its copy)."""
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if spec.max_age is not None:
        args["x-message-ttl"] = int(spec.max_age * 1000)
    if spec.max_messages is not None:
        args["x-max-length"] = spec.max_messages
    if spec.max_bytes is not None:
        args["x-max-length-bytes"] = spec.max_bytes
    if spec.max_messages is not None or spec.max_bytes is not None:
        args["x-overflow"] = "reject-publish" if spec.overflow == "reject" else "drop-head"
    return args


class AmqpTransport(Transport):
    scheme = "amqp"
    capabilities = frozenset(
        {CAP_ORDERED, CAP_TTL, CAP_DEDUP, CAP_AUTO_ACK, CAP_WORK_QUEUE, CAP_DEAD_LETTER_EXPIRED}
    )

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        name: str | None = None,
        connect_timeout: float = 5.0,
        publish_timeout: float = 10.0,
        reconnect_wait: float | None = None,
    ) -> None:
        self.url = url
        self._amqp_url, mgmt, vhost, user, password = split_url(url)
        self._name = name
        self._connect_timeout = connect_timeout
        self._publish_timeout = publish_timeout
        self.management = Management(mgmt, vhost, user, password)
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._dropped: object = None  # the connection that closed under us, if any
        self._publisher: aio_pika.abc.AbstractChannel | None = None
        self._admin: aio_pika.abc.AbstractChannel | None = None
        self._specs: dict[str, TopicSpec] = {}
        self._subs: set[AmqpSubscription] = set()
        self._replies: list[str] = []
        self._dedup: OrderedDict[tuple[str, str], tuple[float, Receipt]] = OrderedDict()
        self._rr = RoundRobin()
        # operations wait this long for a lost connection to come back (default: the
        # publish timeout), then fail with TransportUnavailable
        self.link = Reconnector(self, publish_timeout if reconnect_wait is None else reconnect_wait)

    def require(self, capability: str, what: str) -> None:
        """As every transport, and the refusal names what to do instead on RabbitMQ."""
        try:
            super().require(capability, what)
        except Unsupported as exc:
            instead = ALTERNATIVES.get(capability)
            if instead is None:
                raise
            raise Unsupported(f"{exc.message}: {instead}") from None

    # ------------------------------------------------------------------ connection
    @property
    def connection(self) -> aio_pika.abc.AbstractConnection:
        if self._connection is None:
            raise Closed("the amqp:// transport is not connected: call connect() first")
        if not self.is_open():
            if self.link.closing:
                raise Closed("the amqp:// transport is closed")
            raise TransportUnavailable(
                f"the connection to RabbitMQ at {self.where()} was lost; the transport is "
                "reconnecting: retry later"
            )
        return self._connection

    def is_open(self) -> bool:
        # aio-pika's is_closed stays False after the server or the network dropped the
        # connection (only close() sets it): the close callback marks it dropped
        c = self._connection
        return c is not None and not c.is_closed and c is not self._dropped

    def where(self) -> str:
        parts = urlsplit(self._amqp_url)
        return f"{parts.hostname}:{parts.port or 5672}"

    def subscriptions(self) -> list[AmqpSubscription]:
        return list(self._subs)

    async def connect(self) -> None:
        self.link.closing = False
        await self.open()
        try:
            await self.management.start()
        except BaseException:
            self.link.stop()
            await self.drop()
            raise
        self.link.connected()

    async def open(self) -> None:
        """Open the AMQP connection (the first one, or again after it was lost)."""
        props: FieldTable | None = {"connection_name": self._name} if self._name else None
        try:
            connection = await aio_pika.connect(
                self._amqp_url, timeout=self._connect_timeout, client_properties=props
            )
        except Exception as exc:
            raise TransportUnavailable(
                f"cannot connect to RabbitMQ at {self.where()}: {exc}; check that "
                "rabbitmq-server runs there and the URL's user, password and vhost"
            ) from exc
        self._connection = connection
        self._publisher = self._admin = None
        connection.close_callbacks.add(self._on_connection_closed)

    def _on_connection_closed(self, sender: Any, exc: BaseException | None = None) -> None:
        if sender is self._connection:
            self._dropped = sender
            if not self.link.closing:
                self.link.lost(exc)

    async def restore(self) -> None:
        """After a reconnect: declare again the reply topics' exchanges (auto-deleted with
        their inboxes when the connection closed; the inboxes come back with their
        subscriptions). Durable topics and group queues outlive connections and restarts."""
        for name in self._replies:
            spec = self._specs.get(name)
            if spec is not None:
                with translated(f"declare reply topic {name!r} again"):
                    await self._declare_topic(spec)

    async def drop(self) -> None:
        """Close the connection without the subscriptions (a failed connect or restore)."""
        if self._connection is not None and not self._connection.is_closed:
            with contextlib.suppress(Exception):
                await self._connection.close()

    async def close(self) -> None:
        """Close every subscription, delete this connection's reply topics, disconnect."""
        if self._connection is None:
            return
        connected = self.link.up.is_set() and self.is_open()
        self.link.stop()
        await asyncio.gather(*(sub.close() for sub in list(self._subs)), return_exceptions=True)
        if connected:
            for name in self._replies:
                with contextlib.suppress(Exception):
                    await self.delete_topic(name)
        self._replies.clear()
        await self.drop()
        await self.management.close()

    def forget(self, sub: AmqpSubscription) -> None:
        self._subs.discard(sub)

    async def _channel(self, confirms: bool = False) -> aio_pika.abc.AbstractChannel:
        """The admin (or publishing) channel, reopened after the server closed it (a failed
        declaration closes the channel in AMQP 0-9-1). While the connection is lost, waits
        for the reconnect (at most ``reconnect_wait``)."""
        await self.link.ready()
        current = self._publisher if confirms else self._admin
        if current is None or current.is_closed:
            current = await self.connection.channel(publisher_confirms=confirms)
            if confirms:
                self._publisher = current
            else:
                self._admin = current
        return current

    # ------------------------------------------------------------------ topics
    async def _read_spec(self, name: str) -> TopicSpec | None:
        try:
            row = await self.management.exchange(exchange_name(name))
        except NotFound:
            return None
        return _spec_of(row.get("arguments"))

    async def _spec(self, name: str, fresh: bool = False) -> TopicSpec:
        if not fresh and name in self._specs:
            return self._specs[name]
        spec = await self._read_spec(name)
        if spec is None:
            raise NotFound(f"topic {name!r} does not exist: create it first")
        self._specs[name] = spec
        return spec

    async def create_topic(
        self, spec: TopicSpec, *, exist_ok: bool = True, given: Sequence[str] | None = None
    ) -> TopicSpec:
        # ``given`` is checked above the engine (the client compares the settings it gave)
        spec = spec.validate()
        require_topic(self, spec)
        existing = await self._read_spec(spec.name)
        if existing is None:
            with translated(f"create topic {spec.name!r}"):
                await self._declare_topic(spec)
            existing = await self._read_spec(spec.name) or spec
        elif not exist_ok:
            raise AlreadyExists(f"topic {spec.name!r} already exists")
        self._specs[spec.name] = existing
        return existing

    async def _declare_topic(self, spec: TopicSpec) -> None:
        ch = await self._channel()
        arguments: dict[str, Any] = {TOPIC_ARG: msgspec.json.encode(spec).decode()}
        if spec.temporary:
            await ch.declare_exchange(
                exchange_name(spec.name),
                aio_pika.ExchangeType.DIRECT,
                auto_delete=True,  # with its inbox queue, also after a crash
                arguments=arguments,
            )
            return
        unclaimed = unclaimed_name(spec.name)
        ux = await ch.declare_exchange(unclaimed, aio_pika.ExchangeType.FANOUT, durable=True)
        uq = await ch.declare_queue(unclaimed, durable=True, arguments=retention_arguments(spec))
        await uq.bind(ux)
        arguments["alternate-exchange"] = unclaimed
        await ch.declare_exchange(
            exchange_name(spec.name),
            aio_pika.ExchangeType.DIRECT,
            durable=True,
            arguments=arguments,
        )

    async def ensure_topic(self, spec: TopicSpec) -> TopicSpec:
        if spec.name in self._specs:
            return self._specs[spec.name]
        return await self.create_topic(spec, exist_ok=True)

    async def delete_topic(self, name: str) -> None:
        self._specs.pop(name, None)
        if await self._read_spec(name) is None:
            raise NotFound(f"topic {name!r} does not exist")
        queues = await self.management.queues(queue_prefix(name))
        with translated(f"delete topic {name!r}"):
            ch = await self._channel()
            for row in queues:
                await ch.queue_delete(row["name"])
            await ch.exchange_delete(exchange_name(name))
            with contextlib.suppress(Exception):
                await ch.queue_delete(unclaimed_name(name))
                await ch.exchange_delete(unclaimed_name(name))

    async def list_topics(self) -> list[TopicSpec]:
        out = []
        for row in await self.management.exchanges():
            if topic_of_exchange(str(row.get("name", ""))) is None:
                continue
            spec = _spec_of(row.get("arguments"))
            if spec is not None:
                out.append(spec)
        return sorted(out, key=lambda s: s.name)

    async def topic_info(self, name: str) -> TopicInfo:
        return await self._topic_info(name, dead_letters=True)

    async def _topic_info(self, name: str, dead_letters: bool) -> TopicInfo:
        spec = await self._spec(name, fresh=True)
        groups = await self._groups(name)
        unclaimed = 0
        if not spec.temporary:
            unclaimed = (await self._depths([unclaimed_name(name)]))[0][0]
        infos = [await self._group_info(spec, gspec, rows) for gspec, rows in groups.values()]
        if dead_letters:
            for info in infos:
                info.dead_lettered = await self._dead_lettered(info.spec)
        # RabbitMQ keeps messages in each group's queue, not in the topic: a topic holds what
        # its largest backlog holds
        messages = max([unclaimed, *(g.lag for g in infos)])
        return TopicInfo(
            name=name,
            spec=spec,
            messages=messages,
            partitions=[
                PartitionInfo(partition=p, first_offset=0, next_offset=0)
                for p in range(spec.partitions)
            ],
            groups=infos,
        )

    # ------------------------------------------------------------------ publishing
    async def publish(self, topic: str, messages: Sequence[Outgoing]) -> list[Receipt]:
        if not messages:
            return []
        await self.link.ready()  # during an outage: wait for the reconnect (bounded)
        spec = await self._spec(topic)
        dedup = spec.dedup_window > 0
        now = time.time()
        receipts: list[Receipt] = []
        sent: list[tuple[str | None, Receipt, asyncio.Future[Any]]] = []
        try:
            with translated(f"publish to topic {topic!r}"):
                channel = await self._channel(confirms=True)
                exchange = await channel.get_exchange(exchange_name(topic), ensure=False)
                # Frames are written in the order the publishes start, and nothing below awaits
                # before every publish of this batch has started: one producer's messages
                # enter each partition in call order.
                batch: dict[str, Receipt] = {}
                for m in messages:
                    if len(m.body) > spec.max_message_size:
                        raise MessageTooLarge(
                            f"a message of {len(m.body)} bytes exceeds the max_message_size of "
                            f"topic {topic!r} ({spec.max_message_size} bytes): send less or "
                            "raise the limit"
                        )
                    if dedup and m.msg_id is not None:
                        first = batch.get(m.msg_id) or self._duplicate(topic, m.msg_id, now)
                        if first is not None:
                            receipts.append(_dup(first))
                            continue
                    p = (
                        partition_for(m.key, spec.partitions)
                        if m.key is not None
                        else self._rr.next(spec.partitions)
                    )
                    offset = new_offset()
                    receipt = Receipt(topic, p, offset, f"{offset:x}")
                    if dedup and m.msg_id is not None:
                        batch[m.msg_id] = receipt
                    body = encode(m, p, offset, receipt.id, now)
                    future: asyncio.Future[Any] = asyncio.ensure_future(
                        exchange.publish(body, routing_key(p), mandatory=False)
                    )
                    sent.append((m.msg_id, receipt, future))
                    receipts.append(receipt)
                if sent:
                    await asyncio.wait_for(
                        asyncio.gather(*(f for *_, f in sent)), self._publish_timeout
                    )
        except BaseException as exc:
            for *_, future in sent:
                future.cancel()
            if isinstance(exc, NotFound | TransportUnavailable) and self.is_open():
                self._specs.pop(topic, None)  # gone, maybe: look again next time
            raise
        if dedup:
            expires = now + spec.dedup_window
            for msg_id, receipt, _ in sent:
                if msg_id is not None:
                    self._remember(topic, msg_id, expires, receipt)
        return receipts

    def _duplicate(self, topic: str, msg_id: str, now: float) -> Receipt | None:
        """Producer dedup, by this transport: the receipt of ``msg_id`` published through this
        connection within the topic's dedup window."""
        hit = self._dedup.get((topic, msg_id))
        if hit is None or hit[0] <= now:
            return None
        return hit[1]

    def _remember(self, topic: str, msg_id: str, expires: float, receipt: Receipt) -> None:
        self._dedup[(topic, msg_id)] = (expires, receipt)
        self._dedup.move_to_end((topic, msg_id))
        while len(self._dedup) > DEDUP_ENTRIES:
            self._dedup.popitem(last=False)

    # ------------------------------------------------------------------ groups
    def _queues_of(self, topic: TopicSpec, spec: GroupSpec) -> list[str]:
        if spec.mode == "ordered":
            return [partition_queue(topic.name, spec.name, p) for p in range(topic.partitions)]
        return [shared_queue(topic.name, spec.name)]

    async def subscribe(
        self, spec: GroupSpec, *, prefetch: int = 100, options: SubscribeOptions | None = None
    ) -> TransportSubscription:
        spec = spec.validate()
        require_group(self, spec)
        if options is not None and options.prefetch_bytes:
            self.require(CAP_PREFETCH_BYTES, f"prefetch_bytes for group {spec.name!r}")
        topic = await self._spec(spec.topic)
        await self.link.ready()
        stored = await self._ensure_group(topic, spec)
        if stored.mode != spec.mode:
            raise BadRequest(
                f"group {spec.name!r} of topic {spec.topic!r} exists with mode={stored.mode!r}: "
                "a group's mode cannot change; delete the group or use another name"
            )
        cls = OrderedSubscription if spec.mode == "ordered" else AmqpSubscription
        sub = cls(self, spec, topic, self._queues_of(topic, spec), prefetch, options)
        await sub.start()
        self._subs.add(sub)
        return sub

    async def _ensure_group(self, topic: TopicSpec, spec: GroupSpec) -> GroupSpec:
        """Declare the group's queue(s) bound to the topic, unless they exist (then the spec it
        was first declared with is returned), and move the topic's unclaimed messages in."""
        groups = await self._groups(topic.name)
        if spec.name in groups:
            return groups[spec.name][0]
        with translated(f"declare group {spec.name!r} of topic {topic.name!r}"):
            ch = await self._channel()
            exchange = await ch.get_exchange(exchange_name(topic.name), ensure=False)
            arguments = retention_arguments(topic)
            arguments[GROUP_ARG] = msgspec.json.encode(spec).decode()
            if topic.temporary:  # a reply inbox: gone with this connection
                await self.declare_inbox(topic, spec)
                return spec
            if spec.mode == "ordered":
                arguments["x-single-active-consumer"] = True
                for p in range(topic.partitions):
                    queue = await ch.declare_queue(
                        partition_queue(topic.name, spec.name, p), durable=True, arguments=arguments
                    )
                    await queue.bind(exchange, routing_key(p))
            else:
                queue = await ch.declare_queue(
                    shared_queue(topic.name, spec.name), durable=True, arguments=arguments
                )
                for p in range(topic.partitions):
                    await queue.bind(exchange, routing_key(p))
            if spec.start != "latest":  # 'latest': only what is published from now on
                await self._claim(topic)
        return spec

    async def declare_inbox(self, topic: TopicSpec, spec: GroupSpec) -> None:
        """A reply topic's inbox queue: exclusive to this connection, so declared again by its
        subscription after a reconnect."""
        with translated(f"declare the inbox of reply topic {topic.name!r}"):
            ch = await self._channel()
            exchange = await ch.get_exchange(exchange_name(topic.name), ensure=False)
            queue = await ch.declare_queue(
                shared_queue(topic.name, spec.name),
                exclusive=True,
                auto_delete=True,
                arguments={GROUP_ARG: msgspec.json.encode(spec).decode()},
            )
            await queue.bind(exchange, routing_key(0))

    async def _claim(self, topic: TopicSpec) -> None:
        """Publish the messages the topic kept while it had no group into the topic again (the
        groups bound now receive them), each acked once its copy is confirmed."""
        ch = await self._channel()
        unclaimed = await ch.get_queue(unclaimed_name(topic.name), ensure=False)
        exchange = await (await self._channel(confirms=True)).get_exchange(
            exchange_name(topic.name), ensure=False
        )
        while True:
            raw = await unclaimed.get(no_ack=False, fail=False, timeout=self._publish_timeout)
            if raw is None:
                return
            copy = aio_pika.Message(
                raw.body,
                headers=dict(raw.headers or {}),
                message_id=raw.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(copy, raw.routing_key or "0", mandatory=False)
            await raw.ack()

    async def _groups(self, topic: str) -> dict[str, tuple[GroupSpec, list[dict[str, Any]]]]:
        """The topic's groups: name -> (spec, their queues' management rows)."""
        out: dict[str, tuple[GroupSpec, list[dict[str, Any]]]] = {}
        for row in await self.management.queues(queue_prefix(topic)):
            gspec = _group_spec_of(row.get("arguments"))
            if gspec is None or gspec.topic != topic:
                continue
            if gspec.name in out:
                out[gspec.name][1].append(row)
            else:
                out[gspec.name] = (gspec, [row])
        return out

    async def _depths(self, queues: list[str]) -> list[tuple[int, int]]:
        """(ready messages, consumers) of each queue, exact (a passive declaration; the
        management API's figures lag by the statistics interval)."""
        out = []
        for name in queues:
            try:
                ch = await self._channel()
                ok = (await ch.declare_queue(name, passive=True)).declaration_result
                out.append((int(ok.message_count or 0), int(ok.consumer_count or 0)))
            except Exception:  # gone meanwhile (the failed declaration closed the channel)
                out.append((0, 0))
        return out

    async def _group_info(
        self, topic: TopicSpec, spec: GroupSpec, rows: list[dict[str, Any]]
    ) -> GroupInfo:
        def total(field: str) -> int:
            return sum(int(r.get(field) or 0) for r in rows)

        def stat(field: str) -> float:
            return sum(float((r.get("message_stats") or {}).get(field) or 0) for r in rows)

        def rate(field: str) -> float:
            return sum(
                float(
                    ((r.get("message_stats") or {}).get(field + "_details") or {}).get("rate") or 0
                )
                for r in rows
            )

        depths = await self._depths([str(r["name"]) for r in rows])
        ready, unacked = sum(d[0] for d in depths), total("messages_unacknowledged")
        consumers = max((d[1] for d in depths), default=0)
        return GroupInfo(
            topic=topic.name,
            name=spec.name,
            mode=spec.mode,
            ready=ready,
            in_flight=unacked,
            lag=ready + unacked,
            members=consumers,
            deliver_rate=rate("deliver_get"),
            ack_rate=rate("ack"),
            spec=spec,
            delivered_total=int(stat("deliver_get")),
            acked_total=int(stat("ack")),
        )

    async def group_info(self, topic: str, group: str) -> GroupInfo:
        spec = await self._spec(topic, fresh=True)
        groups = await self._groups(topic)
        if group not in groups:
            raise NotFound(f"group {group!r} of topic {topic!r} does not exist")
        gspec, rows = groups[group]
        info = await self._group_info(spec, gspec, rows)
        info.dead_lettered = await self._dead_lettered(gspec)
        return info

    async def _dead_lettered(self, spec: GroupSpec | None) -> int:
        """Messages in the group's dead-letter topic (0 while it does not exist)."""
        if spec is None:
            return 0
        with contextlib.suppress(NotFound):
            return (await self._topic_info(deadletter.topic_of(spec), False)).messages
        return 0

    async def reset_group(
        self, topic: str, group: str, start: str = "earliest", start_value: float | None = None
    ) -> None:
        self.require(CAP_GROUP_RESET, f"resetting group {group!r}")

    async def delete_group(self, topic: str, group: str) -> None:
        await self._spec(topic)
        groups = await self._groups(topic)
        if group not in groups:
            raise NotFound(f"group {group!r} of topic {topic!r} does not exist")
        with translated(f"delete group {group!r}"):
            ch = await self._channel()
            for row in groups[group][1]:
                await ch.queue_delete(row["name"])

    # ------------------------------------------------------------------ dead letters
    async def dead_letter(
        self,
        source: TopicSpec,
        spec: GroupSpec,
        inc: Incoming,
        reason: str,
        deliveries: int,
        error: str | None,
    ) -> None:
        """Publish ``inc`` to the group's dead-letter topic (created on demand) with the
        ``tidings-dlq-*`` headers; the caller then acks the original (a crash in between
        leaves a duplicate dead letter, never a loss)."""
        name = deadletter.topic_of(spec)
        await self.ensure_topic(deadletter.topic_spec(source, name))
        copy = deadletter.copy(
            spec,
            body=inc.body,
            key=inc.key,
            headers=inc.headers,
            partition=inc.partition,
            offset=inc.offset,
            message_id=inc.id,
            msg_id=inc.msg_id,
            reason=reason,
            deliveries=deliveries,
            error=error,
        )
        await self.publish(name, [copy])

    # ------------------------------------------------------------------ request/reply
    async def create_reply_topic(self) -> str:
        """A non-durable exchange with an exclusive inbox queue: RabbitMQ deletes the queue
        when this connection closes (also after a crash); :meth:`close` deletes the exchange."""
        name = f"{REPLY_PREFIX}{secrets.token_hex(8)}"
        spec = TopicSpec(name=name, temporary=True, dedup_window=0, max_age=3600.0)
        await self.create_topic(spec, exist_ok=False)
        self._replies.append(name)
        return name


def _dup(receipt: Receipt) -> Receipt:
    return Receipt(receipt.topic, receipt.partition, receipt.offset, receipt.id, True)
