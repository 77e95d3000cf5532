"""Storage: one Store interface, an in-memory store and a disk store.

The broker engine talks to storage only through :class:`tidings.storage.base.Store`.
"""

from .base import RecoveryReport, Store
from .cursor import GroupCursor
from .disk import DiskStore
from .memory import MemoryStore

__all__ = ["DiskStore", "GroupCursor", "MemoryStore", "RecoveryReport", "Store"]
