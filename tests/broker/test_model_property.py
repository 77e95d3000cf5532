"""Property test: random operations against a small reference model of the at-least-once
contract, on MemoryStore and on DiskStore with crash-and-reopen.

Checked on every delivery: a message of a group is never handed out while a live lease on it
is held; an acked message is never delivered again (also after a sync and reopen); the
delivery count grows by one per delivery (counts restart after a reopen: leases are not
durable); an ordered group (window 1) delivers exactly the lowest unacked offset of the
partition; a key_ordered group delivers exactly the lowest unacked message of its key. At the
end, draining every group delivers every published message that was not acked.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.errors import LeaseLost, NotFound
from tidings.model import Delivery, GroupSpec, Outgoing, TopicSpec

from .conftest import Env

PARTS = 2
LEASE = 10.0
GROUPS = [
    GroupSpec(topic="t", name="shared", lease=LEASE, max_deliveries=0),
    GroupSpec(topic="t", name="ordered", mode="ordered", lease=LEASE, max_deliveries=0),
    GroupSpec(topic="t", name="keyed", key_ordered=True, lease=LEASE, max_deliveries=0),
]
KEYS = [None, "a", "b", "c"]

Ref = tuple[int, int]


@dataclass
class GroupModel:
    spec: GroupSpec
    acked: set[Ref] = field(default_factory=set)
    held: dict[Ref, tuple[str, float]] = field(default_factory=dict)  # ref -> (member, until)
    counts: dict[Ref, int] = field(default_factory=dict)  # deliveries in this incarnation
    members: list[str] = field(default_factory=list)
    uncertain: set[Ref] = field(default_factory=set)  # ordered: maybe revoked by a rebalance


class Harness:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.keys: dict[Ref, str | None] = {}
        self.groups = [GroupModel(spec) for spec in GROUPS]
        self.pending: list[tuple[int, list[str], Delivery]] = []
        self.setup()

    @property
    def b(self):
        return self.env.broker

    def setup(self) -> None:
        self.b.create_topic(TopicSpec(name="t", partitions=PARTS), exist_ok=True)
        for spec in GROUPS:
            self.b.create_group(spec)

    def deliver_to(self, gi: int, member_ref: list[str]):
        def deliver(deliveries: list[Delivery]) -> None:
            for d in deliveries:
                self.pending.append((gi, member_ref, d))  # the id is known after join

        return deliver

    def join(self, gi: int, prefetch: int) -> None:
        ref = [""]
        ref[0] = self.b.join(GROUPS[gi], prefetch=prefetch, deliver=self.deliver_to(gi, ref))
        g = self.groups[gi]
        g.members.append(ref[0])
        self.rebalanced(g)
        self.settle_pending()

    def rebalanced(self, g: GroupModel) -> None:
        if g.spec.mode == "ordered":
            g.uncertain |= set(g.held)

    def leave(self, gi: int, pick: int) -> None:
        g = self.groups[gi]
        if not g.members:
            return
        m = g.members.pop(pick % len(g.members))
        for ref, (holder, _) in list(g.held.items()):
            if holder == m:
                del g.held[ref]
        self.rebalanced(g)
        self.b.leave(m)
        self.settle_pending()

    # -- applying what the broker handed out ------------------------------------------------

    def settle_pending(self) -> None:
        pending, self.pending = self.pending, []
        for gi, member_ref, d in pending:
            self.check_delivery(gi, member_ref[0], d)

    def lowest_unacked(self, g: GroupModel, pred) -> Ref | None:
        refs = [r for r in self.keys if r not in g.acked and pred(r)]
        return min(refs) if refs else None

    def check_delivery(self, gi: int, member: str, d: Delivery) -> None:
        g = self.groups[gi]
        ref = (d.partition, d.offset)
        now = self.env.clock.now()
        assert ref in self.keys, f"{g.spec.name}: delivered {ref}, never published"
        assert ref not in g.acked, f"{g.spec.name}: acked {ref} delivered again"
        holder = g.held.get(ref)
        if holder is not None and ref not in g.uncertain:
            assert holder[1] <= now, f"{g.spec.name}: {ref} delivered while leased to {holder}"
        expected = g.counts.get(ref, 0) + 1
        assert d.delivery_count == expected, (g.spec.name, ref, d.delivery_count, expected)
        g.counts[ref] = expected
        if g.spec.mode == "ordered":
            low = self.lowest_unacked(g, lambda r: r[0] == d.partition)
            assert ref == low, f"ordered: delivered {ref}, lowest unacked is {low}"
        if g.spec.key_ordered and d.key is not None:
            for other, (_, until) in g.held.items():
                if other != ref and self.keys[other] == d.key and other not in g.uncertain:
                    assert until <= now, f"keyed: {d.key} in flight twice ({other}, {ref})"
            low = self.lowest_unacked(g, lambda r: self.keys[r] == d.key)
            assert ref == low, f"keyed: delivered {ref}, lowest unacked of {d.key} is {low}"
        assert d.lease_until == now + LEASE
        g.held[ref] = (member, d.lease_until)
        g.uncertain.discard(ref)

    # -- operations -------------------------------------------------------------------------

    def publish(self, n: int, key_i: int, delay: float) -> None:
        key = KEYS[key_i]
        receipts = self.b.publish(
            "t", [Outgoing(b"x", key=key, delay=delay or None) for _ in range(n)]
        )
        for r in receipts:
            self.keys[(r.partition, r.offset)] = key
        self.settle_pending()

    def pick(self, gi: int, pick: int) -> tuple[GroupModel, Ref, str] | None:
        g = self.groups[gi]
        refs = sorted(g.held)
        if not refs:
            return None
        ref = refs[pick % len(refs)]
        return g, ref, g.held[ref][0]

    def settle(self, gi: int, pick: int, action: str, arg: float = 0.0) -> None:
        chosen = self.pick(gi, pick)
        if chosen is None:
            return
        g, ref, member = chosen
        now = self.env.clock.now()
        # the model forgets leases that ran out at each tick, as the engine does
        expect_ok = ref not in g.uncertain
        try:
            if action == "ack":
                self.b.ack(member, *ref)
            elif action == "nack":
                self.b.nack(member, *ref, delay=arg)
            else:
                self.b.extend(member, *ref, arg)
        except LeaseLost:
            assert not expect_ok, f"{g.spec.name}: {action} {ref} lost a lease it held"
            del g.held[ref]
            g.uncertain.discard(ref)
            self.settle_pending()
            return
        if action == "ack":
            g.acked.add(ref)
            del g.held[ref]
        elif action == "nack":
            del g.held[ref]
        else:
            g.held[ref] = (member, now + arg)
        g.uncertain.discard(ref)
        self.settle_pending()

    def tick(self, seconds: float) -> None:
        self.env.clock.advance(seconds)
        now = self.env.clock.now()
        dropped: list[str] = []
        for g in self.groups:
            for ref, (holder, until) in list(g.held.items()):
                if until <= now:
                    del g.held[ref]
                    g.uncertain.discard(ref)
                    dropped.append(holder)
        self.b.tick()
        # as a client does when it drops a message whose lease ran out in its buffer: the
        # member is taking messages, so the credit that lease held comes back
        for holder in dropped:
            with contextlib.suppress(NotFound):
                self.b.add_credit(holder, 1)
        self.settle_pending()

    def sync(self) -> None:
        self.b.sync()
        self.settle_pending()

    def reopen(self) -> None:
        self.env.reopen(crash=True)
        self.pending.clear()
        for g in self.groups:
            g.held.clear()
            g.counts.clear()
            g.members.clear()
            g.uncertain.clear()
        self.setup()

    def finish(self) -> None:
        """Drain: every group ends up with every published message acked."""
        for gi, g in enumerate(self.groups):
            if not g.members:
                self.join(gi, 5)
        for _ in range(200):
            if all(len(g.acked) == len(self.keys) for g in self.groups):
                break
            progressed = False
            for gi, g in enumerate(self.groups):
                for ref in sorted(g.held):
                    if ref in g.held:
                        self.ack_ref(gi, ref)
                        progressed = True
            if not progressed:
                self.tick(LEASE + 25)
        for g in self.groups:
            missing = set(self.keys) - g.acked
            assert not missing, f"{g.spec.name}: never delivered {sorted(missing)[:10]}"

    def ack_ref(self, gi: int, ref: Ref) -> None:
        g = self.groups[gi]
        refs = sorted(g.held)
        self.settle(gi, refs.index(ref), "ack")


gi_st = st.integers(0, len(GROUPS) - 1)
ops_st = st.lists(
    st.one_of(
        st.tuples(
            st.just("publish"), st.integers(1, 4), st.integers(0, 3), st.sampled_from([0, 0, 3])
        ),
        st.tuples(st.just("ack"), gi_st, st.integers(0, 9)),
        st.tuples(st.just("nack"), gi_st, st.integers(0, 9), st.sampled_from([0.0, 4.0])),
        st.tuples(st.just("nack_all"), gi_st),
        st.tuples(st.just("extend"), gi_st, st.integers(0, 9), st.sampled_from([1.0, 20.0])),
        st.tuples(st.just("tick"), st.sampled_from([0.0, 2.0, 6.0, 11.0])),
        st.tuples(st.just("join"), gi_st, st.integers(1, 3)),
        st.tuples(st.just("leave"), gi_st, st.integers(0, 3)),
        st.tuples(st.just("sync")),
        st.tuples(st.just("reopen")),
    ),
    max_size=80,
)


def run(kind: str, ops) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = Env(kind, Path(tmp) / "store")
        try:
            h = Harness(env)
            for op in ops:
                name, *args = op
                if name == "publish":
                    h.publish(*args)
                elif name in ("ack", "nack", "extend"):
                    h.settle(args[0], args[1], name, *(args[2:] or [0.0]))
                elif name == "nack_all":
                    for _ in range(len(h.groups[args[0]].held)):
                        h.settle(args[0], 0, "nack")
                elif name == "tick":
                    h.tick(args[0])
                elif name == "join":
                    h.join(*args)
                elif name == "leave":
                    h.leave(*args)
                elif name == "sync":
                    h.sync()
                elif name == "reopen":
                    h.reopen()
            h.finish()
        finally:
            env.close()


COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "derandomize": True,
    "database": None,
}


@settings(max_examples=1000, **COMMON)
@given(ops=ops_st)
def test_model_memory(ops) -> None:
    run("memory", ops)


@settings(max_examples=300, **COMMON)
@given(ops=ops_st)
def test_model_disk_with_crashes(ops) -> None:
    run("disk", ops)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_model_smoke(kind: str) -> None:
    run(
        kind,
        [
            ("join", 0, 2),
            ("join", 1, 2),
            ("join", 2, 2),
            ("publish", 4, 1, 0),
            ("publish", 3, 0, 3),
            ("ack", 0, 0),
            ("nack", 1, 0, 4.0),
            ("tick", 6.0),
            ("reopen",),
            ("join", 1, 1),
            ("leave", 1, 0),
            ("tick", 11.0),
        ],
    )
