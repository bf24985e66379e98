"""``kubedelta simulate``: run the Kubernetes API simulator until Ctrl-C / SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import click
import uvloop

from plumbing.gctune import freeze_heap, keep_freezing
from simulator import ChurnMix, Simulator, SimulatorConfig


@click.command("simulate")
@click.option(
    "--clusters",
    "cluster_count",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Number of simulated clusters.",
)
@click.option(
    "--objects",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Objects per cluster (all kinds together).",
)
@click.option(
    "--churn",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Changes per second across all clusters (0: none).",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8001,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Generator seed: same seed, same objects.",
)
@click.option(
    "--prefix", default="c", show_default=True, help="Cluster names are <prefix>1 .. <prefix>N."
)
@click.option(
    "--bookmark-interval",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds between watch BOOKMARKs.",
)
@click.option(
    "--history",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Watch events kept per cluster for resumption.",
)
@click.option("--token", default=None, help="Require this bearer token (default: accept any).")
def simulate(
    cluster_count: int,
    objects: int,
    churn: float,
    port: int,
    seed: int,
    prefix: str,
    bookmark_interval: float,
    history: int,
    token: str | None,
) -> None:
    """Serve simulated Kubernetes API servers for many clusters on one port."""
    config = SimulatorConfig(
        clusters=tuple(f"{prefix}{i}" for i in range(1, cluster_count + 1)),
        objects_per_cluster=objects,
        seed=seed,
        bookmark_interval_s=bookmark_interval,
        history_size=history,
        required_token=token,
    )
    uvloop.run(_run(config, port, churn))


async def _run(config: SimulatorConfig, port: int, churn: float) -> None:
    started = time.monotonic()
    click.echo(
        f"generating {len(config.clusters)} clusters x {config.objects_per_cluster} objects ...",
        err=True,
    )
    sim = Simulator(config)
    # The generated clusters live as long as the process: out of the cyclic GC's reach,
    # its full collections no longer rescan them (1-2.5 us per churn change otherwise).
    freeze_heap()
    # Churn keeps adding long-lived objects (new versions, watch history): full
    # collections over those paused every watch stream for ~190 ms, 12 times a minute
    # under 10,000 changes/s (an API server does not). Frozen each second, they are
    # never rescanned; young collections stay small at the default thresholds.
    freezer = asyncio.create_task(keep_freezing(1.0))
    click.echo(f"generated in {time.monotonic() - started:.1f} s", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with sim.serve(host="127.0.0.1", port=port) as base_url:
        click.echo(f"base URL: {base_url}")
        for name in config.clusters[:3]:
            click.echo(f"  cluster {name}: {base_url}/clusters/{name}")
        if len(config.clusters) > 3:
            click.echo(f"  ... {len(config.clusters) - 3} more (/clusters/<name>)")
        click.echo(
            f"stats: {base_url}/_sim/stats   control: POST {base_url}/_sim/clusters/<name>/<knob>"
        )
        if churn > 0:
            sim.start_churn(rate_per_s=churn, mix=ChurnMix())
            click.echo(f"churn: {churn:g} changes/s")
        await stop.wait()
        click.echo("stopping", err=True)
    freezer.cancel()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signum)
