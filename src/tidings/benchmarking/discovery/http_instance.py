"""One HTTP instance for the balancing benchmark and tests, as a child process:
``python -m tidings.benchmarking.discovery.http_instance NAME DELAY FAIL PORT`` serves
``GET /work`` (its name as JSON after DELAY seconds, or 500 at once when FAIL is 1) and
``GET /up`` on 127.0.0.1:PORT (uvicorn + Starlette)."""

from __future__ import annotations

import asyncio
import json
import sys


def serve(name: str, delay: float, fail: bool, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = json.dumps({"instance": name}).encode()

    async def work(request: Request) -> Response:
        if fail:
            return Response(body, status_code=500, media_type="application/json")
        if delay:
            await asyncio.sleep(delay)
        return Response(body, media_type="application/json")

    async def up(request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/work", work), Route("/up", up)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4]))
