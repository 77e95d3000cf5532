"""The live dependency map: which service publishes, sends or requests what, and which
service handles it, with call and error rates per edge.

Each instance reports its outgoing flows (kind, topic, calls, errors, rates over the last
heartbeat interval) and its endpoints (topic, versioned topic, handlings, errors, rates);
:func:`build` joins them on the topic into :class:`Edge` rows, summed over instances.
Requests count the caller's errors (timeouts, remote errors); events and commands count the
handlers' errors. A flow nobody handles gets the callee ``-``. Rendered as a table, Graphviz
DOT (:func:`to_dot`) or Mermaid (:func:`to_mermaid`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from ..client.registry import Instance

UNHANDLED = "-"


@dataclass
class Edge:
    caller: str
    callee: str
    topic: str
    kind: str
    rate: float = 0.0  # calls/s
    error_rate: float = 0.0  # errors/s
    calls: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _handlers(instances: Iterable[Instance]) -> dict[str, dict[str, list[tuple[float, int]]]]:
    """topic -> service -> [(error rate, errors)] of each handling endpoint."""
    out: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for inst in instances:
        for ep in inst.endpoints:
            topics = {ep.topic, ep.metadata.get("tidings.version_topic", ep.topic)}
            for topic in topics:
                out.setdefault(topic, {}).setdefault(inst.name, []).append(
                    (ep.error_rate, ep.num_errors)
                )
    return out


def build(instances: list[Instance]) -> list[Edge]:
    handlers = _handlers(instances)
    edges: dict[tuple[str, str, str, str], Edge] = {}
    for inst in instances:
        for flow in inst.outgoing:
            topic, kind = str(flow.get("topic")), str(flow.get("kind"))
            callees = handlers.get(topic) or {UNHANDLED: [(0.0, 0)]}
            for callee in callees:
                edge = edges.get((inst.name, callee, topic, kind))
                if edge is None:
                    edge = edges[(inst.name, callee, topic, kind)] = Edge(
                        inst.name, callee, topic, kind
                    )
                edge.rate += float(flow.get("rate") or 0.0)
                edge.calls += int(flow.get("calls") or 0)
                if kind == "request":
                    edge.error_rate += float(flow.get("error_rate") or 0.0)
                    edge.errors += int(flow.get("errors") or 0)
    for edge in edges.values():  # events and commands: the handlers' failures
        if edge.kind != "request" and edge.callee != UNHANDLED:
            endpoints = handlers[edge.topic][edge.callee]
            edge.error_rate = sum(e[0] for e in endpoints)
            edge.errors = sum(e[1] for e in endpoints)
    return sorted(edges.values(), key=lambda e: (e.caller, e.callee, e.topic, e.kind))


def _label(edge: Edge) -> str:
    text = f"{edge.kind} {edge.topic} {edge.rate:.2f}/s"
    if edge.error_rate or edge.errors:
        text += f" err {edge.error_rate:.2f}/s"
    return text


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(edges: list[Edge], services: Iterable[str] = ()) -> str:
    lines = ["digraph tidings {", "  rankdir=LR;", "  node [shape=box];"]
    names = sorted({*services, *(e.caller for e in edges), *(e.callee for e in edges)})
    lines += [f"  {_quote(n)};" for n in names]
    for e in edges:
        color = ' color="red"' if e.error_rate > 0 else ""
        lines.append(
            f"  {_quote(e.caller)} -> {_quote(e.callee)} [label={_quote(_label(e))}{color}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _node(name: str) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in name) or "_"
    return f'{safe}["{name}"]'


def to_mermaid(edges: list[Edge], services: Iterable[str] = ()) -> str:
    lines = ["graph LR"]
    linked = {e.caller for e in edges} | {e.callee for e in edges}
    lines += [f"  {_node(n)}" for n in sorted(set(services) - linked)]
    for e in edges:
        lines.append(f'  {_node(e.caller)} -->|"{_label(e)}"| {_node(e.callee)}')
    return "\n".join(lines) + "\n"
