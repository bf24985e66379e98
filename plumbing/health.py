"""A tiny HTTP endpoint for /metrics (Prometheus), /healthz and /readyz.

Readiness is a callable the service supplies (e.g. "initial sync done"), so this
module knows nothing about producers or consumers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


@dataclass(frozen=True, slots=True)
class HealthServerConfig:
    host: str = "127.0.0.1"  #: bind address; 0.0.0.0 only inside a pod
    port: int = 0  #: 0 picks a free port (tests); fixed in deployments


class HealthServer:
    """Serves metrics from ``registry`` and health/readiness from the given callables."""

    def __init__(
        self,
        config: HealthServerConfig,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self._config = config
        self._registry = registry
        self._ready = ready
        self._alive = alive
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._config.host, self._config.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._config.port
        return f"http://{self._config.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        ok = self._alive()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "unhealthy")

    async def _readyz(self, _: web.Request) -> web.Response:
        ok = self._ready()
        return web.Response(status=200 if ok else 503, text="ready" if ok else "not ready")
