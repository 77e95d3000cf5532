"""The bench report judges its targets only on profiles large enough to measure speed: a
smoke run's tiny counts used to mark targets **no** (failed), which read as a regression."""

from __future__ import annotations

from tidings.benchmarking.report import markdown

# tidings far below NATS: a real profile must say the target is missed
RESULTS = {
    "tidings": {"publish.single": [100.0]},
    "nats": {"publish.single": [10_000.0]},
}


def test_a_full_profile_judges_targets():
    report = markdown(RESULTS, ["tidings", "nats"], {}, "# full")
    row = next(line for line in report.splitlines() if "best of NATS/Redis" in line)
    assert row.endswith("| **no** |")
    assert "not judged" not in report


def test_smoke_says_targets_are_not_judged():
    report = markdown(RESULTS, ["tidings", "nats"], {}, "# smoke", judged=False)
    row = next(line for line in report.splitlines() if "best of NATS/Redis" in line)
    assert row.endswith("| not judged (smoke) |")
    assert "**no**" not in report
    assert "smoke: targets not judged" in report
