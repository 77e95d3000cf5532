"""Discovery: who runs, where, in which version, how healthy, and who calls whom.

- :func:`discover` / :func:`services` (and ``client.discover`` / ``client.services``): the
  registry view (:class:`~tidings.client.registry.Registry`).
- Client-side load balancing for instance-addressed calls: :class:`RoundRobin`,
  :class:`PeakEwma` (power of two choices, peak-EWMA latency, failure penalty) and
  :class:`OutlierEjection`; :class:`DiscoveryTransport` resolves ``http://<service>/path``
  through the registry for httpx.
- :mod:`.graph`: the live dependency map; :mod:`.compat`: schema compatibility checks.

See docs/discovery.md.
"""

from ..client.registry import Endpoint, Instance, Registry, ServiceView
from .balancers import Balancer, PeakEwma, RoundRobin
from .breakers import InstanceBreakers
from .ejection import OutlierEjection
from .lookup import discover, register, services

__all__ = [
    "Balancer",
    "Endpoint",
    "Instance",
    "InstanceBreakers",
    "OutlierEjection",
    "PeakEwma",
    "Registry",
    "RoundRobin",
    "ServiceView",
    "discover",
    "register",
    "services",
]
