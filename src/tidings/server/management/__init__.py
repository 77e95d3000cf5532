"""The broker's management side over HTTP: Prometheus metrics (``metrics``), and the
``/api/v1`` management API with its OpenAPI document (``api``), mounted into the broker's
HTTP app (``tidings.server.http``). Imported only when HTTP is on: prometheus-client and
Starlette come with the ``tidings[http]`` extra."""
