"""`nats://` — the tidings transport on NATS JetStream (needs ``pip install 'tidings[nats]'``).

See docs/transports.md for the mapping and the capability table, docs/scaling.md for running
a cluster.
"""

from .transport import NatsTransport

__all__ = ["NatsTransport"]
