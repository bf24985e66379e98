"""A Clouddriver-style poller: what caching Kubernetes resources costs without deltas.

Spinnaker's Clouddriver keeps its cache by re-listing every kind of every cluster on
a fixed interval (30 s by default) from outside the cluster. :class:`Poller` does the
same against the simulator: each cycle LISTs every listable kind of every cluster,
page by page (``limit=500``, as kubectl/client-go page), and accounts API calls and
response bytes. Two byte counts are kept: as served (uncompressed) and as the real
API server sends them to a client that accepts gzip (responses over 128 KiB gzipped
at level 1; client-go asks for gzip by default).

Staleness is measured, not assumed: probe ConfigMaps are created at known instants,
and a probe's staleness is the time until the first completed LIST that contains it.

The accounting (:class:`PollerAccounting`) is pure; :class:`Poller` is the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bench.feedwatch import FeedWatcher
from bench.phases import Monitor, Probe, initial_sync, send_probes
from bench.pipeline import Pipeline, PipelineConfig
from bench.procs import interrupt_on_sigterm
from bench.queryclient import QueryClient
from bench.report import Machine, Progress, Report, emit, json_option
from bench.simclient import KindRef, ListResult, SimClient
from bench.stats import mean, per_hour, without_nan
from plumbing.gctune import raise_gc_thresholds

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class PollerConfig:
    """How the poller polls."""

    clusters: tuple[str, ...]  #: clusters to poll, each under the simulator's /clusters/<name>
    interval_s: float = 30.0  #: seconds between cycle starts (Clouddriver's default)
    page_size: int = 500  #: LIST ``limit`` (kubectl's chunk size)
    #: Clusters polled at once; kinds of one cluster are listed one after another,
    #: like one caching agent per account.
    cluster_concurrency: int = 8
    probe_prefix: str = "kd-probe-"  #: ConfigMaps whose names start so are probes


@dataclass
class PollerAccounting:
    """Totals over completed cycles; pure, so the arithmetic is tested without I/O."""

    cycles: int = 0  #: completed cycles
    api_calls: int = 0  #: HTTP LIST requests (one per page), discovery excluded
    body_bytes: int = 0  #: response bytes as served, uncompressed
    gzip_bytes: int = 0  #: response bytes as the real API server would send them
    objects_listed: int = 0  #: objects returned over all LISTs
    cycle_seconds: list[float] = field(default_factory=list)  #: duration of each cycle
    #: (cluster, probe name) -> wall time of the first completed LIST containing it
    probes_seen: dict[tuple[str, str], float] = field(default_factory=dict)

    def add_list(
        self, cluster: str, result: ListResult, completed_at: float, probe_prefix: str
    ) -> None:
        self.api_calls += result.calls
        self.body_bytes += result.body_bytes
        self.gzip_bytes += result.gzip_bytes
        self.objects_listed += len(result.versions)
        for name in result.names:
            if name.startswith(probe_prefix):
                self.probes_seen.setdefault((cluster, name), completed_at)

    def add_cycle(self, duration_s: float) -> None:
        self.cycles += 1
        self.cycle_seconds.append(duration_s)

    def cycles_per_hour(self, interval_s: float) -> float:
        """Cycles start every ``interval_s``, or back to back when a cycle takes longer."""
        longest = max(self.cycle_seconds, default=0.0)
        return SECONDS_PER_HOUR / max(interval_s, longest)

    def per_hour(self, total: int, interval_s: float) -> float:
        """A per-cycle average of ``total`` extrapolated to one hour of polling."""
        if self.cycles == 0:
            return 0.0
        return total / self.cycles * self.cycles_per_hour(interval_s)

    def staleness(self, probes: Iterable[tuple[str, str, float]]) -> tuple[list[float], int]:
        """Staleness (s) of each probe (cluster, name, created_at) the poller saw, and how
        many it never saw."""
        seen: list[float] = []
        unseen = 0
        for cluster, name, created_at in probes:
            at = self.probes_seen.get((cluster, name))
            if at is None:
                unseen += 1
            else:
                seen.append(max(0.0, at - created_at))
        return seen, unseen


class Poller:
    """Lists every kind of every cluster every ``interval_s`` seconds until stopped."""

    def __init__(self, client: SimClient, config: PollerConfig) -> None:
        self.client = client
        self.config = config
        self.accounting = PollerAccounting()
        self._kinds: dict[str, list[KindRef]] = {}

    async def discover(self) -> None:
        """Discovery once per cluster (Clouddriver caches it too; not counted as polling)."""
        for cluster in self.config.clusters:
            self._kinds[cluster] = await self.client.kinds(cluster)

    def kinds(self, cluster: str) -> Sequence[KindRef]:
        return self._kinds[cluster]

    async def poll_cluster(self, cluster: str) -> None:
        for kind in self._kinds[cluster]:
            result = await self.client.list_kind(
                cluster, kind, page_size=self.config.page_size, with_names=True
            )
            self.accounting.add_list(cluster, result, time.time(), self.config.probe_prefix)

    async def cycle(self) -> float:
        """One full pass over every cluster; returns its duration in seconds."""
        started = time.monotonic()
        limit = asyncio.Semaphore(self.config.cluster_concurrency)

        async def one(cluster: str) -> None:
            async with limit:
                await self.poll_cluster(cluster)

        await asyncio.gather(*(one(c) for c in self.config.clusters))
        duration = time.monotonic() - started
        self.accounting.add_cycle(duration)
        return duration

    async def run(self, cycles: int) -> None:
        """Run ``cycles`` cycles, starting one every ``interval_s`` (or at once if late)."""
        if not self._kinds:
            await self.discover()
        next_start = time.monotonic()
        for _ in range(cycles):
            delay = next_start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            next_start += self.config.interval_s
            await self.cycle()


# -- the scenario: the poller against our pipeline on the same simulated clusters ------------


@dataclass(frozen=True, slots=True)
class PollerBenchConfig:
    """One ``kubedelta bench poller`` run."""

    clusters: int = 1  #: simulated clusters
    objects: int = 10_000  #: objects per cluster
    churn_pct_per_min: float = 1.0  #: changes per minute, percent of all objects
    interval_s: float = 30.0  #: the poller's cycle interval (Clouddriver's default)
    #: Measured window, seconds; per-hour numbers are extrapolated from it.
    window_s: float = 120.0
    probes: int = 40  #: probe ConfigMaps created during the window (staleness samples)
    seed: int = 1
    linger_ms: float | None = None  #: producer batch linger; None = the producer default
    work_dir: Path = Path(".kubedelta/bench/poller")
    keep: bool = False

    def churn_per_s(self) -> float:
        return self.clusters * self.objects * self.churn_pct_per_min / 100.0 / 60.0

    def cycles(self) -> int:
        return max(1, math.ceil(self.window_s / self.interval_s))


async def run_poller_bench(cfg: PollerBenchConfig) -> tuple[dict[str, Any], dict[str, float]]:
    if cfg.work_dir.exists():
        shutil.rmtree(cfg.work_dir)
    cfg.work_dir.mkdir(parents=True)
    pipeline = Pipeline(
        PipelineConfig(
            clusters=cfg.clusters,
            objects=cfg.objects,
            work_dir=cfg.work_dir,
            linger_ms=cfg.linger_ms,
        )
    )
    churn = cfg.churn_per_s()
    params: dict[str, Any] = {
        "clusters": cfg.clusters,
        "objects": cfg.objects,
        "churn_pct_per_min": cfg.churn_pct_per_min,
        "churn_target_per_s": round(churn, 3),
        "interval_s": cfg.interval_s,
        "window_s": cfg.window_s,
        "cycles": cfg.cycles(),
        "probes": cfg.probes,
        "linger_ms": cfg.linger_ms,
    }
    metrics: dict[str, float] = {}
    try:
        await pipeline.start_simulator(timeout_s=120.0 + cfg.clusters * cfg.objects / 5_000)
        async with SimClient(pipeline.sim_url) as sim:
            stats = await sim.stats(per_cluster=True)
        expected = {name: int(c["objects"]) for name, c in stats["per_cluster"].items()}
        monitor_started = time.monotonic()
        pipeline.start_producers()
        await pipeline.wait_for_topics(timeout_s=60.0 + cfg.clusters * 0.5)
        await pipeline.start_consumer()
        await pipeline.start_query()
        async with (
            SimClient(pipeline.sim_url, gzip_accounting=True) as sim,
            QueryClient(pipeline.query_url, pipeline.config.token) as query,
        ):
            monitor = Monitor(pipeline, query, sim, started=monitor_started)
            metrics["initial_sync_s"] = await initial_sync(monitor, expected, 600.0, 1.0)

            probe_prefix = f"kd-probe-{pipeline.topic_prefix[-6:]}-"
            poller = Poller(
                sim,
                PollerConfig(
                    clusters=tuple(pipeline.config.cluster_names()),
                    interval_s=cfg.interval_s,
                    probe_prefix=probe_prefix,
                ),
            )
            await poller.discover()
            watcher = FeedWatcher(
                pipeline.query_url, pipeline.config.token, name_prefix=probe_prefix
            )
            await watcher.start()
            # Probes stop 1.5 intervals before the end: every one is listed at least once.
            probe_span = max(cfg.window_s - 1.5 * cfg.interval_s, 1.0)
            # Probes are changes too: the simulator makes the rest of the target rate.
            background = max(churn - cfg.probes / cfg.window_s, 0.0)
            if background > 0:
                await sim.churn_start(background)
            await asyncio.sleep(min(5.0, cfg.interval_s))  # churn reaches its steady rate
            before = await monitor.sample()
            began = time.monotonic()
            probes: list[Probe] = []
            prober = asyncio.create_task(
                send_probes(
                    sim,
                    pipeline.config.cluster_names(),
                    cfg.probes,
                    probe_span,
                    probe_prefix,
                    random.Random(f"{cfg.seed}/poller-probes"),
                    probes,
                )
            )
            sampler = asyncio.create_task(_sample_every(monitor, 2.0))
            with Progress(cfg.cycles(), "poller cycles") as progress:
                for _ in range(cfg.cycles()):
                    cycle_started = time.monotonic()
                    await poller.cycle()
                    progress.advance()
                    rest = cfg.interval_s - (time.monotonic() - cycle_started)
                    if rest > 0:
                        await asyncio.sleep(rest)
            window = time.monotonic() - began
            await prober
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            after = await monitor.sample()
            await sim.churn_stop()
            # Our staleness: wait a little for the last probes to reach the feed.
            deadline = time.monotonic() + 30.0
            wanted = {(p.cluster, p.name) for p in probes}
            while time.monotonic() < deadline:
                if wanted <= watcher.first_seen().keys():
                    break
                await asyncio.sleep(0.5)
            seen = watcher.first_seen()
            await watcher.stop()

        acc = poller.accounting
        ours_latencies = [
            seen[(p.cluster, p.name)] - p.sent_at for p in probes if (p.cluster, p.name) in seen
        ]
        poller_staleness, unseen = acc.staleness((p.cluster, p.name, p.sent_at) for p in probes)
        ours_bytes = after.topic_bytes - before.topic_bytes
        changes = after.churn_changes - before.churn_changes + len(probes)
        metrics["window_s"] = window
        metrics["churn_per_s"] = changes / window
        metrics["poller_cycles"] = acc.cycles
        metrics["poller_cycle_s_max"] = max(acc.cycle_seconds, default=0.0)
        metrics["poller_api_calls_per_h"] = acc.per_hour(acc.api_calls, cfg.interval_s)
        metrics["poller_bytes_per_h"] = acc.per_hour(acc.gzip_bytes, cfg.interval_s)
        metrics["poller_bytes_per_h_uncompressed"] = acc.per_hour(acc.body_bytes, cfg.interval_s)
        metrics["ours_bytes_per_h"] = per_hour(ours_bytes, window)
        metrics["ours_bytes_per_change"] = ours_bytes / changes if changes else 0.0
        metrics["bytes_ratio"] = metrics["poller_bytes_per_h"] / max(
            metrics["ours_bytes_per_h"], 1.0
        )
        metrics["bytes_ratio_uncompressed"] = metrics["poller_bytes_per_h_uncompressed"] / max(
            metrics["ours_bytes_per_h"], 1.0
        )
        metrics["poller_mean_staleness_s"] = mean(poller_staleness)
        metrics["ours_mean_staleness_s"] = mean(ours_latencies)
        metrics["poller_probes_unseen"] = unseen
        metrics["ours_probes_unseen"] = len(probes) - len(ours_latencies)
        metrics["probes_sent"] = len(probes)
        pipeline.components.sample()
        metrics.update(pipeline.memory_metrics())
    finally:
        pipeline.components.stop_all()
        if not cfg.keep:
            with contextlib.suppress(Exception):
                await pipeline.delete_topics()
            shutil.rmtree(cfg.work_dir / "store", ignore_errors=True)
    kept, missing = without_nan(metrics)
    if missing:
        click.echo(f"no value (left out of the report): {', '.join(missing)}", err=True)
    return params, {k: float(v) for k, v in kept.items()}


async def _sample_every(monitor: Monitor, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await monitor.sample()


@click.command("poller")
@click.option("--clusters", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--objects", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option(
    "--churn-pct-per-min",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Changes per minute as a percentage of all objects.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Poller cycle interval, s (Clouddriver: 30).",
)
@click.option(
    "--window",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Measured window, s; per-hour figures are extrapolated from it.",
)
@click.option("--probes", type=click.IntRange(min=0), default=40, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--linger-ms", type=click.FloatRange(min=0), default=None, help="Producer batch linger, ms."
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".kubedelta/bench/poller"),
    show_default=True,
)
@click.option("--keep/--no-keep", default=False, show_default=True)
@json_option
def command(
    clusters: int,
    objects: int,
    churn_pct_per_min: float,
    interval: float,
    window: float,
    probes: int,
    seed: int,
    linger_ms: float | None,
    work_dir: Path,
    keep: bool,
    json_path: Path | None,
) -> None:
    """A Clouddriver-style poller (LIST everything every 30 s) against kubedelta: bytes,
    API calls and staleness on the same simulated clusters at the same churn."""
    cfg = PollerBenchConfig(
        clusters=clusters,
        objects=objects,
        churn_pct_per_min=churn_pct_per_min,
        interval_s=interval,
        window_s=window,
        probes=probes,
        seed=seed,
        linger_ms=linger_ms,
        work_dir=work_dir,
        keep=keep,
    )
    interrupt_on_sigterm()
    # The harness timestamps changes as they arrive on the feed: a full collection of
    # its heap (50 ms here) would count as latency of the system under test.
    raise_gc_thresholds()
    params, metrics = asyncio.run(run_poller_bench(cfg))
    emit(Report("poller", params, metrics, Machine.current()), json_path)
