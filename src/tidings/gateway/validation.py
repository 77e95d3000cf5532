"""Request payloads checked against the handler's JSON Schema (the one its pydantic model or
type produced, advertised in the registry) before anything is published.

Path and query parameters join the JSON body as fields; query and path values are text, so
a field the schema types as integer, number or boolean is converted first.
"""

from __future__ import annotations

from typing import Any

try:
    import jsonschema
except ImportError:  # pragma: no cover - part of the gateway extra
    jsonschema = None  # type: ignore[assignment]  # the extra is absent: checked at each use


def _property(schema: dict[str, Any], name: str) -> dict[str, Any]:
    prop = (schema.get("properties") or {}).get(name) or {}
    if "$ref" in prop:
        ref = str(prop["$ref"]).rsplit("/", 1)[-1]
        prop = (schema.get("$defs") or {}).get(ref) or prop
    return prop


def _types(prop: dict[str, Any]) -> set[str]:
    kinds = prop.get("type")
    found = set(kinds if isinstance(kinds, list) else [kinds] if kinds else [])
    for option in prop.get("anyOf") or []:
        if isinstance(option, dict) and option.get("type"):
            found.add(option["type"])
    return found


def coerce(schema: dict[str, Any] | None, name: str, value: str) -> Any:
    """``value`` (text from the path or query) as the type the schema gives field ``name``."""
    if not schema:
        return value
    kinds = _types(_property(schema, name))
    if "string" in kinds or not kinds:
        return value
    if "integer" in kinds:
        try:
            return int(value)
        except ValueError:
            pass
    if "number" in kinds:
        try:
            return float(value)
        except ValueError:
            pass
    if "boolean" in kinds and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return value


def errors(schema: dict[str, Any] | None, payload: Any) -> list[dict[str, Any]]:
    """The validation errors of ``payload`` (empty when it fits), pydantic-shaped:
    ``{"loc": [...], "msg": ..., "type": ...}``."""
    if not schema or jsonschema is None:
        return []
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    out = []
    for err in sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path)):
        loc = ["body", *err.absolute_path]
        if err.validator == "required" and isinstance(err.instance, dict):
            required: list[str] = err.validator_value  # type: ignore[assignment]  # set for 'required'
            missing = [k for k in required if k not in err.instance]
            loc = ["body", *err.absolute_path, *missing[:1]]
        out.append({"loc": loc, "msg": err.message, "type": str(err.validator)})
    return out
