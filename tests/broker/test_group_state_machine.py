"""A hypothesis state machine of consumer groups (issue #12): members join, leave, ack, nack,
stall (their leases expire, the broker may close them as stuck) while messages arrive.

Checked on every delivery: no delivery past ``max_deliveries``, but one when the last allowed
delivery ended with its member leaving (a leave is not counted as a failed attempt: the broker
cannot tell a message being processed from one still waiting in the client's buffer); in the
ordered group, no member gets a message of a partition while another member still holds a
live lease on that partition (the fenced handover), and the message is the partition's lowest
unsettled one (per-key order, window 1). At the end, with a healthy member draining, every
published message is either acked or dead-lettered in each group, and only messages that used
up their ``max_deliveries`` were dead-lettered.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tidings.broker import Broker
from tidings.clock import ManualClock
from tidings.errors import LeaseLost, NotFound, TidingsError
from tidings.model import Delivery, GroupSpec, Outgoing, TopicSpec
from tidings.storage import MemoryStore

LEASE = 10.0
MAX = 3
PARTS = 2
GROUPS = [
    GroupSpec(topic="t", name="shared", lease=LEASE, max_deliveries=MAX),
    GroupSpec(topic="t", name="ordered", mode="ordered", lease=LEASE, max_deliveries=MAX),
]
Ref = tuple[int, int]


class Member:
    def __init__(self, machine: GroupMachine, gi: int) -> None:
        self.machine = machine
        self.gi = gi
        self.id = ""
        self.held: dict[Ref, float] = {}  # ref -> lease end
        self.gone = False

    def deliver(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            self.machine.delivered(self, d)

    def closed(self, error: TidingsError) -> None:
        self.machine.left(self)


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.b = Broker(MemoryStore(), clock=self.clock)
        self.b.open()
        self.b.create_topic(TopicSpec(name="t", partitions=PARTS))
        for spec in GROUPS:
            self.b.create_group(spec)
        self.members: list[Member] = []
        self.published: set[Ref] = set()
        self.acked: list[set[Ref]] = [set() for _ in GROUPS]
        self.counts: list[dict[Ref, int]] = [{} for _ in GROUPS]
        self.violations: list[str] = []
        self.seq = 0
        # refs whose last delivery ended with its member leaving: not counted as a failed
        # attempt (the broker cannot tell a message being processed from one still waiting
        # in the client's buffer), so one more delivery past max_deliveries is allowed
        self.spare: list[set[Ref]] = [set() for _ in GROUPS]

    def left(self, m: Member) -> None:
        m.gone = True
        self.spare[m.gi].update(m.held)
        m.held.clear()

    # -- the checks on delivery --------------------------------------------------------------

    def delivered(self, m: Member, d: Delivery) -> None:
        gi, ref, now = m.gi, (d.partition, d.offset), self.clock.now()
        self.published.add(ref)  # (a publish dispatches before it returns its receipts)
        spare = ref in self.spare[gi]
        self.spare[gi].discard(ref)
        if d.delivery_count > MAX and not spare:
            self.violations.append(f"{GROUPS[gi].name} {ref}: delivery {d.delivery_count}")
        if GROUPS[gi].mode == "ordered":
            for other in self.members:
                if other is m or other.gi != gi or other.gone:
                    continue
                live = [r for r, until in other.held.items() if r[0] == d.partition and until > now]
                if live:
                    self.violations.append(f"partition {d.partition} to two members: {live}")
            lowest = min(
                (
                    r
                    for r in self.published
                    if r[0] == d.partition
                    and r not in self.acked[gi]
                    and (r == ref or not self.dead(gi, r))
                ),
                default=None,
            )
            if ref != lowest:
                self.violations.append(f"ordered: {ref} delivered before {lowest}")
        counts = self.counts[gi]
        counts[ref] = counts.get(ref, 0) + 1
        m.held[ref] = now + LEASE

    def dead(self, gi: int, ref: Ref) -> bool:
        """Dead-lettered: its last allowed delivery is over (nacked, expired, left)."""
        if self.counts[gi].get(ref, 0) < MAX or ref in self.spare[gi]:
            return False
        return not any(ref in m.held for m in self.members if m.gi == gi and not m.gone)

    # -- rules -------------------------------------------------------------------------------

    @rule(key=st.sampled_from(["a", "b", "c", "d"]), n=st.integers(1, 3))
    def publish(self, key: str, n: int) -> None:
        out = []
        for _ in range(n):
            out.append(Outgoing(b"%d" % self.seq, key=key))
            self.seq += 1
        for r in self.b.publish("t", out):
            self.published.add((r.partition, r.offset))

    @rule(gi=st.integers(0, len(GROUPS) - 1), prefetch=st.integers(1, 3))
    def join(self, gi: int, prefetch: int) -> None:
        if sum(1 for m in self.members if m.gi == gi and not m.gone) >= 3:
            return
        m = Member(self, gi)
        self.members.append(m)
        m.id = self.b.join(GROUPS[gi], prefetch=prefetch, deliver=m.deliver, closed=m.closed)

    def _pick(self, gi: int, pick: int) -> Member | None:
        live = [m for m in self.members if m.gi == gi and not m.gone]
        return live[pick % len(live)] if live else None

    @rule(gi=st.integers(0, len(GROUPS) - 1), pick=st.integers(0, 5))
    def leave(self, gi: int, pick: int) -> None:
        m = self._pick(gi, pick)
        if m is not None:
            self.left(m)
            self.b.leave(m.id)

    def _settle(self, gi: int, pick: int, ack: bool) -> None:
        m = self._pick(gi, pick)
        if m is None or not m.held:
            return
        ref = min(m.held)
        del m.held[ref]
        fresh = ref not in self.acked[gi]
        try:
            if ack:
                self.acked[gi].add(ref)  # first: the ack dispatches the next one at once
                self.b.ack(m.id, *ref)
            else:
                self.b.nack(m.id, *ref)
        except (LeaseLost, NotFound):
            if ack and fresh:
                self.acked[gi].discard(ref)

    @rule(gi=st.integers(0, len(GROUPS) - 1), pick=st.integers(0, 5))
    def ack(self, gi: int, pick: int) -> None:
        self._settle(gi, pick, True)

    @rule(gi=st.integers(0, len(GROUPS) - 1), pick=st.integers(0, 5))
    def nack(self, gi: int, pick: int) -> None:
        self._settle(gi, pick, False)

    @rule(seconds=st.sampled_from([1.0, 6.0, 11.0]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        now = self.clock.now()
        for m in self.members:  # what expired is no longer held
            m.held = {r: u for r, u in m.held.items() if u > now}
        self.b.tick()

    @invariant()
    def nothing_violated(self) -> None:
        assert self.violations == [], self.violations

    # -- the end: a healthy member drains each group -----------------------------------------

    def teardown(self) -> None:
        try:
            for gi in range(len(GROUPS)):
                for m in self.members:
                    if m.gi == gi and not m.gone:
                        self.left(m)
                        self.b.leave(m.id)
                drainer = Member(self, gi)
                self.members.append(drainer)
                drainer.id = self.b.join(GROUPS[gi], prefetch=10, deliver=drainer.deliver)
                for _ in range(200):
                    if not drainer.held:
                        break
                    for ref in sorted(drainer.held):
                        del drainer.held[ref]
                        self.acked[gi].add(ref)
                        self.b.ack(drainer.id, *ref)
                info = self.b.group_info("t", GROUPS[gi].name)
                assert info.lag == 0, info
                lost = self.published - self.acked[gi]
                assert len(lost) == info.dead_lettered, (lost, info.dead_lettered)
                for ref in lost:  # dead-lettered: only after its last allowed delivery
                    assert self.counts[gi].get(ref, 0) >= MAX, (ref, self.counts[gi].get(ref))
            assert self.violations == [], self.violations
        finally:
            self.b.close()


GroupMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_group_state_machine = GroupMachine.TestCase
