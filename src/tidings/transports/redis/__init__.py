"""`redis://` — the tidings transport on Redis Streams (needs ``pip install 'tidings[redis]'``).

See docs/transports.md for the mapping, the capability table and the durability settings.
"""

from .transport import RedisTransport

__all__ = ["RedisTransport"]
