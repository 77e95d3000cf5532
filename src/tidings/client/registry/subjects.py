"""Names of the discovery protocol: NATS micro subjects and their tidings topic mapping.

The NATS micro protocol (ADR-32) asks on ``$SRV.<VERB>``, ``$SRV.<VERB>.<name>`` and
``$SRV.<VERB>.<name>.<id>`` (VERB: PING, INFO, STATS) and every matching instance answers.
On ``nats://`` those are core NATS subjects, so NATS' own tooling sees tidings services. The
built-in broker and ``memory://`` have no ``$`` subjects: there the request goes to the one
reserved topic :data:`SRV_TOPIC` with the subject in the :data:`SUBJECT_HEADER` header, every
instance reads it in a group of its own and answers the requests addressed to it (the same
scatter-gather as ``svc.scatter``).

The durable registry: heartbeats on :data:`HEARTBEAT_TOPIC` (one record per instance and
interval, kept for :data:`HEARTBEAT_RETENTION` seconds), third-party registrations on
:data:`EXTERNAL_TOPIC` (kept until deregistered). Readers fold them into the live view.
"""

from __future__ import annotations

import re

from ...errors import BadRequest

PREFIX = "$SRV"
VERBS = ("PING", "INFO", "STATS")

SRV_TOPIC = "_srv"
SUBJECT_HEADER = "tidings-srv-subject"
HEARTBEAT_TOPIC = "_tidings.registry"
EXTERNAL_TOPIC = "_tidings.registry.external"
HEARTBEAT_RETENTION = 3600.0  # seconds: older heartbeats are of no use to anyone
SRV_RETENTION = 300.0  # discovery requests are answered within seconds

PING_TYPE = "io.nats.micro.v1.ping_response"
INFO_TYPE = "io.nats.micro.v1.info_response"
STATS_TYPE = "io.nats.micro.v1.stats_response"


def control_subject(verb: str, name: str | None = None, instance: str | None = None) -> str:
    """``$SRV.PING``, ``$SRV.INFO.pricing`` or ``$SRV.STATS.pricing.<id>``."""
    verb = verb.upper()
    if verb not in VERBS:
        raise BadRequest(f"unknown discovery verb {verb!r}: use one of {', '.join(VERBS)}")
    if instance is not None and name is None:
        raise BadRequest("an instance id needs its service name")
    parts = [PREFIX, verb, *(p for p in (name, instance) if p is not None)]
    return ".".join(parts)


def instance_subjects(name: str, instance: str) -> list[str]:
    """Every subject an instance answers (three verbs, three levels each)."""
    return [
        control_subject(verb, *target)
        for verb in VERBS
        for target in ((), (name,), (name, instance))
    ]


def parse_subject(subject: str) -> tuple[str, str | None, str | None] | None:
    """(verb, name, id) of a control subject, or None when it is not one."""
    parts = subject.split(".")
    if len(parts) < 2 or len(parts) > 4 or parts[0] != PREFIX or parts[1] not in VERBS:
        return None
    return parts[1], (parts[2] if len(parts) > 2 else None), (parts[3] if len(parts) > 3 else None)


def addressed_to(subject: str, name: str, instance: str) -> str | None:
    """The verb when ``subject`` asks this instance, else None."""
    parsed = parse_subject(subject)
    if parsed is None:
        return None
    verb, want_name, want_id = parsed
    if want_name is not None and want_name != name:
        return None
    if want_id is not None and want_id != instance:
        return None
    return verb


def major_of(version: str) -> str:
    """The major version of ``"2"``, ``"2.1"`` or ``"2.1.0"`` (a SemVer string)."""
    head = str(version).strip().lstrip("v").split(".", 1)[0]
    if not head.isdigit():
        raise BadRequest(f"invalid version {version!r}: use SemVer like 2.1.0 (or a major like 2)")
    return head


def versioned_topic(topic: str, version: str) -> str:
    """The topic that only handlers of ``version``'s major version consume."""
    return f"{topic}.v{major_of(version)}"


INSTANCE_GROUP_KEY = "tidings.instance_group"  # instance metadata: its group (canary, blue...)
_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def instance_group(name: str) -> str:
    """``name`` if it is a valid instance group (1 to 64 letters, digits, '-', '_')."""
    if not isinstance(name, str) or not _GROUP.match(name):
        raise BadRequest(
            f"invalid instance group {name!r}: use 1 to 64 letters, digits, '-' or '_' "
            "(like canary or blue)"
        )
    return name


def group_topic(topic: str, group: str) -> str:
    """The topic that only the instances of ``group`` consume, beside ``topic`` (the gateway
    sends a route's share of traffic for that group there: docs/gateway.md)."""
    return f"{topic}.group-{instance_group(group)}"
