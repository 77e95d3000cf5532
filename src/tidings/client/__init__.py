"""The tidings client: :class:`AsyncClient` (the implementation), its blocking twin
:class:`Client`, and :class:`Subscription`. Start with :func:`connect` / :func:`connect_sync`."""

from .asyncclient import AsyncClient, connect
from .positions import start_position
from .replies import raise_for_error
from .subscription import Subscription
from .syncclient import Client, SyncMessage, SyncSubscription, connect_sync

__all__ = [
    "AsyncClient",
    "Client",
    "Subscription",
    "SyncMessage",
    "SyncSubscription",
    "connect",
    "connect_sync",
    "raise_for_error",
    "start_position",
]
