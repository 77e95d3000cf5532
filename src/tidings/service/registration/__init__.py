"""Self-registration of a running service: the NATS micro ``$SRV`` answers, the registry
heartbeats, live stats and the health probes.

:class:`RegistrationAgent` is started by :meth:`tidings.Service.start` and its
:meth:`~RegistrationAgent.deregister` runs first in :meth:`tidings.Service.stop` (callers stop
choosing the instance before it drains). The protocol's names and buses are in
:mod:`tidings.client.registry`; views over what instances say (balancers, the dependency
graph) in :mod:`tidings.discovery`, one layer up, which this package never imports.
"""

from .agent import RegistrationAgent
from .health import HealthCheck, Readiness

__all__ = ["HealthCheck", "Readiness", "RegistrationAgent"]
