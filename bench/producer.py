"""``kubedelta bench producer``: the producer against one simulated cluster.

Measures, with the real local broker:

- initial sync: LIST of every kind -> Kafka acknowledged, objects/s (target >= 20,000/s
  for 100,000 objects), in a child process whose peak RSS is reported (target <= 200 MB);
- steady churn (default 5,000 changes/s): watch event -> Kafka ack p50/p99 (target p99
  <= 100 ms) and compressed bytes per record actually acknowledged;
- restart: a second producer on the same topic reads it back and relists; records
  resent (0 when nothing changed) and time to ready;
- bytes on the wire per Pod status change and per Deployment scale, whole object vs
  JSON merge patch, in aiokafka record batches of 1 and of 100 changes;
- all of it for zstd and lz4.

The simulator runs in this process and the producer in a child (``bench.producer_child``);
both share the machine, so the simulator's CPU share is reported too.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson
import psutil
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from bench.report import Machine, Report, emit, json_option
from deltas import identity_bytes, partition_for
from plumbing import broker
from producers.config import StripConfig
from producers.records import RecordFactory
from producers.strip import body_of, resource_version_of, strip_object
from simulator import ChurnMix, Simulator, SimulatorConfig
from simulator.generator import ObjectFactory, format_time

#: Kafka's compression codec ids (record batch attributes).
_CODECS = {"zstd": 4, "lz4": 3}


@dataclass(frozen=True, slots=True)
class ProducerBenchConfig:
    objects: int = 100_000  #: objects in the simulated cluster
    churn_rate: float = 5000.0  #: changes/s during the churn phase
    churn_seconds: float = 20.0  #: length of the churn phase
    compressions: str = "zstd,lz4"  #: one full run per codec, first one also restarts
    partitions: int = 3
    seed: int = 1
    profile: str = ""  #: write a pyinstrument profile of the first initial sync here


# -- wire bytes per change (pure, in process) ----------------------------------------------


def merge_patch(old: Any, new: Any) -> Any:
    """RFC 7386 JSON merge patch turning ``old`` into ``new``."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value) if isinstance(value, dict) else value
    return patch


def _encode(
    factory: RecordFactory, group: str, obj: dict[str, Any], body: bytes
) -> tuple[bytes, bytes]:
    from deltas import ResourceKey

    meta = obj["metadata"]
    ns, name = str(meta.get("namespace", "")), str(meta["name"])
    key = identity_bytes(group, obj["kind"], ns, name)
    rec = factory.upsert(
        ResourceKey(group, "v1", obj["kind"], ns, name),
        key,
        partition_for(key, 3),
        obj,
        body,
        resource_version_of(obj),
        0.0,
        "",
    )
    assert rec.value is not None
    return key, rec.value


def batch_bytes(records: list[tuple[bytes, bytes]], codec: str) -> float:
    """Compressed Kafka record batch size per record (what goes on the wire and to disk)."""
    builder = DefaultRecordBatchBuilder(2, _CODECS[codec], 0, -1, -1, -1, 16 * 1024 * 1024)
    ts = int(time.time() * 1000)
    for offset, (key, value) in enumerate(records):
        builder.append(offset, timestamp=ts, key=key, value=value, headers=[])
    return len(builder.build()) / len(records)


