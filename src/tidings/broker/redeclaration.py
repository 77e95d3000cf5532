"""The rule for declaring a topic that exists: the settings the caller gave must match the
existing topic's, else TopicConflict naming each difference (as RabbitMQ's
PRECONDITION_FAILED). Settings the caller left out are not compared, so an identical or a
setting-less re-declaration passes. The broker applies it to CREATE_TOPIC with ``exist_ok``
(for every client of the protocol); the Python client applies it on every transport."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import BadRequest, TopicConflict
from ..model import TopicSpec

SETTINGS = frozenset(f for f in TopicSpec.__struct_fields__ if f != "name")


def check_redeclaration(existing: TopicSpec, asked: Mapping[str, Any]) -> TopicSpec:
    """Refuse re-declaring a topic with settings (the ones the caller gave) that differ from
    the existing topic's; an identical re-declaration returns the existing spec."""
    differ = []
    for field, wanted in asked.items():
        have = getattr(existing, field)
        same = (
            abs(have - wanted) < 1e-6
            if isinstance(have, float) and isinstance(wanted, int | float)
            else have == wanted
        )
        if not same:
            differ.append(f"{field}={have!r} (asked {wanted!r})")
    if differ:
        raise TopicConflict(
            f"topic {existing.name!r} already exists with different settings: "
            f"{', '.join(differ)}; nothing was changed. Declare it as it is, or delete it "
            "and create it again (its messages are lost)"
        )
    return existing


def given_settings(spec: TopicSpec, given: Iterable[str]) -> dict[str, Any]:
    """``spec``'s values of the settings named in ``given`` (what a declaration chose)."""
    names = list(given)
    unknown = sorted(set(names) - SETTINGS)
    if unknown:
        raise BadRequest(
            f"unknown topic settings {', '.join(unknown)}; known: {', '.join(sorted(SETTINGS))}"
        )
    return {name: getattr(spec, name) for name in names}
