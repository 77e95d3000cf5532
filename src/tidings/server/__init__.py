"""The broker server: the engine behind the native TCP protocol.

Start one with ``python -m tidings.server --port 7420 --data ./tidings-data`` or from code::

    from tidings.server import ServerConfig, run_server, serve
    run_server(ServerConfig(port=7420))             # blocks until SIGTERM/SIGINT
    await serve(ServerConfig(port=0))               # inside a running event loop

:class:`BrokerServer` gives finer control (``start()`` returns the bound address, ``stop()``).
"""

from .app import BrokerServer
from .config import ServerConfig, config_from
from .main import main, run_server, serve

__all__ = ["BrokerServer", "ServerConfig", "config_from", "main", "run_server", "serve"]
