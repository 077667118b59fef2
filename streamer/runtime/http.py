"""The HTTP endpoints, served by aiohttp: /metrics, /healthz, /readyz.

``/metrics`` is prometheus-client's exposition, in OpenMetrics when the scraper's
Accept header asks for it (prometheus_client.exposition.choose_encoder). ``/healthz``
is liveness (the loop answers and the supervisor runs); ``/readyz`` is readiness, with
each check's state in a JSON body, 503 while any check fails.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .health import Readiness


class HttpServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        alive: Callable[[], bool],
        readiness: Callable[[], Readiness],
        *,
        host: str = "0.0.0.0",  # a pod serves its probes and metrics on every interface
        port: int = 8080,
    ) -> None:
        self.registry = registry
        self.alive = alive
        self.readiness = readiness
        self.host, self.port = host, port
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        self.runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): learn which
            self.port = int(self.runner.addresses[0][1])

    async def close(self) -> None:
        await self.runner.cleanup()

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        if self.alive():
            return web.json_response({"alive": True})
        return web.json_response({"alive": False}, status=503)

    async def readyz(self, request: web.Request) -> web.Response:
        r = self.readiness()
        return web.json_response(
            {"ready": r.ready, "checks": r.checks}, status=200 if r.ready else 503
        )
