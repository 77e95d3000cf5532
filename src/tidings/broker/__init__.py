"""The broker core: topics, groups, leases, dead-letter, scheduling, over one Store."""

from .engine import Broker
from .runtime import BrokerRuntime, FsyncPolicy

__all__ = ["Broker", "BrokerRuntime", "FsyncPolicy"]
