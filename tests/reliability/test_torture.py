"""Crash torture, bounded: 20 SIGKILLs under concurrent publishers and consumers.

See tests/reliability/torture.py for the workload and the invariants; scripts/torture.py runs
the same with more kills.
"""

from __future__ import annotations

import os

import pytest

from .torture import Torture, TortureConfig, check

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
async def test_sigkill_loop_loses_nothing_confirmed(tmp_path):
    seed = int(os.environ.get("TIDINGS_TORTURE_SEED", "0")) or None
    config = TortureConfig(tmp_path / "data", kills=20, seed=seed)
    ledger = await Torture(config).run()
    print(ledger.summary())
    problems = check(ledger, config.commit_window)
    assert not problems, "\n".join([ledger.summary(), *problems])
    assert len(ledger.confirmed) > 100 and ledger.rejected, ledger.summary()
