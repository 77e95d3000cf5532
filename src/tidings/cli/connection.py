"""Opening a blocking client for a command, with connection errors as clear CLI errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..client import Client, connect_sync
from .output import CliState, user_errors


@contextlib.contextmanager
def client_for(st: CliState) -> Iterator[Client]:
    """A connected :class:`tidings.Client` for the command's URL, closed afterwards."""
    with user_errors():
        client = connect_sync(st.url)
        try:
            yield client
        finally:
            client.close()
