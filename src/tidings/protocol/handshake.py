"""The handshake rules both sides share: building a HELLO and choosing the version."""

from __future__ import annotations

from ..errors import ProtocolError, VersionMismatch
from . import constants as c
from .messages import Hello


def hello(client: str = "", token: str | None = None, user: str | None = None) -> Hello:
    """The HELLO this code sends: every version it speaks, and the credentials if any."""
    return Hello(
        magic=c.MAGIC,
        min_version=c.MIN_PROTOCOL_VERSION,
        max_version=c.PROTOCOL_VERSION,
        client=client,
        token=token,
        user=user,
    )


def negotiate(
    request: Hello,
    min_version: int = c.MIN_PROTOCOL_VERSION,
    max_version: int = c.PROTOCOL_VERSION,
) -> int:
    """The highest version both sides speak; VersionMismatch (saying who should upgrade) when
    the ranges do not overlap, ProtocolError when the HELLO is not a tidings HELLO."""
    if request.magic != c.MAGIC:
        raise ProtocolError(f"bad magic {request.magic!r} in HELLO: not a tidings client")
    if request.min_version > request.max_version:
        raise ProtocolError(
            f"HELLO offers an empty version range {request.min_version}..{request.max_version}"
        )
    if request.min_version > max_version:
        raise VersionMismatch(
            f"the client speaks protocol versions {request.min_version}..{request.max_version} "
            f"but this broker only {min_version}..{max_version}: upgrade the broker (or use an "
            "older client)"
        )
    if request.max_version < min_version:
        raise VersionMismatch(
            f"the client speaks protocol versions {request.min_version}..{request.max_version} "
            f"but this broker only {min_version}..{max_version}: upgrade the client"
        )
    return min(request.max_version, max_version)
