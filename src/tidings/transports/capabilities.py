"""The capability checks of declarations, written once and made by every transport at its
boundary (``create_topic`` and ``subscribe``): what an engine cannot do is refused with
Unsupported when a topic or group is declared, whoever declares it (the client, the service
framework, the registry), never when it first fails."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import GroupSpec, TopicSpec
from . import base as caps

if TYPE_CHECKING:
    from .base import Transport


def require_topic(transport: Transport, spec: TopicSpec) -> None:
    """Unsupported when ``spec`` asks for what ``transport`` cannot do."""
    if spec.retention == "work-queue":
        transport.require(caps.CAP_WORK_QUEUE, f"topic {spec.name!r} with retention='work-queue'")
    if spec.replicas > 1:
        transport.require(caps.CAP_REPLICAS, f"topic {spec.name!r} with replicas > 1")


def require_group(transport: Transport, spec: GroupSpec) -> None:
    """Unsupported when the group ``spec`` asks for what ``transport`` cannot do."""
    what = f"group {spec.name!r}"
    need = transport.require
    if spec.mode == "ordered":
        need(caps.CAP_ORDERED, f"{what} with mode='ordered'")
    if spec.key_ordered:
        need(caps.CAP_KEY_ORDERED, f"{what} with key_ordered=True")
    if spec.auto_ack:
        need(caps.CAP_AUTO_ACK, f"{what} with auto_ack=True")
    if spec.start == "offset":
        need(caps.CAP_START_OFFSET, f"{what} starting at an offset")
    if spec.start == "time":
        need(caps.CAP_START_TIME, f"{what} starting at a time")
    if spec.dead_letter_expired:
        need(caps.CAP_DEAD_LETTER_EXPIRED, f"{what} with dead_letter_expired=True")


def replays_history(transport: Transport) -> bool:
    """Whether a group declared now can read what was published before it (the built-in
    broker, ``memory://``, ``nats://``, ``redis://``); on RabbitMQ a group starts where it is
    declared, so readers of a topic's history (the discovery registry) ask the live instances
    instead. Starting a group at an offset is the capability that says it."""
    return caps.CAP_START_OFFSET in transport.capabilities
