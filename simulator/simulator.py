"""The simulator: many clusters' API servers on one HTTP port, plus churn."""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from simulator.churn import ChurnDriver
from simulator.cluster import ClusterState
from simulator.config import ChurnMix, SimulatorConfig
from simulator.errors import UnknownClusterError
from simulator.generator import ClusterGenerator
from simulator.server import ApiServer

#: Listen backlog: a benchmark opens thousands of watches at once.
_BACKLOG = 4096
#: Seconds the server waits for open handlers when it stops (watches are ended first).
_SHUTDOWN_TIMEOUT_S = 2.0


class Simulator:
    """Simulated clusters, generated from ``config`` on construction (deterministic per seed).

    Use ``async with sim.serve() as base_url``; each cluster's API server address is
    ``f"{base_url}/clusters/{name}"``.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.clusters: dict[str, ClusterState] = {}
        for name in config.clusters:
            cluster = ClusterState(
                name,
                history_size=config.history_size,
                list_snapshots=config.list_snapshots_per_cluster,
                rng=random.Random(f"{config.seed}/{name}/server"),
            )
            generator = ClusterGenerator(
                name, config.seed, config.objects_per_cluster, config.with_widget_crd
            )
            cluster.load(generator.objects())
            self.clusters[name] = cluster
        self.api = ApiServer(self)
        self._churn: ChurnDriver | None = None
        self._churn_task: asyncio.Task[None] | None = None

    def cluster(self, name: str) -> ClusterState:
        """The state of cluster ``name`` (UnknownClusterError if it is not simulated)."""
        try:
            return self.clusters[name]
        except KeyError:
            raise UnknownClusterError(f"cluster {name!r} is not simulated") from None

    @contextlib.asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> AsyncIterator[str]:
        """Serve every cluster over HTTP (HTTPS with ``ssl_context``); yields the base URL
        (``port=0``: any free port)."""
        _raise_open_file_limit()
        runner = web.AppRunner(
            self.api.application(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=_BACKLOG, ssl_context=ssl_context)
            await site.start()
            bound_port = runner.addresses[0][1]
            yield f"{'https' if ssl_context is not None else 'http'}://{host}:{bound_port}"
        finally:
            await self.stop_churn()
            self.api.stop_watches()
            await asyncio.sleep(0)  # let watch handlers see the end and finish their streams
            await runner.cleanup()

    # -- churn ----------------------------------------------------------------------------------
    def start_churn(
        self,
        rate_per_s: float,
        mix: ChurnMix | None = None,
        clusters: Sequence[str] | None = None,
        tick_s: float = 0.02,
    ) -> ChurnDriver:
        """Start changing objects at ``rate_per_s`` changes/s spread over ``clusters``
        (default: all), in a task on the running loop. Replaces no running churn: stop it first."""
        if self._churn_task is not None and not self._churn_task.done():
            raise RuntimeError("churn is already running; stop_churn() first")
        names = list(self.clusters) if clusters is None else list(clusters)
        driver = ChurnDriver(
            [self.cluster(name) for name in names],
            rate_per_s=rate_per_s,
            mix=mix or ChurnMix(),
            rng=random.Random(f"{self.config.seed}/churn"),
        )
        self._churn = driver
        self._churn_task = asyncio.get_running_loop().create_task(driver.run(tick_s))
        return driver

    async def stop_churn(self) -> None:
        """Stop the churn task (no-op when none runs)."""
        task, self._churn_task = self._churn_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def churn(self) -> ChurnDriver | None:
        """The current or last churn driver (its counters), if churn was ever started."""
        return self._churn

    # -- stats ----------------------------------------------------------------------------------
    def stats(self, per_cluster: bool = False) -> dict[str, Any]:
        """Totals for ``/_sim/stats``; ``per_cluster`` adds one entry per cluster."""
        clusters = self.clusters.values()
        result: dict[str, Any] = {
            "clusters": len(self.clusters),
            "objects": sum(c.count() for c in clusters),
            "open_watches": sum(c.open_watch_count() for c in clusters),
            "http_requests": self.api.http_requests,
            "peak_lists_in_flight": self.api.peak_lists_in_flight,
            "api_requests": sum(c.counters.requests for c in clusters),
            "lists": sum(c.counters.lists for c in clusters),
            "watches_opened": sum(c.counters.watches_opened for c in clusters),
            "events": sum(c.counters.events for c in clusters),
            "faults_served": sum(c.counters.faults_served for c in clusters),
        }
        churn = self._churn
        result["churn"] = {
            "running": self._churn_task is not None and not self._churn_task.done(),
            "rate_per_s": churn.rate_per_s if churn else 0.0,
            "changes": churn.changes if churn else 0,
            "operations": dict(churn.operations) if churn else {},
        }
        if per_cluster:
            result["per_cluster"] = {
                name: {
                    "objects": c.count(),
                    "resource_version": c.current_resource_version(),
                    "open_watches": c.open_watch_count(),
                    "requests": c.counters.requests,
                    "events": c.counters.events,
                }
                for name, c in self.clusters.items()
            }
        return result


def _raise_open_file_limit() -> None:
    """Thousands of open watches need thousands of sockets: lift the soft fd limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
