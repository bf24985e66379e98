"""Helpers shared by the consumer tests: small deltas, topics, producing, running a consumer.

Everything talks to the real broker; nothing here fakes Kafka.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumers import ConsumerConfig, ConsumerMode
from consumers.runner import Consumer
from consumers.source import list_partitions
from deltas import BodyEncoding, Delta, Op, ResourceKey, encode, partition_for, topic_for
from plumbing.kafka import KafkaConnection, TopicSpec, admin_client, ensure_topics
from store import StoreOptions, View, ViewReads

SESSION = "test-session"


#: Prefixes handed out since the last cleanup (tests/consumers/conftest.py deletes
#: their topics after each test).
_PREFIXES: list[str] = []


def unique_prefix() -> str:
    """A topic prefix no other test (or run) uses: the broker is shared."""
    prefix = f"kdtest-{uuid.uuid4().hex[:10]}.cluster"
    _PREFIXES.append(prefix)
    return prefix


def take_prefixes() -> list[str]:
    taken = list(_PREFIXES)
    _PREFIXES.clear()
    return taken


async def delete_topics_with(bootstrap: str, prefixes: Sequence[str]) -> None:
    """Delete the cluster and dead-letter topics of these prefixes (best effort)."""
    admin = admin_client(KafkaConnection(bootstrap))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def pod(cluster: str, index: int, version: int = 1, *, seq: int = 0, pad: int = 120) -> Delta:
    """A small Pod upsert (~200 B body by default): name/namespace from ``index``."""
    name = f"pod-{index}"
    namespace = f"ns-{index % 7}"
    body = orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{cluster}-{index}",
                "resourceVersion": str(version),
                "labels": {"app": f"app-{index % 5}"},
            },
            "status": {"phase": "Running", "pad": "x" * pad},
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return Delta(
        op=Op.UPSERT,
        cluster=cluster,
        key=ResourceKey("", "v1", "Pod", namespace, name),
        uid=f"uid-{cluster}-{index}",
        resource_version=str(version),
        seq=seq,
        session=SESSION,
        event_time_ms=1_700_000_000_000 + index,
        labels={"app": f"app-{index % 5}"},
        body_encoding=BodyEncoding.JSON,
        body=body,
    )


def delete(cluster: str, index: int, *, seq: int = 0) -> Delta:
    return Delta(
        op=Op.DELETE,
        cluster=cluster,
        key=ResourceKey("", "v1", "Pod", f"ns-{index % 7}", f"pod-{index}"),
        uid=f"uid-{cluster}-{index}",
        seq=seq,
        session=SESSION,
    )


@dataclass(frozen=True, slots=True)
class Out:
    """One record to produce: to ``topic`` (partition from the key unless given)."""

    topic: str
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    partition: int | None = None


class LogBuilder:
    """Builds the records a producer session would send: seq strictly increasing, keys
    routed to partitions by crc32 like the real producer."""

    def __init__(self, prefix: str, partitions: int) -> None:
        self.prefix = prefix
        self.partitions = partitions
        self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def upsert(
        self, cluster: str, index: int, version: int = 1, *, pad: int = 120, ts: int | None = None
    ) -> Out:
        return self.record(pod(cluster, index, version, seq=self._next(), pad=pad), ts)

    def delete(self, cluster: str, index: int, *, ts: int | None = None) -> Out:
        return self.record(delete(cluster, index, seq=self._next()), ts)

    def record(self, delta: Delta, ts: int | None = None) -> Out:
        key = delta.kafka_key()
        return Out(
            topic_for(delta.cluster, self.prefix),
            key,
            encode(delta),
            ts,
            partition_for(key, self.partitions),
        )


async def create_topics(bootstrap: str, topics: Iterable[str], partitions: int) -> None:
    await ensure_topics(
        KafkaConnection(bootstrap),
        [TopicSpec(t, partitions=partitions, configs={"cleanup.policy": "delete"}) for t in topics],
    )


async def produce(
    bootstrap: str, records: Sequence[Out], *, chunks: int = 1, pause_s: float = 0.0
) -> None:
    """Send in order with one idempotent producer (per-partition order is preserved);
    in ``chunks`` slices ``pause_s`` apart to make a log that grows while it is read."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type="lz4",
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    try:
        step = max(1, -(-len(records) // chunks))
        for start in range(0, len(records), step):
            pending = [
                await producer.send(
                    r.topic,
                    value=r.value,
                    key=r.key,
                    partition=r.partition,
                    timestamp_ms=r.timestamp_ms,
                )
                for r in records[start : start + step]
            ]
            await asyncio.gather(*pending)
            if pause_s:
                await asyncio.sleep(pause_s)
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        known = await list_partitions(consumer)
        tps = [TopicPartition(t, p) for t in topics for p in sorted(known[t])]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): o for tp, o in ends.items()}
    finally:
        await consumer.stop()


def config(
    data_dir: Path,
    bootstrap: str,
    prefix: str,
    *,
    mode: ConsumerMode = ConsumerMode.REPLICA,
    group: str | None = None,
    dead_letter_topic: str | None = None,
    batch_max_records: int = 5_000,
) -> ConsumerConfig:
    return ConsumerConfig(
        data_dir=data_dir,
        connection=KafkaConnection(bootstrap),
        mode=mode,
        group_id=group,
        topic_prefix=prefix,
        dead_letter_topic=dead_letter_topic or f"{prefix}-deadletter",
        batch_max_records=batch_max_records,
        getmany_timeout_ms=200,
        metadata_refresh_ms=500,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        lag_refresh_s=0.1,
    )


def store_options(prefix: str) -> StoreOptions:
    return StoreOptions(topic_prefix=prefix, history_retention_s=0)


class Running:
    """A Consumer running in a task of this event loop, with its own view."""

    def __init__(self, cfg: ConsumerConfig, **kwargs: object) -> None:
        self.view = View.open(cfg.data_dir, store_options(cfg.topic_prefix))
        self.consumer = Consumer(cfg, self.view, **kwargs)  # type: ignore[arg-type]
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.consumer.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
            self.task = None
        await self.consumer.close()
        self.view.close()

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if self.task is not None and self.task.done():
                self.task.result()  # surface the consumer's error
                raise AssertionError("consumer stopped")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout_s}s")
            await asyncio.sleep(0.05)

    async def until_offsets(
        self, targets: dict[tuple[str, int], int], timeout_s: float = 60.0
    ) -> None:
        def reached() -> bool:
            stored = self.view.resume_offsets()
            return all(stored.get(p, 0) >= o for p, o in targets.items())

        await self.until(reached, timeout_s)


ObjectId = tuple[str, str, str, str, str]


def all_objects(view: ViewReads) -> dict[ObjectId, bytes]:
    """Every object of the view: (cluster, group, kind, namespace, name) -> body."""
    found: dict[ObjectId, bytes] = {}
    cursor: bytes | None = None
    while True:
        page = view.list_objects(after=cursor, limit=10_000)
        for item in page.items:
            found[(item.cluster, item.group, item.kind, item.namespace, item.name)] = item.body
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor
