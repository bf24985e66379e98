"""`kubedelta bench e2e`: N simulated clusters x M objects through the real producers,
broker, consumer and query service, each its own process.

Phases (docs/benchmarks.md has the metric list):

1. **initial sync**: start the simulator, create the cluster topics, start consumer and
   query service, then the producers; ``initial_sync_s`` runs from the producers' start
   until the query API counts every object of every cluster.
2. **churn**: the simulator changes objects at ``--churn`` changes/s for
   ``--duration`` s while probe ConfigMaps are created at known instants; a probe's
   end-to-end latency is the time until its change arrives on the query API's change
   feed (SSE). ``churn_per_s`` is what the simulator actually applied.
3. **settle and verify**: churn stops; once every probe was seen and the consumer has
   read every record produced until then, every cluster's objects (identity ->
   resourceVersion) are listed from the simulator and from the query API and compared
   (``verified``, ``differences``).
4. **baselines** (unless ``--no-baselines``): with the services stopped, the same
   topics are read by a bare aiokafka loop, Quix Streams and ``kubedelta replay``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from bench.baselines import BaselineRun, run_baselines
from bench.feedwatch import FeedWatcher
from bench.phases import (
    Monitor,
    Probe,
    Sample,
    initial_sync,
    send_probes,
    settle,
    verify,
)
from bench.pipeline import Pipeline, PipelineConfig, default_producer_processes
from bench.plots import plot_cdf, plot_throughput
from bench.procs import interrupt_on_sigterm
from bench.promscrape import Histogram, ScrapeError, phase_stage_metrics, stage_histograms
from bench.queryclient import QueryClient
from bench.report import Machine, Progress, Report, emit, json_option
from bench.simclient import SimClient
from bench.stats import mean, percentile, rates, without_nan
from bench.workdir import WorkDirBusyError, exclusive_work_dir
from plumbing.gctune import raise_gc_thresholds

#: The --large preset: 10,000,000 resources, for a bigger box than this one.
LARGE_PRESET: dict[str, Any] = {
    "clusters": 10_000,
    "objects": 1_000,
    "producers": 40,
    "partitions": 1,
    "duration": 600.0,
    "probes": 1_000,
}


@dataclass(frozen=True, slots=True)
class E2eConfig:
    """One e2e run."""

    clusters: int = 10  #: simulated clusters
    objects: int = 1_000  #: objects per cluster
    #: Changes per second across all clusters during the churn phase; None = 1 % of all
    #: objects per minute (a busy but ordinary fleet).
    churn_per_s: float | None = None
    duration_s: float = 60.0  #: length of the churn phase, seconds
    probes: int = 300  #: probe changes spread over the churn phase (latency samples)
    producer_processes: int | None = None  #: None = one per 250 clusters
    partitions: int = 1  #: partitions per cluster topic (the producer's default)
    seed: int = 1  #: simulator and probe seed
    work_dir: Path = Path(".kubedelta/bench/e2e")  #: store, logs; emptied at start
    baselines: bool = True  #: run the aiokafka / Quix / replay baselines afterwards
    quix: bool = True  #: include Quix Streams in the baselines
    #: Quix with its default changelog topics (every state write also produced to
    #: Kafka) instead of without: the fair setting is arguable, so both can be measured.
    quix_changelog: bool = False
    linger_ms: float | None = None  #: producer batch linger; None = the producer default
    plots: bool = True  #: write PNGs beside the JSON (needs matplotlib)
    keep: bool = False  #: keep the topics and the store afterwards
    #: Give up on the initial sync after this long, seconds (0 = scale with size).
    sync_timeout_s: float = 0.0
    settle_timeout_s: float = 120.0  #: after churn: wait this long for the view to catch up
    #: Progress sampling period, seconds; 0 = 1 s per 100 clusters (each sample reads
    #: every cluster's status from the query API: ~0.1 ms of its CPU per cluster). RSS
    #: is also sampled at every look at the sync's progress.
    sample_interval_s: float = 0.0

    def target_churn(self) -> float:
        if self.churn_per_s is not None:
            return self.churn_per_s
        return self.clusters * self.objects * 0.01 / 60.0

    def sample_interval(self) -> float:
        if self.sample_interval_s > 0:
            return self.sample_interval_s
        return max(1.0, self.clusters / 100.0)

    def poll_interval(self) -> float:
        """Between cheap looks (the view's total count; the settle's offsets): 0.25 s up
        to 250 clusters, longer beyond, since each look costs the query service time
        in proportion to the clusters."""
        return max(0.25, self.clusters / 1_000.0)

    def sync_timeout(self) -> float:
        if self.sync_timeout_s > 0:
            return self.sync_timeout_s
        return 120.0 + self.clusters * self.objects / 500.0  # >= 500 objects/s or fail


async def run_e2e(
    cfg: E2eConfig, metrics: dict[str, float | int | bool] | None = None
) -> tuple[dict[str, Any], dict[str, float | int | bool], dict[str, Any]]:
    """Run every phase; returns (params, metrics, series for plots). ``metrics``, when
    given, is filled in place, so a caller still has the phases that finished if a later
    one fails. The work folder is emptied first and held for the run (WorkDirBusyError
    if another run holds it)."""
    with exclusive_work_dir(cfg.work_dir):
        return await _run_phases(cfg, metrics)


async def _run_phases(
    cfg: E2eConfig, metrics: dict[str, float | int | bool] | None
) -> tuple[dict[str, Any], dict[str, float | int | bool], dict[str, Any]]:
    producers = cfg.producer_processes or default_producer_processes(cfg.clusters)
    pipeline = Pipeline(
        PipelineConfig(
            clusters=cfg.clusters,
            objects=cfg.objects,
            work_dir=cfg.work_dir,
            producer_processes=producers,
            partitions=cfg.partitions,
            seed=cfg.seed,
            linger_ms=cfg.linger_ms,
        )
    )
    churn_target = cfg.target_churn()
    params: dict[str, Any] = {
        "clusters": cfg.clusters,
        "objects": cfg.objects,
        "churn_target_per_s": round(churn_target, 3),
        "duration_s": cfg.duration_s,
        "probes": cfg.probes,
        "producer_processes": producers,
        "partitions": cfg.partitions,
        "seed": cfg.seed,
        "linger_ms": cfg.linger_ms,
        "quix_changelog": cfg.quix_changelog,
        "topic_prefix": pipeline.topic_prefix,
    }
    metrics = metrics if metrics is not None else {}
    series: dict[str, Any] = {}
    rng = random.Random(f"{cfg.seed}/probes")
    try:
        say(f"simulator: generating {cfg.clusters} x {cfg.objects} objects")
        sim_started = time.monotonic()
        await pipeline.start_simulator(timeout_s=120.0 + cfg.clusters * cfg.objects / 5_000)
        metrics["simulator_start_s"] = time.monotonic() - sim_started
        async with SimClient(pipeline.sim_url) as sim:
            stats = await sim.stats(per_cluster=True)
        expected = {name: int(c["objects"]) for name, c in stats["per_cluster"].items()}
        metrics["objects_total"] = sum(expected.values())
        say(f"topics: creating {cfg.clusters} x {cfg.partitions} partitions")
        phase_started = time.monotonic()
        await pipeline.create_topics(timeout_s=120.0 + cfg.clusters * 0.5)
        metrics["topic_create_s"] = time.monotonic() - phase_started
        say("consumer and query service")
        phase_started = time.monotonic()
        await pipeline.start_consumer()
        await pipeline.start_query()
        metrics["services_start_s"] = time.monotonic() - phase_started
        say(f"producers: {producers} process(es)")
        monitor_started = time.monotonic()
        pipeline.start_producers()
        cpu_before_sync = pipeline.cpu_by_role()
        async with (
            SimClient(pipeline.sim_url) as sim,
            QueryClient(pipeline.query_url, pipeline.config.token) as query,
        ):
            monitor = Monitor(pipeline, query, sim, started=monitor_started)
            sync_s = await initial_sync(
                monitor,
                expected,
                cfg.sync_timeout(),
                cfg.sample_interval(),
                count_interval_s=cfg.poll_interval(),
            )
            metrics["initial_sync_s"] = sync_s
            # Where the machine's CPU went during the sync (the producers started just
            # before the first sample), per role: what a shorter sync has to take from.
            for role, cpu_s in pipeline.cpu_by_role().items():
                metrics[f"sync_cpu_s_{role}"] = cpu_s - cpu_before_sync.get(role, 0.0)
            metrics["initial_sync_objects_per_s"] = metrics["objects_total"] / sync_s
            metrics["initial_topic_bytes"] = pipeline.topic_log_bytes()
            metrics["bytes_per_object_initial"] = metrics["initial_topic_bytes"] / max(
                1, metrics["objects_total"]
            )
            sync_end = len(monitor.samples)

            # -- churn ---------------------------------------------------------------------
            say(
                f"initial sync: {sync_s:.1f} s; churn at {churn_target:g}/s for {cfg.duration_s:g} s"
            )
            probe_prefix = f"kd-probe-{pipeline.topic_prefix[-6:]}-"
            watcher = FeedWatcher(
                pipeline.query_url, pipeline.config.token, name_prefix=probe_prefix
            )
            await watcher.start()
            probes: list[Probe] = []
            before = await monitor.sample()
            stages_before = await _stages(pipeline)
            cpu_before_churn = pipeline.cpu_by_role()
            churn_started = time.monotonic()
            # Probes are changes too: the simulator's churn makes the rest of the target.
            background = max(churn_target - cfg.probes / cfg.duration_s, 0.0)
            if background > 0:
                await sim.churn_start(background)
            prober = asyncio.create_task(
                send_probes(
                    sim,
                    pipeline.config.cluster_names(),
                    cfg.probes,
                    cfg.duration_s,
                    probe_prefix,
                    rng,
                    probes,
                )
            )
            with Progress(int(cfg.duration_s), "churn") as progress:
                while time.monotonic() - churn_started < cfg.duration_s:
                    await asyncio.sleep(cfg.sample_interval())
                    await monitor.sample(measure_bytes=False)
                    progress.advance(int(time.monotonic() - churn_started) - progress.done)
            await prober
            await sim.churn_stop()
            after = await monitor.sample()
            churn_elapsed = time.monotonic() - churn_started
            # Where the probes' time went, from the processes' own histograms.
            metrics.update(
                phase_stage_metrics(stages_before, await _stages(pipeline), churn_elapsed)
            )
            # Cores each role kept busy during the churn (CPU seconds per second): a
            # saturated machine (the sum near its core count) is where latency queues.
            for role, cpu_s in pipeline.cpu_by_role().items():
                spent = cpu_s - cpu_before_churn.get(role, 0.0)
                metrics[f"churn_cores_{role}"] = spent / churn_elapsed
            churn_end = len(monitor.samples)
            changes = after.churn_changes - before.churn_changes + len(probes)
            metrics["churn_per_s"] = changes / churn_elapsed
            wire = after.topic_bytes - before.topic_bytes
            metrics["bytes_per_change"] = wire / changes if changes else math.nan

            # -- settle ----------------------------------------------------------------------
            say("settling: waiting for the last probes and records")
            wanted = {(p.cluster, p.name) for p in probes}
            settled = await settle(
                monitor,
                lambda: wanted <= watcher.first_seen().keys(),
                cfg.settle_timeout_s,
                poll_s=cfg.poll_interval() * 2,
            )
            metrics["settle_s"] = settled.seconds
            if not settled.caught_up:
                say("settle: the consumer did not reach the end offsets in time")
            sightings = watcher.first_sightings()
            await watcher.stop()
            seen_probes = [
                (p, sightings[(p.cluster, p.name)])
                for p in probes
                if (p.cluster, p.name) in sightings
            ]
            latencies_ms = [(s.seen_at - p.sent_at) * 1000.0 for p, s in seen_probes]
            metrics["probes_sent"] = len(probes)
            metrics["probes_seen"] = len(latencies_ms)
            metrics["e2e_p50_ms"] = percentile(latencies_ms, 50)
            metrics["e2e_p95_ms"] = percentile(latencies_ms, 95)
            metrics["e2e_p99_ms"] = percentile(latencies_ms, 99)
            metrics["e2e_mean_ms"] = mean(latencies_ms)
            metrics["e2e_max_ms"] = max(latencies_ms, default=math.nan)
            # The simulator's answer time to the probe creates: part of every latency above
            # (the change is made somewhere inside it); large when the simulator is starved.
            answer_ms = [(p.answered_at - p.sent_at) * 1000.0 for p in probes]
            metrics["probe_create_p50_ms"] = percentile(answer_ms, 50)
            metrics["probe_create_p95_ms"] = percentile(answer_ms, 95)
            # The same latencies cut at the producer's observation time (eventTimeMs, one
            # clock: every process runs on this machine): simulator + watch + producer
            # before it, sink + broker + consumer + query catch-up + feed after it.
            to_producer_ms = [(s.event_at - p.sent_at) * 1000.0 for p, s in seen_probes]
            after_producer_ms = [(s.seen_at - s.event_at) * 1000.0 for p, s in seen_probes]
            for pct in (50, 95, 99):
                metrics[f"e2e_to_producer_p{pct}_ms"] = percentile(to_producer_ms, pct)
                metrics[f"e2e_after_producer_p{pct}_ms"] = percentile(after_producer_ms, pct)

            # -- verify ----------------------------------------------------------------------
            # The producers are done (churn stopped, every record consumed); stopped, their
            # periodic discovery and digests no longer compete with the verification.
            for producer in pipeline.producers:
                producer.stop()
            say("verifying: simulator state vs query API, object by object")
            verify_started = time.monotonic()
            checked = await verify(sim, query, pipeline.config.cluster_names())
            metrics["verify_s"] = time.monotonic() - verify_started
            metrics["verified_objects"] = checked.compared
            metrics["differences"] = checked.differences
            metrics["verified"] = checked.differences == 0
            for example in checked.examples:
                click.echo(f"  difference: {example}", err=True)
        pipeline.components.sample()
        metrics.update(pipeline.disk_usage())
        metrics.update(pipeline.memory_metrics())
        metrics["cpu_s_bench"] = bench_cpu_s()
        series["samples"] = monitor.samples
        series["sync_end"] = sync_end
        series["churn_end"] = churn_end
        series["latencies_ms"] = latencies_ms
        say("stopping the services")
        pipeline.stop_services()

        # -- baselines -------------------------------------------------------------------------
        if cfg.baselines:
            say("baselines: aiokafka, quix, replay over the same topics")
            metrics.update(
                run_baselines(
                    BaselineRun(
                        pipeline.bootstrap,
                        pipeline.topic_prefix,
                        cfg.work_dir / "baselines",
                        quix=cfg.quix,
                        quix_changelog=cfg.quix_changelog,
                    ),
                    pipeline.components,
                )
            )
    finally:
        pipeline.components.stop_all()
        if not cfg.keep:
            with contextlib.suppress(Exception):
                await pipeline.delete_topics()
            shutil.rmtree(cfg.work_dir / "store", ignore_errors=True)
            shutil.rmtree(cfg.work_dir / "baselines", ignore_errors=True)
    metrics, missing = without_nan(metrics)
    if missing:
        say(f"no value (left out of the report): {', '.join(missing)}")
    return params, metrics, series


_T0 = time.monotonic()


def bench_cpu_s() -> float:
    """CPU seconds of this process so far (the harness: sampling, probes, verification);
    the components' CPU is measured per process apart."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _stages(pipeline: Pipeline) -> dict[str, Histogram]:
    """The consumer's and producers' stage histograms, or none (with a note) if their
    pages cannot be read: the stage metrics are then left out, the run goes on."""
    try:
        return await stage_histograms(pipeline.metrics_urls())
    except ScrapeError as exc:
        say(f"stage latencies left out: {exc}")
        return {}


def say(text: str) -> None:
    """A progress line on stderr with the time since the scenario started and this
    process's CPU seconds so far (what the harness itself costs)."""
    click.echo(
        f"[{time.monotonic() - _T0:6.1f} s, bench cpu {bench_cpu_s():5.1f} s] {text}", err=True
    )


def write_plots(json_path: Path, series: dict[str, Any]) -> list[Path]:
    """Throughput over time and the latency CDF beside the JSON; [] without matplotlib."""
    samples: list[Sample] = series.get("samples", [])
    if not samples:
        return []
    written: list[Path] = []
    sync = samples[: series["sync_end"]]
    churn = samples[series["sync_end"] : series["churn_end"]]
    throughput = json_path.with_name(json_path.stem + "-throughput.png")
    if plot_throughput(
        throughput,
        [
            (
                "initial sync",
                {
                    "objects visible in the query API /s": rates([(s.t, s.visible) for s in sync]),
                    "records materialized /s": rates([(s.t, s.consumed) for s in sync]),
                },
            ),
            (
                "churn",
                {
                    "changes applied by the simulator /s": rates(
                        [(s.t, s.churn_changes) for s in churn]
                    ),
                    "records materialized /s": rates([(s.t, s.consumed) for s in churn]),
                },
            ),
        ],
        "per second",
    ):
        written.append(throughput)
    cdf = json_path.with_name(json_path.stem + "-latency-cdf.png")
    if plot_cdf(
        cdf,
        {"change -> visible in query API": series.get("latencies_ms", [])},
        "end-to-end latency",
        "ms",
    ):
        written.append(cdf)
    return written


@click.command("e2e")
@click.option(
    "--clusters", type=click.IntRange(min=1), default=None, help="Simulated clusters [10]."
)
@click.option(
    "--objects", type=click.IntRange(min=1), default=None, help="Objects per cluster [1000]."
)
@click.option(
    "--churn",
    type=click.FloatRange(min=0),
    default=None,
    help="Changes/s over all clusters during the churn phase [1% of objects per minute].",
)
@click.option("--duration", type=click.FloatRange(min=1), default=None, help="Churn phase, s [60].")
@click.option("--probes", type=click.IntRange(min=0), default=None, help="Latency probes [300].")
@click.option(
    "--producers",
    type=click.IntRange(min=1),
    default=None,
    help="Producer processes [1 per 250 clusters].",
)
@click.option(
    "--partitions", type=click.IntRange(min=1), default=None, help="Partitions per topic [1]."
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".kubedelta/bench/e2e"),
    show_default=True,
    help="Store and logs of the run (emptied first).",
)
@click.option("--baselines/--no-baselines", default=True, show_default=True)
@click.option("--quix/--no-quix", default=True, show_default=True, help="Quix in the baselines.")
@click.option(
    "--quix-changelog/--no-quix-changelog",
    default=False,
    show_default=True,
    help="Quix with its changelog topics (its default) instead of without.",
)
@click.option(
    "--linger-ms", type=click.FloatRange(min=0), default=None, help="Producer batch linger, ms."
)
@click.option("--plots/--no-plots", default=True, show_default=True)
@click.option("--keep/--no-keep", default=False, show_default=True, help="Keep topics and store.")
@click.option(
    "--large",
    is_flag=True,
    help="Preset: 10,000 clusters x 1,000 objects (10M), 40 producers, 1 partition, "
    "600 s churn. For a bigger box; explicit options still win.",
)
@json_option
def command(
    clusters: int | None,
    objects: int | None,
    churn: float | None,
    duration: float | None,
    probes: int | None,
    producers: int | None,
    partitions: int | None,
    seed: int,
    work_dir: Path,
    baselines: bool,
    quix: bool,
    quix_changelog: bool,
    linger_ms: float | None,
    plots: bool,
    keep: bool,
    large: bool,
    json_path: Path | None,
) -> None:
    """N clusters x M objects through producers, Kafka, consumer and query API."""
    preset: dict[str, Any] = LARGE_PRESET if large else {}

    def pick(value: Any, name: str, default: Any) -> Any:
        return value if value is not None else preset.get(name, default)

    defaults = E2eConfig()
    cfg = E2eConfig(
        clusters=pick(clusters, "clusters", defaults.clusters),
        objects=pick(objects, "objects", defaults.objects),
        churn_per_s=churn,
        duration_s=pick(duration, "duration", defaults.duration_s),
        probes=pick(probes, "probes", defaults.probes),
        producer_processes=pick(producers, "producers", defaults.producer_processes),
        partitions=pick(partitions, "partitions", defaults.partitions),
        seed=seed,
        work_dir=work_dir,
        baselines=baselines,
        quix=quix,
        quix_changelog=quix_changelog,
        linger_ms=linger_ms,
        plots=plots,
        keep=keep,
    )
    # The harness timestamps changes as they arrive on the feed: a full collection of
    # its heap (50 ms here) would count as latency of the system under test.
    raise_gc_thresholds()
    interrupt_on_sigterm()
    global _T0
    _T0 = time.monotonic()
    partial: dict[str, float | int | bool] = {}
    try:
        params, metrics, series = asyncio.run(run_e2e(cfg, partial))
    except WorkDirBusyError as exc:
        raise click.ClickException(str(exc)) from exc
    except BaseException:
        if partial and json_path is not None:
            failed = json_path.with_name(json_path.stem + "-partial.json")
            kept, _missing = without_nan({**partial, "completed": False})
            Report(
                "e2e", {"clusters": cfg.clusters, "objects": cfg.objects}, kept, Machine.current()
            ).write_json(failed)
            say(f"failed; the phases that finished are in {failed}")
        raise
    report = Report("e2e", params, metrics, Machine.current())
    emit(report, json_path)
    if plots and json_path is not None:
        written = write_plots(json_path, series)
        if written:
            click.echo("plots: " + ", ".join(str(p) for p in written))
        else:
            click.echo("plots skipped: matplotlib is not installed (pip install -e '.[bench]')")
