"""The client side of discovery: the ``$SRV`` protocol's subjects and buses, the registry
topics, and :class:`Registry`, the folded view of who runs (``client.services()``).

Running services answer through :mod:`tidings.service.registration`; balancers, the HTTP
transport and the dependency graph build on this view in :mod:`tidings.discovery`.
"""

from .bus import DiscoveryBus, NatsBus, TopicBus, bus_for
from .instances import Endpoint, Instance, ServiceView
from .subjects import (
    EXTERNAL_TOPIC,
    HEARTBEAT_TOPIC,
    SRV_TOPIC,
    control_subject,
    major_of,
    versioned_topic,
)
from .view import Registry

__all__ = [
    "EXTERNAL_TOPIC",
    "HEARTBEAT_TOPIC",
    "SRV_TOPIC",
    "DiscoveryBus",
    "Endpoint",
    "Instance",
    "NatsBus",
    "Registry",
    "ServiceView",
    "TopicBus",
    "bus_for",
    "control_subject",
    "major_of",
    "versioned_topic",
]
