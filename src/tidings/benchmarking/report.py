"""The Markdown report: medians per engine, the ratio of tidings to each peer, the targets."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .stats import median

# metric -> (label, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "publish.single": ("publish, single pipelined (tidings: `await publish` each)", "msg/s", True),
    "publish.async": ("publish, single: tidings `publish_async` futures", "msg/s", True),
    "publish.batch": ("publish, batched", "msg/s", True),
    "publish.single.raw": (
        "publish, single: raw transport (internal, not the public API)",
        "msg/s",
        True,
    ),
    "publish.single.broker_us": (
        "publish, single: the broker's CPU time per message (tidings only)",
        "us",
        False,
    ),
    "consume": ("consume + ack, 1 consumer (tidings: the plain loop)", "msg/s", True),
    "consume.broker_us": (
        "consume + ack: the broker's CPU time per message (tidings only)",
        "us",
        False,
    ),
    "consume.batch": ("consume + ack: tidings `next_batch` + gathered acks", "msg/s", True),
    "publish.single.cpu": ("client CPU per message: publish, single", "us", False),
    "publish.batch.cpu": ("client CPU per message: publish, batched", "us", False),
    "consume.cpu": ("client CPU per message: consume + ack", "us", False),
    "mpmc.4x4": ("4 producers + 4 consumers", "msg/s", True),
    "fanout.4groups": ("fan-out to 4 groups", "deliveries/s", True),
    "latency.2000.p50": ("latency @2k/s p50", "ms", False),
    "latency.2000.p99": ("latency @2k/s p99", "ms", False),
    "latency.2000.p99.9": ("latency @2k/s p99.9", "ms", False),
    "latency.2000.max": ("latency @2k/s max", "ms", False),
    "latency.10000.p50": ("latency @10k/s p50", "ms", False),
    "latency.10000.p99": ("latency @10k/s p99", "ms", False),
    "latency.10000.p99.9": ("latency @10k/s p99.9", "ms", False),
    "latency.10000.max": ("latency @10k/s max", "ms", False),
    "backlog.publish": ("backlog publish (1 KB, batched)", "msg/s", True),
    "backlog.rss_mb": ("backlog broker RSS", "MB", False),
    "backlog.restart_s": ("restart with backlog", "s", False),
    "backlog.rss_after_restart_mb": ("RSS after restart", "MB", False),
    "backlog.drain": ("backlog drain", "msg/s", True),
    "ordered.8p4m": ("ordered, 8 partitions, 4 members", "msg/s", True),
    "ordered.violations": ("per-key order violations", "count", False),
}

Results = dict[str, dict[str, list[float]]]  # engine -> metric -> one value per repeat


def medians(results: Results) -> dict[str, dict[str, float]]:
    return {e: {m: median(v) for m, v in ms.items()} for e, ms in results.items()}


def label(metric: str) -> tuple[str, str, bool]:
    if metric in METRICS:
        return METRICS[metric]
    if metric.startswith("latency."):
        _, rate, stat = metric.split(".", 2)
        return (f"latency @{int(rate):,}/s {stat}", "ms", False)
    return (metric, "", True)


_STATS = ("p50", "p99", "p99.9", "max")


def _order(metric: str) -> tuple[str, int, int]:
    if metric.startswith("latency."):
        _, rate, stat = metric.split(".", 2)
        return ("latency", int(rate), _STATS.index(stat) if stat in _STATS else 9)
    return (metric, 0, 0)


def fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit in ("ms", "s", "us"):
        return f"{value:.2f}"
    if unit == "count":
        return f"{value:.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def table(results: Results, engines: list[str], errors: dict[str, dict[str, str]]) -> str:
    med = medians(results)
    peers = [e for e in engines if not e.startswith("tidings")]
    metrics = [m for m in METRICS if any(m in med.get(e, {}) for e in engines)]
    metrics += sorted({m for e in med for m in med[e]} - set(metrics), key=_order)
    # tidings on another engine against that engine's raw client (tidings-redis / redis)
    layered = [(e, e[len("tidings-") :]) for e in engines if e[len("tidings-") :] in peers]
    head = ["workload", "unit", *engines, *(f"tidings / {p}" for p in peers)]
    head += [f"{e} / {p}" for e, p in layered]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for metric in metrics:
        name, unit, _ = label(metric)
        row = [name, unit]
        for e in engines:
            value = med.get(e, {}).get(metric)
            failed = metric.split(".")[0] in errors.get(e, {})
            row.append(fmt(value, unit) if value is not None else ("error" if failed else "-"))
        base = med.get("tidings", {}).get(metric)
        for peer in peers:
            other = med.get(peer, {}).get(metric)
            ok = base is not None and other not in (None, 0) and not math.isnan(base)
            row.append(f"{base / other:.2f}x" if ok else "-")  # type: ignore[operator]  # ok: numbers
        for e, peer in layered:
            mine, other = med.get(e, {}).get(metric), med.get(peer, {}).get(metric)
            ok = mine is not None and other not in (None, 0) and not math.isnan(mine)
            row.append(f"{mine / other:.2f}x" if ok else "-")  # type: ignore[operator]  # ok: numbers
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


@dataclass
class Target:
    name: str
    check: Callable[[dict[str, dict[str, float]]], tuple[float | None, float | None]]
    unit: str
    higher: bool = True


def _get(med: dict[str, dict[str, float]], engine: str, metric: str) -> float | None:
    value = med.get(engine, {}).get(metric)
    return None if value is None or math.isnan(value) else value


def _best(med: dict[str, dict[str, float]], engines: list[str], metric: str) -> float | None:
    values = [v for e in engines if (v := _get(med, e, metric)) is not None]
    return max(values) if values else None


def _times(value: float | None, k: float) -> float | None:
    return None if value is None else value * k


TARGETS = [
    Target(
        "single publish idiom >= 1.2x best of NATS/Redis",
        lambda m: (
            _get(m, "tidings", "publish.single"),
            _times(_best(m, ["nats", "redis"], "publish.single"), 1.2),
        ),
        "msg/s",
    ),
    Target(
        "single publish idiom >= 5x RabbitMQ (best queue type)",
        lambda m: (
            _get(m, "tidings", "publish.single"),
            _times(_best(m, ["rabbitmq", "rabbitmq-quorum"], "publish.single"), 5),
        ),
        "msg/s",
    ),
    Target(
        "batched publish >= 2x Redis' pipeline of the same size",
        lambda m: (
            _get(m, "tidings", "publish.batch"),
            _times(_get(m, "redis", "publish.batch"), 2),
        ),
        "msg/s",
    ),
    Target(
        "plain consume loop >= best of NATS/Redis consume + ack",
        lambda m: (_get(m, "tidings", "consume"), _best(m, ["nats", "redis"], "consume")),
        "msg/s",
    ),
    Target(
        "plain consume loop >= 80% of the next_batch path",
        lambda m: (_get(m, "tidings", "consume"), _times(_get(m, "tidings", "consume.batch"), 0.8)),
        "msg/s",
    ),
    Target(
        "p99 <= 2 ms at 2k msg/s",
        lambda m: (_get(m, "tidings", "latency.2000.p99"), 2.0),
        "ms",
        higher=False,
    ),
    Target(
        "p99 <= 10 ms at 10k msg/s",
        lambda m: (_get(m, "tidings", "latency.10000.p99"), 10.0),
        "ms",
        higher=False,
    ),
    Target(
        "backlog RSS <= 400 MB (the target is for 2M x 1 KB)",
        lambda m: (_get(m, "tidings", "backlog.rss_mb"), 400.0),
        "MB",
        higher=False,
    ),
    Target(
        "restart with backlog <= 5 s (the target is for 2M x 1 KB)",
        lambda m: (_get(m, "tidings", "backlog.restart_s"), 5.0),
        "s",
        higher=False,
    ),
    Target(
        "framework consume >= 75% of the plain consume loop",
        lambda m: (_get(m, "tidings-svc", "consume"), _times(_get(m, "tidings", "consume"), 0.75)),
        "msg/s",
    ),
]


SMOKE_NOTE = (
    "smoke: targets not judged (the smoke profile's counts prove the harness works; they are "
    "too small to measure speed: run `tidings bench --quick` or the full profile)"
)


def targets(results: Results, judged: bool = True) -> str:
    """The targets table; ``judged=False`` (the smoke profile) shows the values but no verdict."""
    med = medians(results)
    lines = ["| target | tidings | bar | met |", "|---|---|---|---|"]
    for t in TARGETS:
        value, bar = t.check(med)
        if value is None or bar is None:
            verdict = "not measured"
        elif not judged:
            verdict = "not judged (smoke)"
        else:
            verdict = "yes" if (value >= bar if t.higher else value <= bar) else "**no**"
        lines.append(f"| {t.name} | {fmt(value, t.unit)} | {fmt(bar, t.unit)} | {verdict} |")
    return "\n".join(lines)


def markdown(
    results: Results,
    engines: list[str],
    errors: dict[str, dict[str, str]],
    header: str,
    judged: bool = True,
) -> str:
    parts = [header, "", table(results, engines, errors), "", "### Targets", ""]
    if not judged:
        parts += [SMOKE_NOTE, ""]
    parts.append(targets(results, judged))
    failed = [f"- {e} / {w}: {msg}" for e, ws in errors.items() for w, msg in ws.items()]
    if failed:
        parts += ["", "### Errors", "", *failed]
    return "\n".join(parts) + "\n"
