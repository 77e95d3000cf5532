"""``start=`` of subscribe maps to GroupSpec start/start_value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.client import start_position
from tidings.errors import BadRequest


def test_named_positions():
    assert start_position("earliest") == ("earliest", None)
    assert start_position("latest") == ("latest", None)


def test_int_is_an_offset_float_and_datetime_are_times():
    assert start_position(42) == ("offset", 42.0)
    assert start_position(1_700_000_000.5) == ("time", 1_700_000_000.5)
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert start_position(when) == ("time", when.timestamp())


@pytest.mark.parametrize("bad", ["middle", -1, True, None, b"earliest"])
def test_bad_positions_say_what_is_allowed(bad):
    with pytest.raises(BadRequest, match=r"earliest|offset"):
        start_position(bad)
