"""`kubedelta bench consume`: how fast the consumer materializes cluster topics, against
a bare aiokafka loop reading the same topics on the same broker in the same run.

1. **produce**: N realistic ~2 KB Pod deltas (``bench.codec.make_pod``: random uids,
   hashes, IPs, so compression is honest) over many cluster topics, keys routed by
   crc32 like the agent does, in compressed batches (lz4 by default).
2. **baseline**: a child process runs a bare ``AIOKafkaConsumer`` (same fetch
   settings as the consumer) over every partition and only counts records and value
   bytes: the most any aiokafka consumer on this machine can do.
3. **consume**: a child process runs the real ``consumers.Consumer`` (fetch -> plan ->
   dead letters -> commit) into a fresh store until every record is in the view.
   Then it flushes and fully compacts the store and reports its size.

Rates are records over the wall time from the first fetch to the last record, so
connection setup is excluded from both sides alike. RSS is the child's peak
(``ru_maxrss``), i.e. everything the consumer process ever held.
The topics are deleted afterwards unless ``--keep-topics``; ``--topic-prefix`` of a
kept run reuses its topics (skips producing).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.codec import make_pod, pod_delta
from bench.kafkadisk import topic_bytes
from bench.procs import thread_cpu_by_name
from bench.report import Machine, Progress, Report, emit, json_option
from consumers import Consumer, ConsumerConfig, ConsumerMode, tune_gc
from consumers.config import DEFAULT_BATCH_MAX_RECORDS
from consumers.source import consumer_kwargs, list_partitions
from deltas import BodyEncoding, encode, partition_for, topic_for
from plumbing import broker
from plumbing.kafka import KafkaConnection, TopicSpec, admin_client, end_offsets, ensure_topics
from plumbing.zstd import reuse_zstd_contexts
from store import StoreOptions, View


@dataclass(frozen=True, slots=True)
class ConsumeBenchConfig:
    resources: int = 100_000  #: Pod deltas produced (one per Pod: every record creates an object)
    clusters: int = 64  #: cluster topics the Pods are spread over (round robin)
    partitions: int = 2  #: partitions per cluster topic
    compression: str = "lz4"  #: producer batch compression: lz4, zstd, gzip or none
    batch_max_records: int = DEFAULT_BATCH_MAX_RECORDS  #: the consumer's records per pass
    history_retention_s: int = 3600  #: the store's default (creates write no history anyway)
    #: Also run this many shard-mode consumers (one consumer group, a store each) side by
    #: side and report their combined rate; 1 = only the single replica-mode consumer.
    shards: int = 1
    seed: int = 1  #: reproducible Pods
    topic_prefix: str = ""  #: reuse the topics of a kept run; "" = fresh topics
    keep_topics: bool = False  #: leave the topics on the broker (to rerun with --topic-prefix)
    work_dir: Path | None = None  #: where the store goes; a temp dir (deleted after) if None


# -- produce -------------------------------------------------------------------------------


def cluster_name(i: int) -> str:
    return f"bench-{i:03d}"


async def produce_pods(config: ConsumeBenchConfig, bootstrap: str, prefix: str) -> None:
    conn = KafkaConnection(bootstrap)
    topics = [topic_for(cluster_name(c), prefix) for c in range(config.clusters)]
    await ensure_topics(
        conn,
        [
            TopicSpec(t, partitions=config.partitions, configs={"cleanup.policy": "compact"})
            for t in topics
        ],
    )
    producer = AIOKafkaProducer(
        **conn.client_kwargs(),
        acks=1,  # a benchmark input, not the agent: durability is not what is measured
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        compression_type=None if config.compression == "none" else config.compression,
    )
    await producer.start()
    # Fresh topics answer NotLeaderForPartition for a moment; aiokafka retries and warns
    # once per partition. The retries are harmless, the warnings would bury the report.
    sender_log = logging.getLogger("aiokafka.producer.sender")
    level = sender_log.level
    sender_log.setLevel(logging.ERROR)
    rng = random.Random(config.seed)
    now_ms = int(time.time() * 1000)
    try:
        with Progress(config.resources, "produce") as bar:
            pending: list[asyncio.Future[Any]] = []
            for i in range(config.resources):
                c = i % config.clusters
                delta = replace(
                    pod_delta(make_pod(rng, i), BodyEncoding.JSON, i + 1),
                    cluster=cluster_name(c),
                    event_time_ms=now_ms + i,
                )
                key = delta.kafka_key()
                pending.append(
                    await producer.send(
                        topics[c],
                        value=encode(delta),
                        key=key,
                        partition=partition_for(key, config.partitions),
                    )
                )
                if len(pending) >= 5_000:
                    await asyncio.gather(*pending)
                    bar.advance(len(pending))
                    pending.clear()
            await asyncio.gather(*pending)
            bar.advance(len(pending))
    finally:
        await producer.stop()
        sender_log.setLevel(level)


async def count_records(bootstrap: str, prefix: str) -> dict[tuple[str, int], int]:
    """End offset of every partition of the run's topics (the records to consume)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        known = await list_partitions(consumer)
        tps = [
            TopicPartition(t, p)
            for t, parts in known.items()
            if t.startswith(prefix + ".")
            for p in parts
        ]
        ends = await end_offsets(consumer, tps)
        return {(tp.topic, tp.partition): o for tp, o in ends.items()}
    finally:
        await consumer.stop()


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = admin_client(KafkaConnection(bootstrap))
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