def wire_bytes(pods: list[dict[str, Any]], deployments: list[dict[str, Any]]) -> dict[str, float]:
    strip = StripConfig()
    factory = RecordFactory("c1", 3, "bench")
    make = ObjectFactory(random.Random(7))
    now = time.time()
    changes: dict[str, list[tuple[dict[str, Any], dict[str, Any], str]]] = {
        "pod_status": [],
        "deployment_scale": [],
    }
    for pod in pods:
        old = strip_object(copy.deepcopy(pod), group="", version="v1", kind="Pod", config=strip)
        new_raw = make.bump_pod_status(copy.deepcopy(pod), now)
        new_raw["metadata"]["resourceVersion"] = "bench-" + str(random.random())
        new = strip_object(new_raw, group="", version="v1", kind="Pod", config=strip)
        changes["pod_status"].append((old, new, ""))
    for deployment in deployments:
        old = strip_object(
            copy.deepcopy(deployment), group="apps", version="v1", kind="Deployment", config=strip
        )
        new = copy.deepcopy(old)
        meta, spec = new["metadata"], new["spec"]
        meta["generation"] = int(meta.get("generation", 1)) + 1
        meta["resourceVersion"] = "bench-" + str(random.random())
        spec["replicas"] = int(spec.get("replicas", 1)) + 1
        status = new.setdefault("status", {})
        for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            status[field] = spec["replicas"]
        status["observedGeneration"] = meta["generation"]
        for condition in status.get("conditions", []):
            condition["lastUpdateTime"] = format_time(now)
        changes["deployment_scale"].append((old, new, "apps"))
    out: dict[str, float] = {}
    for name, items in changes.items():
        whole = [_encode(factory, g, new, body_of(new)) for old, new, g in items]
        patch = [
            _encode(factory, g, new, orjson.dumps(merge_patch(old, new))) for old, new, g in items
        ]
        out[f"{name}_record_raw_bytes"] = sum(len(k) + len(v) for k, v in whole) / len(whole)
        out[f"{name}_patch_record_raw_bytes"] = sum(len(k) + len(v) for k, v in patch) / len(patch)
        for codec in _CODECS:
            for size in (1, 100):
                label = "single" if size == 1 else f"batch{size}"
                n = min(len(whole), 100 if size == 1 else len(whole) // size * size)
                w = [batch_bytes(whole[i : i + size], codec) for i in range(0, n, size)]
                p = [batch_bytes(patch[i : i + size], codec) for i in range(0, n, size)]
                out[f"bytes_per_{name}_{codec}_{label}"] = sum(w) / len(w)
                out[f"bytes_per_{name}_patch_{codec}_{label}"] = sum(p) / len(p)
    return out


# -- the producer in a child process -------------------------------------------------------


class Child:
    def __init__(self, process: asyncio.subprocess.Process, stats: Path) -> None:
        self.process = process
        self.stats = stats
        self.metrics_url = ""
        self.ps = psutil.Process(process.pid)
        self.peak_rss = 0
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            try:
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            except psutil.Error:
                return
            await asyncio.sleep(0.1)

    async def _line(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            raise click.ClickException("the producer child exited early")
        result: dict[str, Any] = json.loads(line)
        return result

    async def ready(self, timeout_s: float) -> dict[str, Any]:
        health = await self._line(60)
        self.metrics_url = f"http://127.0.0.1:{health['port']}/metrics"
        return await self._line(timeout_s)

    async def progress(self) -> tuple[float, float]:
        """(events observed so far, records in the buffer) from the child's /metrics."""
        async with aiohttp.ClientSession() as session, session.get(self.metrics_url) as r:
            text = await r.text()
        observed = buffered = 0.0
        for line in text.splitlines():
            if (
                line.startswith("kubedelta_producer_events_observed_total{")
                and "LISTED" not in line
            ):
                observed += float(line.rsplit(" ", 1)[1])
            elif line.startswith("kubedelta_producer_buffer_records{"):
                buffered += float(line.rsplit(" ", 1)[1])
        return observed, buffered

    async def caught_up(self, timeout_s: float = 300.0) -> float:
        """Wait until the child has processed every watch event (its observed count stops
        moving for 1 s) and Kafka acknowledged everything; returns the seconds it took."""
        began = time.monotonic()
        last, since = -1.0, time.monotonic()
        while time.monotonic() - began < timeout_s:
            observed, buffered = await self.progress()
            if observed != last or buffered:
                last, since = observed, time.monotonic()
            elif time.monotonic() - since >= 1.0:
                return since - began
            await asyncio.sleep(0.1)
        raise click.ClickException("the producer did not catch up with the churn")

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    async def finish(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), 120)
        self._sampler.cancel()
        result: dict[str, Any] = json.loads(self.stats.read_text())
        return result


async def spawn(args: list[str], stats: Path) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.producer_child",
        *args,
        "--stats",
        str(stats),
        stdout=asyncio.subprocess.PIPE,
    )
    return Child(process, stats)


