"""Phases shared by the scenarios that run the whole pipeline: monitoring samples, the
initial sync wait, probe changes with known send times, settling, and the object-by-object
comparison of the simulator's state with the query API's."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from bench.baselines import partitions_of
from bench.errors import BenchError
from bench.pipeline import Pipeline
from bench.queryclient import QueryClient
from bench.report import Progress
from bench.simclient import ObjectId, SimClient
from bench.stats import compare_states
from plumbing.kafka import track_topics


@dataclass(frozen=True, slots=True)
class Sample:
    """One monitoring sample."""

    t: float  #: seconds since the producers started
    visible: int  #: objects the query API counts over all clusters
    consumed: int  #: records the consumer committed (sum of partition next offsets)
    churn_changes: int  #: changes the simulator's churn made so far
    topic_bytes: int  #: bytes of the run's cluster topics in the broker


@dataclass
class Monitor:
    """Samples RSS, counts and bytes every interval while a phase runs."""

    pipeline: Pipeline
    query: QueryClient
    sim: SimClient
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    per_cluster: dict[str, int] = field(default_factory=dict)  #: cluster -> visible objects

    async def sample(self) -> Sample:
        self.pipeline.components.sample()
        self.pipeline.components.check_alive()
        document = await self.query.get_json("/api/v1/clusters")
        visible = 0
        for status in document.get("clusters", []):
            count = int(status.get("objectCount") or 0)
            self.per_cluster[status["cluster"]] = count
            visible += count
        consumed = self.pipeline.consumed_records()
        stats = await self.sim.stats()
        sample = Sample(
            time.monotonic() - self.started,
            visible,
            consumed,
            int(stats["churn"]["changes"]),
            self.pipeline.topic_log_bytes(),
        )
        self.samples.append(sample)
        return sample


@dataclass(frozen=True, slots=True)
class Probe:
    cluster: str
    name: str
    sent_at: float  #: wall time just before the create request
    #: wall time the simulator's answer arrived: the change happened in between, so
    #: ``answered_at - sent_at`` bounds how much of a latency is the simulator's own delay
    answered_at: float = 0.0


class BenchTimeoutError(BenchError):
    """A phase did not finish in time."""


async def end_offsets_total(
    bootstrap: str, topic_prefix: str, chunk: int = 200, timeout_ms: int = 20_000
) -> int | None:
    """Sum of the end offsets of the run's cluster topics, or None when the broker did
    not answer in time (one ListOffsets for thousands of partitions can time out on a
    loaded broker, so they are asked in chunks)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=timeout_ms
    )
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(topic_prefix + "."))
        tps = await partitions_of(consumer, topics)
        await track_topics(consumer, topics)
        total = 0
        for start in range(0, len(tps), chunk):
            ends = await consumer.end_offsets(tps[start : start + chunk])
            total += sum(ends.values())
        return total
    except KafkaError:
        return None
    finally:
        await consumer.stop()


async def initial_sync(
    monitor: Monitor, expected: dict[str, int], timeout_s: float, interval_s: float
) -> float:
    """Seconds from the monitor's start (the producers' start) until every cluster's view
    count equals the simulator's."""
    total = sum(expected.values())
    started = monitor.started
    with Progress(total, "initial sync") as progress:
        while True:
            sample = await monitor.sample()
            progress.advance(sample.visible - progress.done)
            if all(monitor.per_cluster.get(c, 0) == n for c, n in expected.items()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                missing = sum(
                    max(n - monitor.per_cluster.get(c, 0), 0) for c, n in expected.items()
                )
                raise BenchTimeoutError(
                    f"initial sync incomplete after {timeout_s:.0f} s: {missing} objects not visible"
                )
            await asyncio.sleep(interval_s)


async def send_probes(
    sim: SimClient,
    clusters: Sequence[str],
    count: int,
    duration_s: float,
    prefix: str,
    rng: random.Random,
    sent: list[Probe],
) -> None:
    """Create ``count`` probe ConfigMaps at evenly spaced, jittered instants."""
    if count <= 0:
        return
    spacing = duration_s / count
    began = time.monotonic()
    for i in range(count):
        at = began + spacing * (i + rng.random())
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        cluster = clusters[rng.randrange(len(clusters))]
        name = f"{prefix}{i}"
        with contextlib.suppress(BenchError):
            sent_at, _rv = await sim.create_config_map(
                cluster, "default", name, {"kubedelta.bench/probe": "true"}
            )
            sent.append(Probe(cluster, name, sent_at, time.time()))


async def verify(
    sim: SimClient, query: QueryClient, clusters: Sequence[str], attempts: int = 4
) -> tuple[int, list[str], int]:
    """(differences, examples, objects compared) between simulator and query API. Clusters
    that differ are checked again a few times (a last change may still be in flight)."""
    pending = list(clusters)
    differences = 0
    examples: list[str] = []
    compared = 0
    limit = asyncio.Semaphore(4)
    kinds = await sim.kinds(clusters[0])

    async def one(cluster: str) -> tuple[str, int, list[str], int]:
        async with limit:
            expected: dict[ObjectId, str] = await sim.cluster_versions(cluster, kinds)
            actual = await query.cluster_versions(cluster)
        diff = compare_states(expected, actual, max_examples=3)
        return cluster, diff.total, [f"{cluster}: {e}" for e in diff.examples], len(expected)

    for attempt in range(attempts):
        results = await asyncio.gather(*(one(c) for c in pending))
        if attempt == 0:
            compared = sum(r[3] for r in results)
        pending = [c for c, n, _e, _m in results if n > 0]
        differences = sum(n for _c, n, _e, _m in results)
        examples = [e for _c, _n, es, _m in results for e in es][:10]
        if not pending:
            break
        await asyncio.sleep(3.0)
    return differences, examples, compared
