"""The disk store: durable, segmented partition logs with group commit, crash recovery and
bounded memory. See :class:`DiskStore` (store.py) and docs/design/storage.md."""

from .store import DiskStore

__all__ = ["DiskStore"]
