"""Fixtures of the redis:// tests: real redis-server processes (tests/helpers/redis_server.py)."""

from tests.helpers.redis_server import fresh_redis_server, redis_server  # noqa: F401
