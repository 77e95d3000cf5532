"""The broker's HTTP side, in the broker's event loop (Starlette + uvicorn, the
``tidings[http]`` extra): today ``/livez`` and ``/readyz``; the seed the management API grows
from. ``--http 127.0.0.1:7421`` (default, loopback only), ``--http off`` to disable. Without
the extra installed the broker starts anyway and says how to enable it.
"""

from .serve import HttpServer, start_http

__all__ = ["HttpServer", "start_http"]
