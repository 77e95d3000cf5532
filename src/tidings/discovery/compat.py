"""Schema evolution: is a service's current AsyncAPI document compatible with an earlier one?

The vocabulary is schema registries': **BACKWARD** means the new schema can read data
written with the old one (new consumers read old messages), **FORWARD** the old schema can
read data written with the new one (old consumers read new messages), **FULL** both. Each
message of each operation both documents share (matched by action, channel address and
message name) is checked in the directions the mode asks; an operation that disappeared
breaks every mode (its callers lose it); additions break nothing.

The reading rules cover the JSON Schema pydantic writes: ``$ref`` into
``components.schemas``, types (an integer reads as a number), objects (a field the reader
requires must be one the writer always sends; a field the writer sends that the reader does
not know is fine unless ``additionalProperties`` is false), arrays, enums and constants,
``anyOf``/``oneOf`` (optional fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODES = ("BACKWARD", "FORWARD", "FULL", "NONE")


@dataclass(frozen=True)
class Finding:
    where: str  # operation / message
    direction: str  # BACKWARD (new reads old), FORWARD (old reads new), or BOTH
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "direction": self.direction, "problem": self.problem}


class _Doc:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        components = doc.get("components") or {}
        self.schemas = components.get("schemas") or {}
        self.messages = components.get("messages") or {}

    def resolve(self, schema: Any, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if ref in seen:
                return {}
            seen = seen | {ref}
            name = ref.rsplit("/", 1)[-1]
            schema = self.schemas.get(name, {})
        return schema if isinstance(schema, dict) else {}

    def operations(self) -> dict[str, dict[str, Any]]:
        """(action address) -> {message name: payload schema}."""
        out: dict[str, dict[str, Any]] = {}
        channels = self.doc.get("channels") or {}
        for op in (self.doc.get("operations") or {}).values():
            chan_ref = (op.get("channel") or {}).get("$ref", "")
            chan_id = chan_ref.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
            address = (channels.get(chan_id) or {}).get("address") or chan_id
            key = f"{op.get('action')} {address}"
            msgs = out.setdefault(key, {})
            for ref in op.get("messages") or []:
                name = ref.get("$ref", "").rsplit("/", 1)[-1]
                msgs[name] = (self.messages.get(name) or {}).get("payload", {})
            reply = op.get("reply")
            if reply:
                for ref in reply.get("messages") or []:
                    name = ref.get("$ref", "").rsplit("/", 1)[-1]
                    msgs[f"reply {name}"] = (self.messages.get(name) or {}).get("payload", {})
        return out


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return set(kind) if isinstance(kind, list) else {kind}


def readable(reader: Any, writer: Any, rdoc: _Doc, wdoc: _Doc, path: str = "$") -> list[str]:
    """Why values valid under ``writer`` may fail ``reader`` (empty: they never do)."""
    r, w = rdoc.resolve(reader), wdoc.resolve(writer)
    if not r:
        return []
    for alt_key in ("anyOf", "oneOf"):
        if alt_key in w:  # every writer alternative must be readable
            return [p for alt in w[alt_key] for p in readable(r, alt, rdoc, wdoc, path)]
    for alt_key in ("anyOf", "oneOf"):
        if alt_key in r:  # some reader alternative must read the writer
            options = [readable(alt, w, rdoc, wdoc, path) for alt in r[alt_key]]
            return [] if any(not o for o in options) else options[0]
    problems: list[str] = []
    rt, wt = _types(r), _types(w)
    if rt is not None:
        if wt is None:
            return [f"{path}: the reader expects {sorted(rt)}, the writer allows anything"]
        widened = rt | ({"integer"} if "number" in rt else set())
        if not wt <= widened:
            return [f"{path}: type {sorted(wt)} cannot be read as {sorted(rt)}"]
    if "const" in r and w.get("const", object()) != r["const"]:
        problems.append(f"{path}: the reader requires the constant {r['const']!r}")
    if "enum" in r:
        wvals = w.get("enum", [w["const"]] if "const" in w else None)
        if wvals is None:
            problems.append(f"{path}: the reader accepts only {r['enum']}, the writer any value")
        else:
            missing = [v for v in wvals if v not in r["enum"]]
            if missing:
                problems.append(f"{path}: values {missing} are not known to the reader")
    if rt and "object" in rt:
        rprops, wprops = r.get("properties") or {}, w.get("properties") or {}
        wreq = set(w.get("required") or [])
        for name in r.get("required") or []:
            if name not in wreq:
                problems.append(
                    f"{path}.{name}: the reader requires it, the writer "
                    + ("may omit it" if name in wprops else "does not send it")
                )
        for name, sub in rprops.items():
            if name in wprops:
                problems += readable(sub, wprops[name], rdoc, wdoc, f"{path}.{name}")
        if r.get("additionalProperties") is False:
            extra = sorted(set(wprops) - set(rprops))
            if extra:
                problems.append(f"{path}: the reader forbids the writer's fields {extra}")
    if rt and "array" in rt and "items" in r:
        problems += readable(r["items"], w.get("items", {}), rdoc, wdoc, f"{path}[]")
    return problems


def check(old: dict[str, Any], new: dict[str, Any], mode: str = "BACKWARD") -> list[Finding]:
    """The breaking changes from ``old`` to ``new`` under ``mode`` (empty: compatible)."""
    mode = mode.upper()
    if mode not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "NONE":
        return []
    odoc, ndoc = _Doc(old), _Doc(new)
    oops, nops = odoc.operations(), ndoc.operations()
    findings: list[Finding] = []
    for key, omsgs in sorted(oops.items()):
        nmsgs = nops.get(key)
        if nmsgs is None:
            findings.append(Finding(key, "BOTH", "the operation is gone"))
            continue
        for name, oschema in sorted(omsgs.items()):
            if name not in nmsgs:
                findings.append(Finding(f"{key} / {name}", "BOTH", "the message is gone"))
                continue
            nschema = nmsgs[name]
            if mode in ("BACKWARD", "FULL"):
                for p in readable(nschema, oschema, ndoc, odoc):
                    findings.append(Finding(f"{key} / {name}", "BACKWARD", p))
            if mode in ("FORWARD", "FULL"):
                for p in readable(oschema, nschema, odoc, ndoc):
                    findings.append(Finding(f"{key} / {name}", "FORWARD", p))
    return findings
