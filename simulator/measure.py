"""Numbers for the simulator's own costs: ``python -m simulator.measure``.

- memory: RSS growth per object after generating one cluster of ``--objects`` objects;
- list: objects/s of a full paginated LIST of all Pods (kubernetes-asyncio client,
  raw responses + orjson, like the producers) against a server in a child process;
- churn: changes/s achieved for a requested rate (no HTTP, the churn loop alone).

Each part runs the simulator in its own process so RSS and CPU are not shared with
the client. Short by design: a few seconds per part on the 2-core box.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import time
from typing import Any

import click
import orjson
import psutil

from simulator.config import ChurnMix, SimulatorConfig
from simulator.simulator import Simulator


def _memory_child(objects: int, conn: multiprocessing.connection.Connection) -> None:
    process = psutil.Process(os.getpid())
    before = process.memory_info().rss
    started = time.perf_counter()
    sim = Simulator(SimulatorConfig(clusters=("m",), objects_per_cluster=objects, seed=1))
    elapsed = time.perf_counter() - started
    after = process.memory_info().rss
    cluster = sim.cluster("m")
    json_bytes = sum(len(r[0]) for s in cluster._kinds.values() for r in s.records.values())
    conn.send(
        {
            "objects": cluster.count(),
            "rss_growth_bytes": after - before,
            "rss_per_object": (after - before) / max(1, cluster.count()),
            "json_bytes_per_object": json_bytes / max(1, cluster.count()),
            "generate_s": elapsed,
        }
    )


def _server_child(objects: int, conn: multiprocessing.connection.Connection) -> None:
    sim = Simulator(SimulatorConfig(clusters=("big",), objects_per_cluster=objects, seed=1))
    pods = sum(1 for _ in sim.cluster("big").store_for("", "Pod").records)

    async def serve() -> None:
        async with sim.serve() as base_url:
            conn.send({"base_url": base_url, "pods": pods})
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(serve())


async def _list_pods(api_url: str, limit: int, parse: bool) -> tuple[int, int, float]:
    """Page through all Pods; ``parse=False`` reads only each page's metadata (server and
    transport cost without the client's JSON decode)."""
    from kubernetes_asyncio import client

    async with client.ApiClient(client.Configuration(host=api_url)) as api:
        core = client.CoreV1Api(api)
        started = time.perf_counter()
        count = 0
        size = 0
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": limit, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            response: Any = await core.list_pod_for_all_namespaces(**kwargs)
            raw = await response.read()
            size += len(raw)
            if parse:
                page = orjson.loads(raw)
                count += len(page["items"])
                meta = page["metadata"]
            else:
                head = raw[: raw.index(b',"items":[')] + b"}"
                meta = orjson.loads(head)["metadata"]
                count += limit if "continue" in meta else 0
            token = meta.get("continue")
            if not token:
                break
        return count, size, time.perf_counter() - started


def _churn_rate(rate: float, seconds: float) -> dict[str, float]:
    sim = Simulator(
        SimulatorConfig(clusters=tuple(f"c{i}" for i in range(20)), objects_per_cluster=1000)
    )

    async def run() -> dict[str, float]:
        driver = sim.start_churn(rate_per_s=rate, mix=ChurnMix())
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        await sim.stop_churn()
        elapsed = time.perf_counter() - started
        return {
            "requested_per_s": rate,
            "achieved_per_s": driver.changes / elapsed,
            "changes": driver.changes,
        }

    return asyncio.run(run())


@click.command()
@click.option(
    "--objects", default=100_000, show_default=True, help="Objects for the memory measurement."
)
@click.option(
    "--list-objects",
    default=300_000,
    show_default=True,
    help="Cluster size for the LIST test (~1/3 are Pods).",
)
@click.option("--limit", default=500, show_default=True, help="LIST page size.")
@click.option(
    "--churn-rate", default=10_000.0, show_default=True, help="Requested churn changes/s."
)
def main(objects: int, list_objects: int, limit: int, churn_rate: float) -> None:
    """Measure simulator memory per object, LIST throughput and churn rate accuracy."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_memory_child, args=(objects, child))
    proc.start()
    memory = parent.recv()
    proc.join()
    click.echo(
        f"memory: {memory['objects']} objects, RSS +{memory['rss_growth_bytes'] / 2**20:.0f} MiB = "
        f"{memory['rss_per_object']:.0f} B/object (JSON {memory['json_bytes_per_object']:.0f} B/object), "
        f"generated in {memory['generate_s']:.1f} s"
    )

    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_server_child, args=(list_objects, child))
    proc.start()
    info = parent.recv()
    try:
        api_url = f"{info['base_url']}/clusters/big"
        for parse in (False, True):
            count, size, elapsed = asyncio.run(_list_pods(api_url, limit, parse))
            count = info["pods"] if not parse else count
            click.echo(
                f"list ({'client orjson-decodes pages' if parse else 'client reads bytes only'}): "
                f"{count} pods limit={limit} in {elapsed:.2f} s = "
                f"{count / elapsed:,.0f} objects/s, {size / elapsed / 2**20:.0f} MiB/s"
            )
    finally:
        parent.send("stop")
        proc.join()

    churn = _churn_rate(churn_rate, 3.0)
    click.echo(
        f"churn: requested {churn['requested_per_s']:,.0f}/s, achieved {churn['achieved_per_s']:,.0f}/s "
        f"({churn['changes']:.0f} changes in 3 s, 20 clusters x 1000 objects, no watchers)"
    )


if __name__ == "__main__":
    main()