# -- the two children ----------------------------------------------------------------------


def child_config(args: dict[str, Any]) -> ConsumerConfig:
    group = args.get("group")
    return ConsumerConfig(
        data_dir=Path(args["store"]),
        mode=ConsumerMode.SHARD if group else ConsumerMode.REPLICA,
        group_id=group,
        connection=KafkaConnection(args["bootstrap"]),
        topic_prefix=args["prefix"],
        dead_letter_topic=args["prefix"] + "-deadletter",
        batch_max_records=args["batch_max_records"],
        **args.get("overrides", {}),
    )


async def baseline_child(args: dict[str, Any]) -> dict[str, float]:
    """A bare aiokafka loop: fetch and count, nothing else."""
    config = child_config(args)
    total = args["records"]
    consumer = AIOKafkaConsumer(**consumer_kwargs(config))
    await consumer.start()
    try:
        known = await list_partitions(consumer)
        tps = [
            TopicPartition(t, p)
            for t, parts in known.items()
            if t.startswith(args["prefix"] + ".")
            for p in parts
        ]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        seen = 0
        value_bytes = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        while seen < total:
            batches = await consumer.getmany(
                timeout_ms=config.getmany_timeout_ms, max_records=config.batch_max_records
            )
            for messages in batches.values():
                seen += len(messages)
                for m in messages:
                    value_bytes += len(m.value)
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
    finally:
        await consumer.stop()
    return {"records": seen, "seconds": seconds, "cpu_s": cpu_s, "value_bytes": value_bytes}


def _pool_cpu(now: dict[str, float], before: dict[str, float], name: str) -> float:
    """CPU seconds RocksDB's ``name`` thread pool spent between the two samples."""
    return now.get(name, 0.0) - before.get(name, 0.0)


async def consume_child(args: dict[str, Any]) -> dict[str, float]:
    """The real consumer into a fresh store, pass after pass until all records are in."""
    config = child_config(args)
    total = args["records"]
    options = StoreOptions(
        topic_prefix=args["prefix"], history_retention_s=args["history_retention_s"]
    )
    view = View.open(config.data_dir, options)
    try:
        consumer = Consumer(config, view)
        await consumer.start()
        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            thread_started = time.thread_time()
            threads_started = thread_cpu_by_name()
            while consumer.totals.records < total:
                await consumer.run_pass()
            seconds = time.perf_counter() - started
            cpu_s = time.process_time() - cpu_started
            thread_cpu_s = time.thread_time() - thread_started
            threads = thread_cpu_by_name()
            l0_files = sum(view.l0_files().values())
        finally:
            await consumer.close()
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        objects = view.count()
        # What the catch-up left to do: flush, then compact everything (the compactions
        # it deferred and a full rewrite into the bottom level), timed apart.
        compact_started, compact_cpu_started = time.perf_counter(), time.process_time()
        view.flush()
        flushed = view.disk_usage()
        view.compact()
        compact_s = time.perf_counter() - compact_started
        compact_cpu_s = time.process_time() - compact_cpu_started
        compacted = view.disk_usage()
        return {
            "records": consumer.totals.records,
            "applied": consumer.totals.applied,
            "rejected": consumer.totals.rejected,
            "seconds": seconds,
            "cpu_s": cpu_s,
            "main_thread_cpu_s": thread_cpu_s,
            "fetch_cpu_s": consumer.applier.cpu.fetch_s,
            "plan_cpu_s": consumer.applier.cpu.plan_s,
            "commit_cpu_s": consumer.applier.cpu.commit_s,
            "flush_cpu_s": _pool_cpu(threads, threads_started, "rocksdb:high"),
            "compaction_cpu_s": _pool_cpu(threads, threads_started, "rocksdb:low"),
            "rss_peak_bytes": rss_peak,
            "objects": objects,
            "l0_files": l0_files,
            "compact_s": compact_s,
            "compact_cpu_s": compact_cpu_s,
            "store_flushed_bytes": flushed,
            "store_bytes": compacted,
        }
    finally:
        view.close()