def own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def run_async(config: ProducerBenchConfig, bootstrap: str, tmp: Path) -> dict[str, float]:
    metrics: dict[str, float] = {}
    began = time.monotonic()
    sim = Simulator(
        SimulatorConfig(
            clusters=("c1",),
            objects_per_cluster=config.objects,
            seed=config.seed,
            history_size=max(200_000, int(config.churn_rate * config.churn_seconds * 2)),
        )
    )
    metrics["simulator_build_s"] = time.monotonic() - began
    cluster = sim.cluster("c1")
    pods: list[dict[str, Any]] = []
    deployments: list[dict[str, Any]] = []
    for obj in cluster.objects():
        if obj.get("kind") == "Pod" and len(pods) < 500:
            pods.append(obj)
        elif obj.get("kind") == "Deployment" and len(deployments) < 500:
            deployments.append(obj)
        if len(pods) >= 500 and len(deployments) >= 500:
            break
    metrics.update({k: round(v, 1) for k, v in wire_bytes(pods, deployments).items()})

    codecs = [c.strip() for c in config.compressions.split(",") if c.strip()]
    async with sim.serve() as base:
        for index, codec in enumerate(codecs):
            prefix = f"bench-producer-{uuid.uuid4().hex[:8]}"
            common = [
                "--api-url", f"{base}/clusters/c1",
                "--bootstrap", bootstrap,
                "--topic-prefix", prefix,
                "--compression", codec,
                "--partitions", str(config.partitions),
            ]  # fmt: skip
            profile = ["--profile", config.profile] if config.profile and index == 0 else []
            child = await spawn([*common, *profile], tmp / f"{codec}-1.json")
            ready = await child.ready(900)
            metrics[f"initial_sync_s_{codec}"] = round(ready["sync_s"], 2)
            metrics[f"objects_per_s_{codec}"] = round(ready["objects"] / ready["sync_s"])
            # What one whole core would do: the machine is shared, wall time is not ours.
            metrics[f"objects_per_cpu_s_{codec}"] = round(ready["objects"] / ready["sync_cpu_s"])
            metrics[f"rss_mb_after_sync_{codec}"] = round(child.peak_rss / 2**20, 1)
            if index == 0:
                metrics["objects"] = ready["objects"]
                metrics["kinds"] = ready["kinds"]
            # Steady churn.
            assert child.process.pid is not None
            os.kill(child.process.pid, signal.SIGUSR1)
            cpu_child, cpu_sim, t0 = child.cpu_s(), own_cpu_s(), time.monotonic()
            driver = sim.start_churn(rate_per_s=config.churn_rate, mix=ChurnMix())
            changes_before = driver.changes
            await asyncio.sleep(config.churn_seconds)
            await sim.stop_churn()
            elapsed = time.monotonic() - t0
            made = driver.changes - changes_before
            cpu_child = child.cpu_s() - cpu_child
            cpu_sim = own_cpu_s() - cpu_sim
            metrics[f"churn_catch_up_s_{codec}"] = round(await child.caught_up(), 2)
            stats = await child.finish()
            latency = stats["latency"]
            metrics[f"churn_changes_per_s_{codec}"] = round(made / elapsed)
            metrics[f"churn_p50_ack_ms_{codec}"] = round(latency.get("p50_ms", 0.0), 1)
            metrics[f"churn_p99_ack_ms_{codec}"] = round(latency.get("p99_ms", 0.0), 1)
            metrics[f"churn_max_ack_ms_{codec}"] = round(latency.get("max_ms", 0.0), 1)
            metrics[f"churn_records_acked_{codec}"] = stats["records_acked_window"]
            metrics[f"churn_producer_cpu_share_{codec}"] = round(cpu_child / elapsed, 2)
            metrics[f"churn_producer_cpu_us_per_change_{codec}"] = round(cpu_child / made * 1e6, 1)
            metrics[f"churn_simulator_cpu_share_{codec}"] = round(cpu_sim / elapsed, 2)
            metrics[f"rss_mb_{codec}"] = round(child.peak_rss / 2**20, 1)
            metrics[f"wire_bytes_per_record_all_{codec}"] = round(
                stats["batch_bytes_acked"] / max(1.0, stats["records_acked_total"]), 1
            )
            if index == 0:
                # Restart on the same topic with nothing changed: read back, relist, resend 0.
                restart = await spawn(common, tmp / f"{codec}-2.json")
                t1 = time.monotonic()
                again = await restart.ready(900)
                metrics["restart_ready_s"] = round(time.monotonic() - t1, 2)
                metrics["restart_sync_s"] = round(again["sync_s"], 2)
                metrics["restart_objects_restored"] = again["restored"]
                done = await restart.finish()
                metrics["restart_records_resent"] = int(done["upserts_sent"] + done["deletes_sent"])
                metrics["restart_rss_mb"] = round(restart.peak_rss / 2**20, 1)
    return metrics


def run(config: ProducerBenchConfig) -> Report:
    broker_config = broker.LocalBrokerConfig.from_env(os.environ)
    with broker.borrowed(broker_config) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        metrics = asyncio.run(run_async(config, bootstrap, Path(tmp)))
    return Report("producer", asdict(config), metrics, Machine.current())


_DEFAULTS = ProducerBenchConfig()


@click.command("producer")
@click.option(
    "--objects",
    type=click.IntRange(min=100),
    default=_DEFAULTS.objects,
    show_default=True,
    help="Objects in the simulated cluster.",
)
@click.option(
    "--churn-rate",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.churn_rate,
    show_default=True,
    help="Changes/s in the churn phase.",
)
@click.option(
    "--churn-seconds",
    type=click.FloatRange(min=1),
    default=_DEFAULTS.churn_seconds,
    show_default=True,
    help="Length of the churn phase.",
)
@click.option(
    "--compressions",
    default=_DEFAULTS.compressions,
    show_default=True,
    help="Codecs to run, comma list (zstd, lz4).",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=_DEFAULTS.partitions,
    show_default=True,
    help="Topic partitions.",
)
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True, help="Simulator seed.")
@click.option(
    "--profile", default="", help="Write a pyinstrument profile of the first initial sync to PATH."
)
@json_option
def command(
    objects: int,
    churn_rate: float,
    churn_seconds: float,
    compressions: str,
    partitions: int,
    seed: int,
    profile: str,
    json_path: Path | None,
) -> None:
    """Producer: initial sync rate, RSS, churn ack latency, restart, bytes per change."""
    config = ProducerBenchConfig(
        objects, churn_rate, churn_seconds, compressions, partitions, seed, profile
    )
    emit(run(config), json_path)
