"""Opening the store the server runs on: the disk store, or memory with ``--memory``."""

from __future__ import annotations

import logging
import os

from ..storage import MemoryStore
from ..storage.base import Store
from .config import ServerConfig

log = logging.getLogger("tidings.server")


def open_store(config: ServerConfig) -> tuple[Store, str]:
    """The store for ``config`` and a description for the log."""
    if config.memory:
        return MemoryStore(), "memory (nothing survives a restart)"
    try:
        from ..storage.disk import DiskStore
    except ImportError:
        log.warning(
            "the disk store is not available in this build; running in memory: messages "
            "will NOT survive a restart"
        )
        return MemoryStore(), "memory (disk store unavailable)"
    path = os.path.abspath(config.data_dir)
    return DiskStore(path), f"disk at {path}"