async def shard_child(args: dict[str, Any]) -> dict[str, float]:
    """One member of a consumer group: wait until the group has split the partitions
    (so nothing is consumed twice by a member that then hands it over), then consume
    the member's partitions to the end offsets seen then."""
    # Readiness is re-checked every lag_refresh_s: often, so the clock stops on time.
    config = replace(child_config(args), lag_refresh_s=0.05)
    fair_share = -(-args["partitions"] // args["shards"])
    options = StoreOptions(
        topic_prefix=args["prefix"], history_retention_s=args["history_retention_s"]
    )
    view = View.open(config.data_dir, options)
    try:
        consumer = Consumer(config, view)
        await consumer.start()
        try:
            stable_since, last = time.monotonic(), frozenset[Any]()
            while True:
                owned = consumer.source.assigned
                if owned != last:
                    stable_since, last = time.monotonic(), owned
                if 0 < len(owned) <= fair_share and time.monotonic() - stable_since > 1.0:
                    break
                await asyncio.sleep(0.05)
            started, cpu_started = time.time(), time.process_time()
            while not consumer.ready:
                await consumer.run_pass()
            ended, cpu_s = time.time(), time.process_time() - cpu_started
        finally:
            await consumer.close()
        return {
            "records": consumer.totals.records,
            "partitions": len(last),
            "started": started,
            "ended": ended,
            "cpu_s": cpu_s,
            "rss_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
    finally:
        view.close()


def child_main() -> None:
    """Entry point of the child processes: ``<mode> <json args>`` in, JSON result out."""
    mode, raw = sys.argv[1], sys.argv[2]
    args = json.loads(raw)
    tune_gc()
    if mode != "baseline":  # the bare aiokafka loop keeps aiokafka's own codec
        reuse_zstd_contexts()  # as `kubedelta consume` does
    if mode == "baseline":
        result = asyncio.run(baseline_child(args))
    elif mode == "consume":
        result = asyncio.run(consume_child(args))
    elif mode == "shard":
        result = asyncio.run(shard_child(args))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


def run_child(mode: str, args: dict[str, Any]) -> dict[str, float]:
    return run_children(mode, [args])[0]


def run_children(mode: str, many: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Run one child per args side by side; their JSON results, in order."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bench.consume import child_main; child_main()",
                mode,
                json.dumps(args),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in many
    ]
    results = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise click.ClickException(f"{mode} child failed:\n{err[-4000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# -- the run -------------------------------------------------------------------------------


def ensure_broker() -> tuple[str, broker.LocalBrokerConfig]:
    """The local broker, started if none runs."""
    config = broker.LocalBrokerConfig.from_env(os.environ)
    state = broker.status(config)
    if state.running:
        return state.bootstrap, config
    return broker.start(config), config


def run(config: ConsumeBenchConfig) -> Report:
    bootstrap, broker_config = ensure_broker()
    prefix = config.topic_prefix or f"kdconsume-{uuid.uuid4().hex[:10]}.cluster"
    if not config.topic_prefix:
        asyncio.run(produce_pods(config, bootstrap, prefix))
    ends = asyncio.run(count_records(bootstrap, prefix))
    records = sum(ends.values())
    if records == 0:
        raise click.ClickException(f"no records in topics {prefix}.*")
    on_disk = topic_bytes(broker_config.data, prefix + ".")
    tmp = Path(tempfile.mkdtemp(prefix="kubedelta-consume-bench-", dir=config.work_dir))
    args = {
        "bootstrap": bootstrap,
        "prefix": prefix,
        "records": records,
        "store": str(tmp / "store"),
        "batch_max_records": config.batch_max_records,
        "history_retention_s": config.history_retention_s,
    }
    try:
        click.echo(f"baseline: bare aiokafka over {len(ends)} partitions ...", err=True)
        baseline = run_child("baseline", args)
        click.echo("consume: the consumer into a fresh store ...", err=True)
        ours = run_child("consume", args)
        shards: list[dict[str, float]] = []
        if config.shards > 1:
            click.echo(f"shards: {config.shards} shard-mode consumers ...", err=True)
            group = prefix + "-bench-group"
            shards = run_children(
                "shard",
                [
                    {
                        **args,
                        "store": str(tmp / f"shard-{i}"),
                        "group": group,
                        "shards": config.shards,
                        "partitions": len(ends),
                    }
                    for i in range(config.shards)
                ],
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not config.keep_topics:
            topics = sorted({t for t, _ in ends} | {prefix + "-deadletter"})
            asyncio.run(delete_topics(bootstrap, topics))
    baseline_rate = baseline["records"] / baseline["seconds"]
    rate = ours["records"] / ours["seconds"]
    metrics: dict[str, int | float] = {
        "records": records,
        "deltas_per_s": rate,
        "aiokafka_baseline_per_s": baseline_rate,
        "ratio_to_baseline": rate / baseline_rate,
        "consume_seconds": ours["seconds"],
        "baseline_seconds": baseline["seconds"],
        # CPU per record of each child (all its threads, RocksDB's included): the rate a
        # dedicated core would give, whatever else runs on the machine.
        "consume_cpu_us_per_record": ours["cpu_s"] / ours["records"] * 1e6,
        "baseline_cpu_us_per_record": baseline["cpu_s"] / baseline["records"] * 1e6,
        # The consumer's main thread (the one Python core), by stage; the rest of
        # consume_cpu is RocksDB's flush/compaction threads.
        "fetch_cpu_us_per_record": ours["fetch_cpu_s"] / ours["records"] * 1e6,
        "plan_cpu_us_per_record": ours["plan_cpu_s"] / ours["records"] * 1e6,
        "commit_cpu_us_per_record": ours["commit_cpu_s"] / ours["records"] * 1e6,
        "main_thread_cpu_us_per_record": ours["main_thread_cpu_s"] / ours["records"] * 1e6,
        # RocksDB's background pools (flushes: rocksdb:high, compactions: rocksdb:low).
        "flush_cpu_us_per_record": ours["flush_cpu_s"] / ours["records"] * 1e6,
        "compaction_cpu_us_per_record": ours["compaction_cpu_s"] / ours["records"] * 1e6,
        # After the catch-up (untimed above): L0 files it left, then a flush and a full
        # compaction, and the CPU of both phases together (the work is not gone when
        # bulk mode defers compactions, StoreOptions.bulk_l0_compaction_trigger).
        "l0_files_at_catch_up": int(ours["l0_files"]),
        "compact_after_s": ours["compact_s"],
        "compact_after_cpu_us_per_record": ours["compact_cpu_s"] / ours["records"] * 1e6,
        "total_cpu_us_per_record": (ours["cpu_s"] + ours["compact_cpu_s"]) / ours["records"] * 1e6,
        "rss_mb": ours["rss_peak_bytes"] / 2**20,
        "store_bytes": int(ours["store_bytes"]),
        "store_flushed_bytes": int(ours["store_flushed_bytes"]),
        "topic_bytes": on_disk.log_bytes,
        "store_to_topic_ratio": ours["store_bytes"] / max(on_disk.log_bytes, 1),
        "value_bytes_per_record": baseline["value_bytes"] / max(baseline["records"], 1),
        "objects": int(ours["objects"]),
        "rejected": int(ours["rejected"]),
        "load_avg_1m": os.getloadavg()[0],
    }
    if shards:
        span = max(r["ended"] for r in shards) - min(r["started"] for r in shards)
        shard_records = sum(r["records"] for r in shards)
        metrics["shards"] = len(shards)
        metrics["shard_records"] = int(shard_records)
        metrics["shard_deltas_per_s"] = shard_records / span
        metrics["shard_speedup"] = metrics["shard_deltas_per_s"] / rate
        metrics["shard_rss_mb_max"] = max(r["rss_peak_bytes"] for r in shards) / 2**20
    params: dict[str, str | int | float | bool | None] = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
    }
    params["topic_prefix"] = prefix
    params["resources"] = records  # what the topics hold (a reused prefix ignores --resources)
    return Report("consume", params, metrics, Machine.current())


_DEFAULTS = ConsumeBenchConfig()


@click.command("consume")
@click.option(
    "--resources",
    type=click.IntRange(min=1),
    default=_DEFAULTS.resources,
    show_default=True,
    help="Pod deltas to produce and consume.",
)
@click.option(
    "--clusters",
    type=click.IntRange(min=1),
    default=_DEFAULTS.clusters,
    show_default=True,
    help="Cluster topics.",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=_DEFAULTS.partitions,
    show_default=True,
    help="Partitions per cluster topic.",
)
@click.option(
    "--compression",
    type=click.Choice(["lz4", "zstd", "gzip", "none"]),
    default=_DEFAULTS.compression,
    show_default=True,
)
@click.option(
    "--batch-max-records",
    type=click.IntRange(min=1),
    default=_DEFAULTS.batch_max_records,
    show_default=True,
)
@click.option(
    "--history-retention-s",
    type=click.IntRange(min=0),
    default=_DEFAULTS.history_retention_s,
    show_default=True,
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=_DEFAULTS.shards,
    show_default=True,
    help="Also run N shard-mode consumers (one group) side by side.",
)
@click.option("--topic-prefix", default="", help="Reuse the topics of a --keep-topics run.")
@click.option("--keep-topics", is_flag=True, default=False, help="Do not delete the topics.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Parent folder of the temporary store.",
)
@json_option
def command(json_path: Path | None, work_dir: Path | None, **options: Any) -> None:
    """Consumer throughput vs a bare aiokafka loop, RSS, store and topic bytes."""
    gc.collect()
    report = run(ConsumeBenchConfig(work_dir=work_dir, **options))
    emit(report, json_path)
