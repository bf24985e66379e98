"""Shared wiring for the producer tests: a producer task against the simulator and
the real broker, and readers of the topic it writes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from deltas import decode
from plumbing.backoff import Backoff
from plumbing.kafka import MAX_RECORD_BYTES, KafkaConnection
from producers.agent import ClusterProducer, run_producers
from producers.config import (
    ApiConnectionConfig,
    FilterConfig,
    ProducerConfig,
    SinkConfig,
    TopicConfig,
    WatchConfig,
)
from producers.metrics import ProducerMetrics
from producers.strip import fingerprint, strip_object
from simulator import ClusterState

FAST_WATCH = WatchConfig(
    watch_timeout_min_s=20,
    watch_timeout_max_s=30,
    idle_timeout_s=40,
    backoff=Backoff(initial_s=0.1, cap_s=1.0),
    discovery_interval_s=0.5,
    request_timeout_s=20,
)


def producer_config(
    bootstrap: str,
    api_url: str,
    kinds: Iterable[str] = ("pods", "configmaps", "deployments.apps"),
    **overrides: Any,
) -> ProducerConfig:
    base = ProducerConfig(
        cluster="c1",
        kafka=KafkaConnection(bootstrap_servers=bootstrap),
        api=ApiConnectionConfig(url=api_url),
        topic=TopicConfig(prefix=f"test-producer-{uuid.uuid4().hex[:10]}", partitions=3),
        filters=FilterConfig(include_kinds=tuple(kinds)),
        watch=FAST_WATCH,
        sink=SinkConfig(linger_ms=2.0),
        digest_interval_s=3600.0,
    )
    return replace(base, **overrides)


@dataclass
class Running:
    config: ProducerConfig
    registry: CollectorRegistry
    stop: asyncio.Event
    task: asyncio.Task[list[ClusterProducer]]
    holder: list[ClusterProducer] = field(default_factory=list)

    @property
    def producer(self) -> ClusterProducer:
        return self.holder[0]

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, {"cluster": self.config.cluster, **labels})
        return value or 0.0

    def metric_sum(self, name: str, **labels: str) -> float:
        total = 0.0
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        await wait_until(
            lambda: bool(self.holder) and self.producer.ready(), timeout_s, "ready", self
        )

    async def wait_drained(self, timeout_s: float = 60.0) -> None:
        def drained() -> bool:
            sink = self.producer.sink
            return sink is not None and sink.pending == 0

        await wait_until(drained, timeout_s, "sink drained", self)

    async def close(self) -> list[ClusterProducer]:
        self.stop.set()
        return await asyncio.wait_for(self.task, 60)


async def start_producer(config: ProducerConfig) -> Running:
    registry = CollectorRegistry()
    stop = asyncio.Event()
    holder: list[ClusterProducer] = []
    task = asyncio.create_task(
        run_producers([config], ProducerMetrics(registry), stop, started=holder.extend)
    )
    return Running(config, registry, stop, task, holder)


async def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, running: Running | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if running is not None and running.task.done():
            running.task.result()  # raises the producer's error
            raise AssertionError(f"producer stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def read_records(
    bootstrap: str, topic: str, since: dict[int, int] | None = None
) -> list[Rec]:
    """Every record from ``since`` (default: the start) to the current end, per partition."""
    ends = await end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_RECORD_BYTES,
    )
    await consumer.start()
    out: list[Rec] = []
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        consumer.assign(tps)
        for tp in tps:
            start = (since or {}).get(tp.partition, 0)
            consumer.seek(tp, start)
        remaining = {tp for tp in tps if ends[tp.partition] > (since or {}).get(tp.partition, 0)}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batches.items():
                for m in messages:
                    if m.offset < ends[tp.partition]:
                        out.append(Rec(tp.partition, m.offset, m.key, m.value, tuple(m.headers)))
                if messages and messages[-1].offset + 1 >= ends[tp.partition]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


def latest_bodies(records: Iterable[Rec]) -> dict[bytes, bytes]:
    """key -> body of the live objects the records leave (last record per key wins)."""
    state: dict[bytes, bytes | None] = {}
    for rec in records:
        if rec.key.startswith(b"\xff"):
            continue
        if rec.value is None:
            state[rec.key] = None
            continue
        delta = decode(rec.value)
        state[rec.key] = delta.body if delta.op.name == "UPSERT" else None
    return {k: v for k, v in state.items() if v is not None}


def resource_ops(records: Iterable[Rec]) -> list[tuple[str, bytes]]:
    """(op, key) of the UPSERT/DELETE records (no markers, digests or tombstones)."""
    out = []
    for rec in records:
        if rec.value is None or rec.key.startswith(b"\xff"):
            continue
        out.append((decode(rec.value).op.name, rec.key))
    return out


KIND_GROUPS = {
    "pods": ("", "Pod"),
    "configmaps": ("", "ConfigMap"),
    "deployments.apps": ("apps", "Deployment"),
}


def simulator_fingerprints(
    cluster: ClusterState, kinds: Iterable[tuple[str, str]], config: ProducerConfig
) -> dict[bytes, bytes]:
    """key -> fingerprint of the simulator's current objects of ``kinds``, stripped as sent."""
    wanted = set(kinds)
    out = {}
    for obj in cluster.objects():
        api_version = str(obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        kind = str(obj.get("kind", ""))
        if (group, kind) not in wanted:
            continue
        meta = obj["metadata"]
        key = f"{group}\x00{kind}\x00{meta.get('namespace', '')}\x00{meta['name']}".encode()
        strip_object(obj, group=group, version=version, kind=kind, config=config.strip)
        out[key] = fingerprint(obj)
    return out


def topic_fingerprints(bodies: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {k: fingerprint(orjson.loads(v)) for k, v in bodies.items()}
