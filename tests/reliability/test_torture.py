"""Crash torture, bounded: 20 SIGKILLs under concurrent publishers and consumers.

See tests/reliability/torture.py for the workload and the invariants; scripts/torture.py runs
the same with more kills.
"""

from __future__ import annotations

import os

import pytest

from .torture import Ledger, Torture, TortureConfig, check

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("fsync", "kills"),
    [("batch", 20), ("interval", 5), ("never", 5)],
)
async def test_sigkill_loop_loses_nothing_confirmed(tmp_path, fsync, kills):
    """A process crash loses nothing confirmed under every fsync policy (the page cache
    survives a process; only a machine crash separates the policies)."""
    seed = int(os.environ.get("TIDINGS_TORTURE_SEED", "0")) or None
    config = TortureConfig(tmp_path / "data", kills=kills, fsync=fsync, seed=seed)
    ledger = await Torture(config).run()
    print(ledger.summary())
    problems = check(ledger, config.commit_window)
    assert not problems, "\n".join([ledger.summary(), *problems])
    assert len(ledger.confirmed) > 100 and ledger.rejected, ledger.summary()


def _ledger() -> Ledger:
    ledger = Ledger(starts=2, kills=[100.0])
    ledger.confirmed = {"ev-k0-0": ("events", 0, 0), "ev-k0-1": ("events", 0, 1)}
    ledger.log_ids = {"events": ["ev-k0-0", "ev-k0-1"]}
    for i, msg_id in enumerate(("ev-k0-0", "ev-k0-1")):
        ledger.deliveries.append((10.0 + i, "ordered", msg_id, 0, i, 1))
        ledger.ack_sent[("ordered", msg_id)].append(10.5 + i)
        ledger.offset_sent[(0, i)].append(10.5 + i)
        ledger.ack_ok[("ordered", msg_id)].append((10.5 + i, 10.6 + i))
    return ledger


def test_the_checker_accepts_a_clean_ledger():
    assert check(_ledger()) == []


def test_the_checker_catches_each_kind_of_violation():
    lost = _ledger()
    lost.ack_ok.pop(("ordered", "ev-k0-1"))
    assert any("never acked" in p for p in check(lost))

    redelivered = _ledger()  # acked at 10.6, back at 50 with no kill in the window
    redelivered.deliveries.append((50.0, "ordered", "ev-k0-0", 0, 0, 2))
    assert any("redelivered outside the commit window" in p for p in check(redelivered))
    redelivered.kills = [10.9]  # a crash right after the ack: allowed
    redelivered.starts = 2
    assert not any("commit window" in p for p in check(redelivered))

    skipped = _ledger()
    skipped.offset_sent.pop((0, 0))  # offset 1 delivered, nobody acked offset 0
    assert any("skipped or reordered" in p for p in check(skipped))

    duplicated = _ledger()
    duplicated.log_ids["events"].append("ev-k0-0")
    assert any("stored twice" in p for p in check(duplicated))

    dead = _ledger()
    dead.dlq = ["job-0-1"]
    assert any("dead-lettered without being rejected" in p for p in check(dead))


def test_an_unanswered_ack_counts_only_when_the_broker_reports_the_group_settled():
    answered_lost = _ledger()
    answered_lost.ack_ok.pop(("ordered", "ev-k0-1"))  # sent, but the answer died with a kill
    answered_lost.settled = {"ordered": (0, 0)}
    assert check(answered_lost) == []
    answered_lost.settled = {"ordered": (1, 0)}  # the broker still owes it: a lost ack
    assert any("never acked" in p for p in check(answered_lost))


def test_a_poison_message_counts_as_dead_lettered_when_the_log_shows_it():
    ledger = _ledger()
    ledger.confirmed["job-0-17"] = ("jobs", 0, 0)  # a poison job; its reject's answer was lost
    ledger.log_ids["jobs"] = ["job-0-17"]
    assert any("never dead-lettered" in p for p in check(ledger))  # nowhere: flagged
    ledger.dlq = ["job-0-17"]  # the dead-letter topic holds it: the reject took effect
    assert not any("never dead-lettered" in p for p in check(ledger))
