"""A member of a shared group on redis://: reading, claiming expired leases, settling.

Each member is a consumer (named by a random member id) of the group's consumer group on every
partition stream. Its reader task loops:

- new messages: ``XREADGROUP ... >`` for its free credit (``prefetch`` minus what it buffers
  or holds; credit comes back on settlement, not on expiry, so a stuck member stops
  receiving), blocking a short while;
- expired leases: the ``CLAIM`` script (:mod:`.scripts`) takes entries idle for a lease or more
  from whichever member had them; a claim is a redelivery (the count goes up). A claimed
  message whose last allowed lease expired is dead-lettered at once (the shared rule
  :func:`~tidings.transports.rules.admission.past_last_lease`), not when the application next
  asks;
- a heartbeat (for ``group_info.members``) every third of the session timeout;
- stuck detection (:mod:`..rules.stuck`, the built-in broker's rule): a buffered or held
  message whose lease ran out unsettled is dropped here (its credit stays used until the
  member settles or takes a message again, so it is not re-fed its own expired messages) and
  counted; while stuck the member writes its stall into the group's stuck hash
  (``group_info.stuck_members``), and still stuck ``stuck_member_leases`` lease periods after
  the first expiry it closes itself: ``next()`` raises ``MemberStuck``, its messages are given
  back at once and it leaves the group.

Before a message is handed to the application the shared receipt rules
(:func:`~tidings.transports.rules.admission.admit`) decide: a buffered message whose lease ran
out is dropped (another member claims it), a redrive for another group and an expired TTL are
acknowledged (or dead-lettered), an early delayed message is deferred for the rest of its delay
and the early delivery is not counted.

Settling is the ``SETTLE`` script, which acts only on entries this member still owns:
ack = ``XACK``; nack(delay) and extend(seconds) = ``XCLAIM`` to itself with an idle time that
makes the entry claimable exactly after that many seconds (the hold set beyond one lease);
reject and the last nack = the ``DEAD_LETTER`` script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.typing import KeyT, StreamIdT

from ...errors import BadRequest, Closed, LeaseLost, MemberStuck, NotFound, TidingsError
from ...model import GroupSpec, Message, TopicSpec
from ..base import BufferedSubscription, SubscribeOptions
from ..leasing import LeaseRenewer
from ..rules.admission import admit, past_last_lease
from ..rules.settling import on_nack, on_reject
from ..rules.stuck import StuckWatch
from . import deadletter
from .codec import Entry, new_id
from .errors import translate, translated
from .naming import TopicKeys
from .replies import stream_entries

if TYPE_CHECKING:
    from .transport import RedisTransport

log = logging.getLogger("tidings.transports.redis")

CLAIM_INTERVAL = 0.25  # seconds between two looks for expired leases (at most)


class _Held:
    __slots__ = ("deadline", "entry", "message")

    def __init__(self, entry: Entry, message: Message, deadline: float) -> None:
        self.entry = entry
        self.message = message
        self.deadline = deadline  # time.monotonic() when the lease runs out


class RedisSubscription(BufferedSubscription):
    def __init__(
        self,
        transport: RedisTransport,
        spec: GroupSpec,
        topic: TopicSpec,
        keys: TopicKeys,
        prefetch: int,
        options: SubscribeOptions | None = None,
    ) -> None:
        if prefetch < 1:
            raise BadRequest("prefetch must be >= 1")
        options = options or SubscribeOptions()
        self.spec = spec
        self.topic = topic
        self.keys = keys
        self.prefetch = prefetch
        self.confirm_acks = options.confirm_acks
        self.member = new_id()
        self.leases: LeaseRenewer[Entry] = LeaseRenewer(
            spec.lease,
            self._extend_many,
            max_extension=0.0 if spec.auto_ack else options.max_lease_extension,
        )
        self._t = self.transport = transport
        self._r = transport.r
        self._lease_ms = max(1, int(spec.lease * 1000))
        self._claim_every = min(CLAIM_INTERVAL, spec.lease / 4)
        self._beat_every = min(max(spec.session_timeout / 3, 0.1), 5.0)
        self._buffer: deque[Entry] = deque()
        self._held: dict[tuple[int, int], _Held] = {}  # by (partition, offset)
        self._arrived = asyncio.Event()
        self._poke = asyncio.Event()  # credit came back, or something became claimable
        self._closed = False
        self._failure: TidingsError | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rotation = 0
        self._claimable = False  # something was given back: look for it before the next tick
        self._acks: list[Entry] = []  # unconfirmed acks not sent yet (confirm_acks=False)
        self._flusher: asyncio.Task[None] | None = None
        self._reader: Redis | None = None
        self._unblocker: Redis | None = None  # on the reader's server (one Cluster node)
        self._reader_id = 0
        self.stuck = StuckWatch(spec.lease, transport.stuck_member_leases)
        self._lost = 0  # credit of leases that ran out here, back on the next sign of life
        self._stall_written = False
        self._evicting: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- reading
    def free(self) -> int:
        return self.prefetch - len(self._buffer) - len(self._held) - self._lost

    async def start(self) -> None:
        with translated(f"join group {self.spec.name!r} of topic {self.spec.topic!r}"):
            await self._t.heartbeat(self.keys, self.spec, self.member)
            await self.prune()
            # blocking reads on a connection of their own, which close() unblocks
            self._reader, self._unblocker = self._t.blocking_client(self.keys.stream(0))
            self._reader_id = int(await self._reader.client_id())
        self._task = asyncio.create_task(self._run(), name=f"tidings-redis-{self.spec.name}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_claim = next_lapse = 0.0
        next_beat = loop.time() + self._beat_every
        parts = list(range(self.topic.partitions))
        while not self._closed:
            try:
                now = loop.time()
                if now >= next_beat:
                    await self._t.heartbeat(self.keys, self.spec, self.member)
                    next_beat = now + self._beat_every
                if now >= next_lapse:
                    if await self._lapse():
                        return  # stuck for good: closing
                    next_lapse = now + self._claim_every
                if self.free() > 0 and (now >= next_claim or self._claimable):
                    self._claimable = False
                    await self._claim(parts)
                    next_claim = loop.time() + self._claim_every
                free = self.free()
                # without credit there is nothing to claim: sleep until a settlement pokes
                due = (
                    min(next_claim, next_beat, next_lapse)
                    if free > 0
                    else min(next_beat, next_lapse)
                )
                wait = max(0.001, due - loop.time())
                if free > 0:
                    await self._read(parts, free, wait)
                else:  # no credit: wait until a settlement gives some back
                    self._poke.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._poke.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = translate(exc, f"read group {self.spec.name!r}")
                if "NOGROUP" in str(exc):
                    if await self._group_exists():
                        await asyncio.sleep(0.05)
                        continue  # a reset_group recreated it meanwhile
                    self._fail(
                        NotFound(
                            f"group {self.spec.name!r} of topic {self.spec.topic!r} was deleted"
                        )
                    )
                    return
                log.warning("redis: %s; retrying", error)
                await asyncio.sleep(0.5)

    async def _group_exists(self) -> bool:
        """False once the group is deleted (not while a reset recreates it)."""
        for _ in range(10):
            with contextlib.suppress(Exception):
                if not await self._r.hexists(self.keys.groups, self.spec.name):
                    return False
                groups = await self._r.xinfo_groups(self.keys.stream(0))
                if any(g.get("name") == self.spec.name.encode() for g in groups):
                    return True
            await asyncio.sleep(0.1)
        return True

    async def _read(self, parts: list[int], free: int, wait: float) -> None:
        # COUNT applies per stream: read from at most `free` partitions, so that the total
        # never exceeds the member's credit
        n = len(parts)
        if free < n:
            start = self._rotation % n
            self._rotation += free
            parts = [parts[(start + i) % n] for i in range(free)]
        streams: dict[KeyT, StreamIdT] = {self.keys.stream(p): ">" for p in parts}
        assert self._reader is not None
        reply = stream_entries(
            await self._reader.xreadgroup(
                self.spec.name,
                self.member,
                streams,
                count=max(1, free // len(parts)),
                block=max(1, int(wait * 1000)),
            )
        )
        arrived = time.monotonic()
        for stream, entries in reply:
            p = int(stream.rsplit(b":", 1)[1])
            for entry_id, fields in entries:
                if fields is None:
                    continue  # deleted meanwhile (trimmed)
                self._sink(Entry(p, entry_id.decode(), fields, 1, 0, arrived))

    async def _claim(self, parts: Iterable[int]) -> None:
        for p in parts:
            free = self.free()
            if free <= 0:
                return
            claimed = await self._t.scripts.claim(
                keys=[
                    self.keys.stream(p),
                    self.keys.hold(self.spec.name, p),
                    self.keys.skips(self.spec.name, p),
                ],
                args=[self.spec.name, self.member, self._lease_ms, free],
            )
            arrived = time.monotonic()
            for entry_id, flat, count, skips in claimed or []:
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                self._sink(Entry(p, entry_id.decode(), fields, int(count), int(skips), arrived))

    def _sink(self, entry: Entry) -> None:
        if past_last_lease(entry.count, self.spec.max_deliveries):
            # its last lease expired: dead-letter it now, as the built-in broker's timer does
            self._background(self._dead_letter(entry, "max-deliveries", entry.count - 1, None))
            return
        if self.leases.enabled:
            self.leases.track(entry, entry.arrived)
        self._buffer.append(entry)
        self._arrived.set()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("redis: %s", task.exception())

    def _fail(self, error: TidingsError) -> None:
        self._failure = error
        self._arrived.set()

    # ---------------------------------------------------------------- stuck members
    def _partitions_owned(self) -> list[int]:
        return []

    async def _lapse(self) -> bool:
        """Drop and count what this member let expire (buffered or held past its lease, not
        settled); write its stall while stuck. True when it is stuck for good and closing."""
        if self.spec.auto_ack:
            return False
        now = time.monotonic()
        leases = self.leases
        lapsed = 0
        for key, held in list(self._held.items()):
            kept = leases.deadline(held.entry)
            if max(held.deadline, kept or 0.0) <= now:
                del self._held[key]
                leases.release(held.entry)
                lapsed += 1
        if self._buffer:
            keep: deque[Entry] = deque()
            for entry in self._buffer:
                kept = leases.deadline(entry)
                if (kept is None and now - entry.arrived >= self.spec.lease) or not leases.alive(
                    entry
                ):
                    leases.release(entry)
                    lapsed += 1
                else:
                    keep.append(entry)
            self._buffer = keep
        if lapsed:
            self._lost = min(self._lost + lapsed, self.prefetch)
            self.stuck.expired(lapsed, now)
        if not self.stuck.stuck:
            return False
        if self.stuck.for_good(now):
            self._evict()
            return True
        stall = {
            "expiries": self.stuck.expiries,
            "in_flight": len(self._held) + len(self._buffer) + self._lost,
            "partitions": self._partitions_owned(),
        }
        await self._r.hset(self.keys.stuck(self.spec.name), self.member, json.dumps(stall))
        self._stall_written = True
        return False

    def _alive(self) -> None:
        """The application took or settled a message: not stuck, the lost credit is back."""
        if self._lost or self.stuck.since is not None:
            self._lost = 0
            self.stuck.alive()
            self._poke.set()
        if self._stall_written:
            self._stall_written = False
            self._background(self._unstall())

    async def _unstall(self) -> None:
        with contextlib.suppress(Exception):
            await self._r.hdel(self.keys.stuck(self.spec.name), self.member)

    def _evict(self) -> None:
        """Stuck for good: fail ``next()`` with MemberStuck and leave the group."""
        error = self.stuck.error(self.spec.topic, self.spec.name)
        log.warning(
            "member %s of %s/%s is stuck (%d leases expired, nothing settled for %d lease "
            "periods): closing it",
            self.member,
            self.spec.topic,
            self.spec.name,
            self.stuck.expiries,
            self.stuck.periods,
        )
        self._fail(error)
        self._evicting = asyncio.create_task(self.close())

    def flush(self) -> None:
        """The group was reset: what was read before belongs to the old position."""
        self._buffer.clear()
        self._held.clear()
        self.leases.clear()
        self._lost = 0
        self.stuck.alive()
        self._poke.set()

    # ---------------------------------------------------------------- receiving
    async def next(self, timeout: float | None = None) -> Message | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        self._alive()  # the application takes messages again
        while True:
            if self._closed:
                if isinstance(self._failure, MemberStuck):
                    raise self._failure
                raise Closed(f"subscription to group {self.spec.name!r} is closed")
            if self._failure is not None:
                raise self._failure
            while self._buffer:
                entry = self._buffer.popleft()
                self._poke.set()
                message = await self._admit(entry)
                if message is not None:
                    return message
            self._arrived.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()

    async def _admit(self, entry: Entry) -> Message | None:
        spec = self.spec
        now = time.monotonic()
        leases = self.leases
        kept = leases.deadline(entry)
        if not spec.auto_ack and (
            (kept is None and now - entry.arrived >= spec.lease) or not leases.alive(entry)
        ):
            leases.release(entry)
            return None  # its lease ran out in the buffer: another member claims it
        wall = time.time()
        count = entry.count
        verdict = admit(
            spec,
            count,
            now=wall,
            expires_at=entry.expires_at,
            deliver_at=entry.deliver_at,
            redrive_group=entry.redrive_group,
        )
        if verdict.action != "deliver":
            leases.release(entry)
            if verdict.action == "dead-letter":
                await self._dead_letter(entry, verdict.reason, verdict.deliveries, None)
            elif verdict.action == "drop":
                await self._settle("ack", [entry])
            else:  # an early delivery of a delayed message: back for the rest, uncounted
                await self._settle("defer", [entry], verdict.delay)
            return None
        lease_end = entry.arrived + spec.lease if kept is None else kept
        lease_until = None if spec.auto_ack else wall + (lease_end - now)
        message = Message(
            entry.delivery(spec.topic, spec.name, lease_until), None if spec.auto_ack else self
        )
        if spec.auto_ack:
            await self._settle("ack", [entry])
        else:
            self._held[(entry.partition, entry.offset)] = _Held(entry, message, lease_end)
            leases.handed(entry)
        return message

    # ---------------------------------------------------------------- settling
    def _take(self, message: Message, keep: bool = False) -> _Held:
        key = (message.partition, message.offset)
        held = self._held.get(key)
        if held is not None and held.message is message:
            kept = self.leases.deadline(held.entry)
            if kept is not None:
                held.deadline = max(held.deadline, kept)
        if held is None or held.message is not message or time.monotonic() >= held.deadline:
            if held is not None and held.message is message:
                del self._held[key]
                self.leases.release(held.entry)
                self._poke.set()
            raise LeaseLost()
        if not keep:
            del self._held[key]
            self.leases.release(held.entry)
            self._poke.set()
        self._alive()
        return held

    async def _settle(
        self, op: str, entries: list[Entry], seconds: float = 0.0, error: str | None = None
    ) -> set[Entry]:
        """Run ``op`` on ``entries`` (one script call per partition); the entries whose lease
        this member no longer has."""
        by_partition: dict[int, list[Entry]] = {}
        for e in entries:
            by_partition.setdefault(e.partition, []).append(e)
        lost: set[Entry] = set()
        g = self.spec.name
        with translated(f"{op} in group {g!r}"):
            for p, group in by_partition.items():
                k = self.keys
                refused = await self._t.scripts.settle(
                    keys=[k.stream(p), k.hold(g, p), k.skips(g, p), k.errors(g, p)],
                    args=[
                        g,
                        self.member,
                        op,
                        self._lease_ms,
                        int(seconds * 1000),
                        error or "",
                        *(e.entry for e in group),
                    ],
                )
                gone = {r.decode() for r in refused or []}
                lost.update(e for e in group if e.entry in gone)
        if op in ("nack", "release", "defer"):
            self._claimable = True  # claimable now, perhaps by this member
            self._poke.set()
        return lost

    async def _extend_many(self, entries: list[Entry]) -> list[Entry]:
        return list(await self._settle("extend", entries, self.spec.lease))

    async def ack(self, message: Message) -> None:
        """Confirmed (``confirm_acks``): one script call, LeaseLost if the lease was lost.
        Else queued and sent with the other acks of this loop turn in one call per partition
        (a lost ack means a redelivery, as with any at-least-once broker); stats and close
        wait for them."""
        held = self._take(message)
        if not self.confirm_acks:
            self._acks.append(held.entry)
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_acks())
            return
        if await self._settle("ack", [held.entry]):
            raise LeaseLost()

    async def _flush_acks(self) -> None:
        await asyncio.sleep(0)  # let the application's loop turn queue more
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                await self._settle("ack", batch)
            except Exception as exc:
                log.warning(
                    "redis: %d acks were not applied (redelivered later): %s", len(batch), exc
                )

    async def acks_applied(self) -> None:
        """Wait until the queued acks reached the server."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(flusher)

    async def ack_many(self, messages: Sequence[Message]) -> None:
        entries, late = [], False
        for m in messages:
            if m._settler is self and not m.settled:
                m.settled = True
                try:
                    entries.append(self._take(m).entry)
                except LeaseLost:
                    late = True
        lost = await self._settle("ack", entries) if entries else set()
        if late or (lost and self.confirm_acks):
            raise LeaseLost()

    async def nack(self, message: Message, delay: float = 0.0, error: str | None = None) -> None:
        held = self._take(message)
        verdict = on_nack(self.spec, held.entry.count, delay)
        if verdict.action == "dead-letter":
            await self._dead_letter(held.entry, verdict.reason, verdict.deliveries, error)
            return
        if await self._settle("nack", [held.entry], verdict.delay, error):
            raise LeaseLost()

    async def extend(self, message: Message, seconds: float) -> None:
        held = self._take(message, keep=True)
        seconds = max(seconds, 0.001)
        if await self._settle("extend", [held.entry], seconds):
            raise LeaseLost()
        held.deadline = time.monotonic() + seconds

    async def reject(self, message: Message, reason: str = "rejected") -> None:
        held = self._take(message)
        verdict = on_reject(held.entry.count)
        await self._dead_letter(held.entry, verdict.reason, verdict.deliveries, reason)

    async def _dead_letter(
        self, entry: Entry, reason: str, deliveries: int, error: str | None
    ) -> None:
        if not await deadletter.move(self, entry, reason, deliveries, error):
            log.debug("dead-letter of %s skipped: its lease was lost", entry.id)

    # ---------------------------------------------------------------- closing
    async def prune(self) -> None:
        """Drop the group's consumers that have nothing pending and belong to this member
        (leaving) or to no live member (their work was claimed by the others)."""
        for p in range(self.topic.partitions):
            await self._t.scripts.prune(
                keys=[self.keys.stream(p), self.keys.members(self.spec.name)],
                args=[self.spec.name, self.member, int(self.spec.session_timeout * 1000)],
            )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._arrived.set()
        self._poke.set()
        if self._task is not None:
            if self._unblocker is not None:  # end a blocked XREADGROUP now, not at its timeout
                with contextlib.suppress(Exception):
                    await self._unblocker.client_unblock(self._reader_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 2.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for own in (self._reader, self._unblocker):
            if own is not None and own is not self._r:  # the shared client stays open
                with contextlib.suppress(Exception):
                    await own.aclose()
        await self.acks_applied()
        entries = list(self._buffer) + [h.entry for h in self._held.values()]
        self._buffer.clear()
        self._held.clear()
        await self.leases.close()
        with contextlib.suppress(Exception):
            if entries:
                await self._settle("release", entries)  # claimable by the others at once
            await self._t.heartbeat(self.keys, self.spec, self.member, left=True)
            await self._r.hdel(self.keys.stuck(self.spec.name), self.member)
            await self.prune()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        self._t.forget(self)
