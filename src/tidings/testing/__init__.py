"""The test kit: run services on ``memory://`` and wait for their handlers, without sleeps.

:class:`ServiceKit` starts services on a private in-process broker, publishes, waits for
settled handlings and dead letters, and fast-forwards a fake clock. The pytest fixture
``tidings_kit`` (enable it with ``pytest_plugins = ["tidings.testing.plugin"]``) starts one and
stops it after the test.
"""

from ..clock import ManualClock
from .kit import DEFAULT_TIMEOUT, ServiceKit, payloads

__all__ = ["DEFAULT_TIMEOUT", "ManualClock", "ServiceKit", "payloads"]
