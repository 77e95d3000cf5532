"""A broker that will refuse every publish says so, and why, when it starts (issue #23: a
--disk-free-limit larger than the free space of a small disk)."""

from __future__ import annotations

import shutil

from tests.helpers.broker_process import BrokerProcess

from tidings.server.limits import DEFAULT_DISK_FREE_LIMIT, DEFAULT_DISK_FREE_SHARE, Alarms


def test_a_disk_free_limit_above_the_free_space_is_an_error_at_start(tmp_path):
    broker = BrokerProcess(tmp_path / "data", args=["--disk-free-limit", str(1 << 60)])
    broker.start()
    try:
        log = broker.log()
        assert "every publish will be refused with StorageFull" in log
        assert "--disk-free-limit" in log and "0 turns it off" in log
    finally:
        broker.stop()


def test_the_default_disk_free_limit_is_relative_to_the_disk(tmp_path):
    alarms = Alarms(0, None, str(tmp_path / "not-yet-created"))
    total = shutil.disk_usage(tmp_path).total
    assert alarms.disk_free_limit == min(
        DEFAULT_DISK_FREE_LIMIT, int(total * DEFAULT_DISK_FREE_SHARE)
    )
    assert Alarms(0, 1234, str(tmp_path)).disk_free_limit == 1234  # an explicit one is kept
