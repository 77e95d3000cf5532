"""``tidings bench discovery``: how fast a dead instance leaves the registry, and what
client-side balancing does to latency when one instance is slow. See docs/discovery.md."""

from .run import main

__all__ = ["main"]
