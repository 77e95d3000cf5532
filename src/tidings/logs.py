"""Logging for the entry points (``tidings broker``, ``tidings run``, ``Service.run()``): one
line per record with time, level and logger, at a level the user picks with ``--log-level``.

Libraries never configure logging; only these entry points do, and ``Service.run()`` only
when the application has not configured it itself.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from .errors import BadRequest

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def level_of(level: str) -> str:
    """``level`` upper-cased, or BadRequest naming the levels there are."""
    name = level.strip().upper()
    if name not in LEVELS:
        raise BadRequest(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    return name


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every record at ``level`` and above to ``stream`` (stderr by default), replacing
    the root logger's handlers."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_of(level))
