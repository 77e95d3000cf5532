"""Version negotiation: the highest common version, or an error that says who must upgrade."""

from __future__ import annotations

import pytest

from tidings.errors import ProtocolError, VersionMismatch
from tidings.protocol import constants, hello, negotiate
from tidings.protocol.messages import Hello


def _hello(lo: int, hi: int, magic: str = constants.MAGIC) -> Hello:
    return Hello(magic=magic, min_version=lo, max_version=hi)


def test_this_client_and_this_broker_agree():
    assert negotiate(hello("me")) == constants.PROTOCOL_VERSION


def test_highest_common_version_is_chosen():
    assert negotiate(_hello(1, 9), 1, 3) == 3
    assert negotiate(_hello(2, 2), 1, 3) == 2


def test_newer_client_is_told_to_upgrade_the_broker():
    with pytest.raises(VersionMismatch, match="upgrade the broker") as info:
        negotiate(_hello(5, 6), 1, 1)
    assert info.value.code == 404


def test_older_client_is_told_to_upgrade_the_client():
    with pytest.raises(VersionMismatch, match="upgrade the client"):
        negotiate(_hello(1, 1), 2, 3)


def test_bad_magic_and_empty_range():
    with pytest.raises(ProtocolError, match="bad magic"):
        negotiate(_hello(1, 1, magic="amqp"))
    with pytest.raises(ProtocolError, match="empty version range"):
        negotiate(_hello(3, 1))
