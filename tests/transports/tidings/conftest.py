"""Fixtures for the tidings:// transport's tests: the same real broker processes as the server's."""

from tests.server.conftest import broker, connect, fresh_broker, name, transport  # noqa: F401
