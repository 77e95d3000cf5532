"""Crash torture: a broker process SIGKILLed at random moments under load, and the checks.

Concurrent publishers (confirmed publishes with stable producer ids) and consumers in a
shared group and an ordered group talk to one broker process over ``tidings://`` while a
killer SIGKILLs it at random moments and restarts it on the same data directory. Everything
the clients see goes into a :class:`Ledger`; :func:`check` turns the ledger into a list of
violated invariants (empty when all hold):

- the broker always starts again on its own data;
- every confirmed publish is delivered and acked (or, if poison, dead-lettered) at least once;
- the log holds each producer id once (duplicate detection survives crashes) and an offset
  never changes its message;
- an acked message is redelivered only if the broker was killed within the commit window
  after the ack (acks are persisted by the next group commit);
- the ordered group never skips or reorders within a partition: offset ``o`` is delivered
  only after someone sent the ack of ``o - 1``;
- the dead-letter topic holds every rejected (poison) message and nothing else.

Used by ``tests/reliability/test_torture.py`` (bounded) and ``scripts/torture.py`` (longer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import defaultdict
from pathlib import Path

from tests.helpers.broker_process import BrokerProcess

from tidings.errors import TidingsError
from tidings.headers import dead_letter_topic
from tidings.model import GroupSpec, Outgoing, TopicSpec
from tidings.transports.tidings import NativeTransport

JOBS = "jobs"  # shared group WORKERS; every POISON-th job is rejected (dead-lettered)
EVENTS = "events"  # ordered group ORDERED; keyed, one publisher coroutine per key set
WORKERS = "workers"
ORDERED = "ordered"
POISON = 17
KEYS = [f"k{i}" for i in range(8)]
DLQ = dead_letter_topic(JOBS, WORKERS)


@dataclasses.dataclass
class TortureConfig:
    data_dir: Path
    kills: int = 20
    min_up: float = 0.4  # seconds the broker runs between kills, drawn uniformly
    max_up: float = 1.6
    max_down: float = 0.3  # seconds it stays dead before the restart
    commit_window: float = 1.5  # an ack older than this before a kill must not come back
    drain_timeout: float = 45.0
    fsync: str = "batch"
    seed: int | None = None
    job_publishers: int = 2
    event_publishers: int = 2
    workers: int = 2
    ordered_members: int = 2


@dataclasses.dataclass
class Ledger:
    confirmed: dict[str, tuple[str, int, int]] = dataclasses.field(default_factory=dict)
    deliveries: list[tuple[float, str, str, int, int, int]] = dataclasses.field(
        default_factory=list
    )  # (t received, group, msg id, partition, offset, delivery count)
    ack_sent: dict[tuple[str, str], list[float]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )
    ack_ok: dict[tuple[str, str], list[tuple[float, float]]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )  # (group, msg id) -> [(t sent, t answered)]
    offset_sent: dict[tuple[int, int], list[float]] = dataclasses.field(
        default_factory=lambda: defaultdict(list)
    )  # ordered group: (partition, offset) -> times an ack was sent
    rejected: set[str] = dataclasses.field(default_factory=set)
    kills: list[float] = dataclasses.field(default_factory=list)
    starts: int = 0
    start_failures: list[str] = dataclasses.field(default_factory=list)
    truncations: list[str] = dataclasses.field(default_factory=list)
    dlq: list[str] = dataclasses.field(default_factory=list)  # bodies found in the DLQ topic
    log_ids: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # topic -> ids
    offsets: dict[tuple[str, int, int], str] = dataclasses.field(default_factory=dict)
    offset_conflicts: list[str] = dataclasses.field(default_factory=list)
    published: int = 0
    seconds: float = 0.0
    # what the broker itself says at the end: group -> (lag, in flight)
    settled: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def delivered(self, group: str, msg) -> None:
        self.deliveries.append(
            (
                time.monotonic(),
                group,
                msg.msg_id,
                msg.partition,
                msg.offset,
                msg.delivery_count,
            )
        )
        where = (msg.topic, msg.partition, msg.offset)
        seen = self.offsets.setdefault(where, msg.msg_id)
        if seen != msg.msg_id:
            self.offset_conflicts.append(f"{where}: {seen} then {msg.msg_id}")

    def summary(self) -> str:
        acked = sum(1 for v in self.ack_ok.values() if v)
        return (
            f"{self.starts} starts, {len(self.kills)} kills, {self.published} published, "
            f"{len(self.confirmed)} confirmed, {len(self.deliveries)} deliveries, "
            f"{acked} acked, {len(self.rejected)} dead-lettered, {self.seconds:.1f}s"
        )


def _is_poison(msg_id: str) -> bool:
    return msg_id.startswith("job-") and int(msg_id.rsplit("-", 1)[1]) % POISON == 0


class Torture:
    def __init__(self, config: TortureConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.ledger = Ledger()
        args = ["--heartbeat", "1.0", "--fsync", config.fsync]
        self.broker = BrokerProcess(config.data_dir, args=args)
        self.stopping = asyncio.Event()  # publishers stop
        self.transports: list[NativeTransport] = []

    # -- clients -----------------------------------------------------------------------------

    async def _transport(self, name: str) -> NativeTransport:
        t = NativeTransport(
            self.broker.url,
            name=name,
            timeout=60.0,
            backoff_initial=0.02,
            backoff_max=0.3,
            reconnect_timeout=None,
        )
        self.transports.append(t)
        await t.connect()
        return t

    async def _publish(self, t: NativeTransport, topic: str, batch: list[Outgoing]) -> None:
        """Publish until confirmed, with the same producer ids every time."""
        self.ledger.published += len(batch)
        while True:
            try:
                receipts = await t.publish(topic, batch)
            except TidingsError:
                await asyncio.sleep(0.05)
                continue
            for o, r in zip(batch, receipts, strict=True):
                self.ledger.confirmed[o.msg_id] = (topic, r.partition, r.offset)  # type: ignore[index]
            return

    async def job_publisher(self, n: int) -> None:
        t = await self._transport(f"jobs-pub-{n}")
        seq = n
        while not self.stopping.is_set():
            size = self.rng.randint(1, 4)
            batch = []
            for _ in range(size):
                msg_id = f"job-{n}-{seq}"
                batch.append(Outgoing(msg_id.encode(), msg_id=msg_id))
                seq += self.config.job_publishers
            await self._publish(t, JOBS, batch)

    async def event_publisher(self, n: int) -> None:
        t = await self._transport(f"events-pub-{n}")
        keys = KEYS[n :: self.config.event_publishers]
        seqs = dict.fromkeys(keys, 0)
        while not self.stopping.is_set():
            key = self.rng.choice(keys)
            msg_id = f"ev-{key}-{seqs[key]}"
            seqs[key] += 1
            await self._publish(t, EVENTS, [Outgoing(msg_id.encode(), key=key, msg_id=msg_id)])

    async def _settle(self, group: str, msg) -> None:
        ledger = self.ledger
        key = (group, msg.msg_id)
        sent = time.monotonic()
        try:
            if group == WORKERS and _is_poison(msg.msg_id):
                await msg.reject("poison")
                ledger.rejected.add(msg.msg_id)
                return
            ledger.ack_sent[key].append(sent)
            if group == ORDERED:
                ledger.offset_sent[(msg.partition, msg.offset)].append(sent)
            await msg.ack()
        except TidingsError:
            return  # lease lost with the connection: it comes back
        ledger.ack_ok[key].append((sent, time.monotonic()))

    async def consumer(self, group: str, n: int) -> None:
        t = await self._transport(f"{group}-{n}")
        if group == WORKERS:
            spec = GroupSpec(topic=JOBS, name=WORKERS, max_deliveries=0)
        else:
            spec = GroupSpec(topic=EVENTS, name=ORDERED, mode="ordered", max_deliveries=0)
        sub = await t.subscribe(spec, prefetch=50)
        while True:
            try:
                batch = await sub.next_batch(50, timeout=0.5)
            except TidingsError:
                await asyncio.sleep(0.05)
                continue
            for msg in batch:
                self.ledger.delivered(group, msg)
            await asyncio.gather(*(self._settle(group, msg) for msg in batch))

    # -- the broker --------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            self.broker.start(timeout=30.0)
        except RuntimeError as exc:
            self.ledger.start_failures.append(str(exc))
            raise
        self.ledger.starts += 1

    def _collect_log(self) -> None:
        for line in self.broker.output:
            if "truncated damaged tails" in line and line not in self.ledger.truncations:
                self.ledger.truncations.append(line.strip())

    async def killer(self) -> None:
        cfg = self.config
        for _ in range(cfg.kills):
            await asyncio.sleep(self.rng.uniform(cfg.min_up, cfg.max_up))
            await asyncio.to_thread(self.broker.kill)
            self.ledger.kills.append(time.monotonic())
            self._collect_log()
            await asyncio.sleep(self.rng.uniform(0, cfg.max_down))
            await asyncio.to_thread(self._start)

    # -- the run -----------------------------------------------------------------------------

    def _outstanding(self) -> int:
        ledger = self.ledger
        missing = 0
        for msg_id, (topic, _, _) in ledger.confirmed.items():
            if topic == JOBS and _is_poison(msg_id):
                missing += msg_id not in ledger.rejected
            else:
                group = WORKERS if topic == JOBS else ORDERED
                missing += not ledger.ack_ok.get((group, msg_id))
        return missing

    async def run(self) -> Ledger:
        started = time.monotonic()
        await asyncio.to_thread(self._start)
        setup = await self._transport("setup")
        await setup.create_topic(TopicSpec(name=JOBS, partitions=2))
        await setup.create_topic(TopicSpec(name=EVENTS, partitions=3))
        await setup.create_topic(TopicSpec(name=DLQ))
        tasks = [
            *(
                asyncio.create_task(self.job_publisher(i))
                for i in range(self.config.job_publishers)
            ),
            *(
                asyncio.create_task(self.event_publisher(i))
                for i in range(self.config.event_publishers)
            ),
            *(asyncio.create_task(self.consumer(WORKERS, i)) for i in range(self.config.workers)),
            *(
                asyncio.create_task(self.consumer(ORDERED, i))
                for i in range(self.config.ordered_members)
            ),
        ]
        try:
            await self.killer()
            self.stopping.set()
            publishers = tasks[: self.config.job_publishers + self.config.event_publishers]
            await asyncio.wait_for(asyncio.gather(*publishers), 60.0)
            deadline = time.monotonic() + self.config.drain_timeout
            while self._outstanding() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # let late redeliveries show up
            await self._audit(setup)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for t in self.transports:
                await t.close()
            self._collect_log()
            await asyncio.to_thread(self.broker.stop)
        self.ledger.seconds = time.monotonic() - started
        return self.ledger

    async def _audit(self, t: NativeTransport) -> None:
        """Read every topic from the start with fresh groups: what does the log hold? And ask
        the broker whether the groups under test have anything left unsettled."""
        for topic, group in ((JOBS, WORKERS), (EVENTS, ORDERED)):
            info = await t.group_info(topic, group)
            self.ledger.settled[group] = (info.lag, info.in_flight)
        for topic in (JOBS, EVENTS, DLQ):
            info = await t.topic_info(topic)
            sub = await t.subscribe(
                GroupSpec(topic=topic, name="audit", auto_ack=True), prefetch=500
            )
            ids: list[str] = []
            while len(ids) < info.messages:
                batch = await sub.next_batch(500, timeout=5.0)
                if not batch:
                    break
                ids += [m.body.decode() for m in batch]
            await sub.close()
            if topic == DLQ:
                self.ledger.dlq = ids
            else:
                self.ledger.log_ids[topic] = ids


def check(ledger: Ledger, commit_window: float = 1.5) -> list[str]:
    """Every violated invariant, one line each (an empty list: all hold)."""
    problems: list[str] = []
    if ledger.start_failures:
        problems.append(f"the broker refused to start: {ledger.start_failures[0][-2000:]}")
    if ledger.starts != len(ledger.kills) + 1:
        problems.append(f"{ledger.starts} starts for {len(ledger.kills)} kills")
    problems += [f"offset changed its message: {c}" for c in ledger.offset_conflicts[:5]]

    # every confirmed publish is delivered and acked (or dead-lettered) at least once
    lost = []
    for msg_id, (topic, p, o) in ledger.confirmed.items():
        if topic == JOBS and _is_poison(msg_id):
            # A reject whose answer a kill swallowed still moved the message: the audit of the
            # dead-letter topic (read from the log itself) is what decides.
            if msg_id not in ledger.rejected and msg_id not in ledger.dlq:
                lost.append(f"{msg_id} ({topic}/{p}@{o}) never dead-lettered")
        else:
            group = WORKERS if topic == JOBS else ORDERED
            if ledger.ack_ok.get((group, msg_id)):
                continue
            # An ack can reach the broker and be recorded while its answer is lost to a kill;
            # the broker then (rightly) never redelivers. That counts only when the broker
            # reports the whole group settled, so a lost ack can never hide here.
            if ledger.ack_sent.get((group, msg_id)) and ledger.settled.get(group) == (0, 0):
                continue
            lost.append(f"{msg_id} ({topic}/{p}@{o}) never acked")
    if lost:
        problems.append(f"{len(lost)} confirmed messages not consumed, e.g. {lost[:5]}")

    # the log holds every confirmed message, each producer id once
    for topic, ids in ledger.log_ids.items():
        counts: dict[str, int] = defaultdict(int)
        for i in ids:
            counts[i] += 1
        dups = [i for i, n in counts.items() if n > 1]
        if dups:
            problems.append(f"{topic}: {len(dups)} producer ids stored twice, e.g. {dups[:5]}")
        missing = [i for i, (t, _, _) in ledger.confirmed.items() if t == topic and i not in counts]
        if missing:
            problems.append(f"{topic}: {len(missing)} confirmed ids not in the log: {missing[:5]}")

    # acked messages come back only after a kill within the commit window
    kills = ledger.kills
    bad_redeliveries = []
    for t_recv, group, msg_id, p, o, _ in ledger.deliveries:
        for sent, answered in ledger.ack_ok.get((group, msg_id), ()):
            if answered >= t_recv:
                continue  # acked after this delivery
            if not any(sent <= k <= answered + commit_window and k <= t_recv for k in kills):
                bad_redeliveries.append(f"{group}: {msg_id} ({p}@{o}) acked then redelivered")
            break
    if bad_redeliveries:
        problems.append(
            f"{len(bad_redeliveries)} acked messages redelivered outside the commit window, "
            f"e.g. {bad_redeliveries[:5]}"
        )

    # ordered: offset o of a partition only after an ack of o - 1 was sent
    first_offset: dict[int, int] = {}
    for _, group, _, p, o, _ in ledger.deliveries:
        if group == ORDERED:
            first_offset[p] = min(first_offset.get(p, o), o)
    skips = []
    for t_recv, group, msg_id, p, o, _ in ledger.deliveries:
        if group != ORDERED or o == first_offset[p]:
            continue
        if not any(t <= t_recv for t in ledger.offset_sent.get((p, o - 1), ())):
            skips.append(f"{msg_id} at {p}@{o} before any ack of {p}@{o - 1}")
    if first_offset and min(first_offset.values()) != 0:
        skips.append(f"ordered group started at offsets {first_offset}, not 0")
    if skips:
        problems.append(f"ordered group skipped or reordered: {skips[:5]}")

    # dead letters reconcile with rejections
    dlq = set(ledger.dlq)
    not_poison = sorted(i for i in dlq if not _is_poison(i))
    if not_poison:
        problems.append(f"dead-lettered without being rejected: {not_poison[:5]}")
    if ledger.rejected - dlq:
        problems.append(f"rejected but not in {DLQ}: {sorted(ledger.rejected - dlq)[:5]}")
    if len(ledger.dlq) > len(dlq) and not kills:
        problems.append(f"{len(ledger.dlq) - len(dlq)} duplicate dead letters without a crash")
    return problems
