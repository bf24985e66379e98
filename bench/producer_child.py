"""The producer under benchmark, in its own process (so its RSS and CPU are its own).

Runs ``producers.agent.run_producers`` exactly as ``kubedelta produce`` does, plus
hooks for measurement: a JSON line on stdout with its /metrics port, one when ready, latency samples from
watch event to Kafka acknowledgement, and a stats file at exit.
SIGUSR1 clears the latency samples (start of a measurement window); SIGTERM stops
(flushing to Kafka, as in production).

    python -m bench.producer_child --api-url URL --bootstrap HOST:PORT --topic-prefix P \
        --stats PATH [--compression zstd] [--profile PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from prometheus_client import CollectorRegistry

from plumbing.gctune import freeze_heap
from plumbing.health import HealthServer, HealthServerConfig
from plumbing.kafka import KafkaConnection
from plumbing.zstd import reuse_zstd_contexts
from producers.agent import ClusterProducer, run_producers, tune_gc
from producers.config import (
    ApiConnectionConfig,
    ProducerConfig,
    SinkConfig,
    TopicConfig,
)
from producers.metrics import ProducerMetrics
from producers.records import OutRecord


class Samples:
    """Ack latencies of object records (markers and digests excluded), in seconds."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.records = 0

    def on_ack(self, records: list[OutRecord], now: float) -> None:
        for record in records:
            if record.op in ("upsert", "delete"):
                self.latencies.append(now - record.observed)
        self.records += len(records)

    def reset(self) -> None:
        self.latencies = []
        self.records = 0

    def summary(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {"count": 0}

        def pct(p: float) -> float:
            return values[min(len(values) - 1, int(p * len(values)))] * 1000.0

        return {
            "count": len(values),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": values[-1] * 1000.0,
        }


def write(path: str, text: str) -> None:
    Path(path).write_text(text)


def counter(registry: CollectorRegistry, name: str) -> float:
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


async def main(args: argparse.Namespace) -> None:
    config = ProducerConfig(
        cluster=args.cluster,
        kafka=KafkaConnection(bootstrap_servers=args.bootstrap, client_id="kubedelta-bench"),
        api=ApiConnectionConfig(url=args.api_url),
        topic=TopicConfig(prefix=args.topic_prefix, partitions=args.partitions),
        sink=SinkConfig(compression=args.compression, linger_ms=args.linger_ms),
    )
    registry = CollectorRegistry()
    samples = Samples()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, samples.reset)
    running: list[ClusterProducer] = []
    profiler: Any = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
        profiler.start()

    async def report_ready() -> None:
        while not (running and running[0].ready()):  # noqa: ASYNC110 (a predicate, no event)
            await asyncio.sleep(0.02)
        p = running[0]
        if profiler is not None:
            profiler.stop()
            write(args.profile, profiler.output_text(unicode=True, show_all=False))
        line = {
            "event": "ready",
            "sync_s": p.ready_at - p.started_at,
            # CPU of the sync itself (first LIST -> ready), and of everything before
            # it (topic creation and read-back, which grow with the broker's topics).
            "sync_cpu_s": p.ready_cpu_s - p.started_cpu_s,
            "startup_cpu_s": p.started_cpu_s - cpu_at_start[0],
            "objects": len(p.ledger) if p.ledger is not None else 0,
            "kinds": len(p.watched_kinds()),
            "restored": p.restored_objects,
            "restore_records": p.restore_stats.records,
            "records_acked": samples.records,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        print(json.dumps(line), flush=True)
        freeze_heap()

    health = HealthServer(
        HealthServerConfig("127.0.0.1", 0),
        registry,
        ready=lambda: bool(running) and running[0].ready(),
    )
    await health.start()
    print(json.dumps({"event": "health", "port": health.port}), flush=True)
    watcher = asyncio.create_task(report_ready())
    began = time.monotonic()
    cpu_at_start = [0.0]

    def started(producers: list[ClusterProducer]) -> None:
        cpu_at_start[0] = time.process_time()
        running.extend(producers)

    await run_producers(
        [config], ProducerMetrics(registry), stop, on_ack=samples.on_ack, started=started
    )
    watcher.cancel()
    await health.stop()
    stats = {
        "latency": samples.summary(),
        "records_acked_window": samples.records,
        "records_acked_total": counter(registry, "kubedelta_producer_records_acked_total"),
        "record_bytes_acked": counter(registry, "kubedelta_producer_record_bytes_acked_total"),
        "batch_bytes_acked": counter(registry, "kubedelta_producer_batch_bytes_acked_total"),
        "upserts_sent": sum(
            s.value
            for f in registry.collect()
            for s in f.samples
            if s.name == "kubedelta_producer_records_sent_total" and s.labels.get("op") == "upsert"
        ),
        "deletes_sent": sum(
            s.value
            for f in registry.collect()
            for s in f.samples
            if s.name == "kubedelta_producer_records_sent_total" and s.labels.get("op") == "delete"
        ),
        "backpressure_waits": counter(registry, "kubedelta_producer_backpressure_waits_total"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": time.monotonic() - began,
    }
    write(args.stats, json.dumps(stats, indent=2))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--cluster", default="c1")
    parser.add_argument("--compression", default="zstd")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--linger-ms", type=float, default=5.0)
    parser.add_argument("--profile", default="")
    return parser.parse_args(argv)


if __name__ == "__main__":
    tune_gc()
    reuse_zstd_contexts()  # as `kubedelta produce` does
    uvloop.run(main(parse(sys.argv[1:])))
