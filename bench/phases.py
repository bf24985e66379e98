"""Phases shared by the scenarios that run the whole pipeline: monitoring samples, the
initial sync wait, probe changes with known send times, settling, and the object-by-object
comparison of the simulator's state with the query API's.

The harness shares the cores with the pipeline it measures, so every look is cheap:
the sync is watched through the view's per-kind counters (one number), per-cluster
statuses are read only when the totals say the view might be done, the consumer's
progress comes from the offsets the query service already reports, end offsets are
listed once per settle, and verification LISTs whole kinds and decodes only identity
and resourceVersion.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from bench.baselines import partitions_of
from bench.errors import BenchError
from bench.pipeline import Pipeline
from bench.queryclient import QueryClient
from bench.report import Progress
from bench.simclient import KindRef, ObjectId, SimClient
from bench.stats import compare_states
from plumbing.kafka import track_topics


@dataclass(frozen=True, slots=True)
class Sample:
    """One monitoring sample."""

    t: float  #: seconds since the producers started
    visible: int  #: objects the query API counts over all clusters
    consumed: int  #: records the consumer committed (sum of partition next offsets)
    churn_changes: int  #: changes the simulator's churn made so far
    #: bytes of the run's cluster topics in the broker (as of the last sample that
    #: measured them: see :meth:`Monitor.sample`)
    topic_bytes: int


@dataclass
class Monitor:
    """Samples RSS/CPU of every process, counts and bytes while a phase runs."""

    pipeline: Pipeline
    query: QueryClient
    sim: SimClient
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    per_cluster: dict[str, int] = field(default_factory=dict)  #: cluster -> visible objects

    async def read_clusters(self) -> tuple[int, int]:
        """(objects visible, records consumed) over every cluster, from the query API's
        cluster statuses (which also fills :attr:`per_cluster`)."""
        visible = consumed = 0
        for status in await self.query.cluster_counts():
            self.per_cluster[status.cluster] = status.objects
            visible += status.objects
            consumed += status.next_offsets
        return visible, consumed

    def sample_usage(self) -> None:
        """RSS/CPU of every process (and that they still run): local, no request."""
        self.pipeline.components.sample()
        self.pipeline.components.check_alive()

    async def sample(self, measure_bytes: bool = True) -> Sample:
        """One sample. ``measure_bytes`` False skips the walk over the broker's data
        directory (thousands of partition folders) and repeats the last measured value:
        the periodic samples do without it, phase boundaries measure it."""
        self.pipeline.components.sample()
        self.pipeline.components.check_alive()
        visible, consumed = await self.read_clusters()
        stats = await self.sim.stats()
        if measure_bytes or not self.samples:
            topic_bytes = self.pipeline.topic_log_bytes()
        else:
            topic_bytes = self.samples[-1].topic_bytes
        sample = Sample(
            time.monotonic() - self.started,
            visible,
            consumed,
            int(stats["churn"]["changes"]),
            topic_bytes,
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


def sync_missing(expected: Mapping[str, int], visible: Mapping[str, int]) -> int:
    """Objects still missing from the view, cluster by cluster (surplus in one cluster
    does not make up for a shortfall in another)."""
    return sum(max(n - visible.get(c, 0), 0) for c, n in expected.items())


async def initial_sync(
    monitor: Monitor,
    expected: dict[str, int],
    timeout_s: float,
    interval_s: float,
    count_interval_s: float = 0.5,
) -> float:
    """Seconds from the monitor's start (the producers' start) until every cluster's view
    count equals the simulator's.

    Polled through the view's total count every ``count_interval_s`` or 1 % of the time
    so far, whichever is longer (one small answer from per-kind counters); a full sample (process usage, per-cluster statuses,
    simulator stats, topic bytes) is taken every ``interval_s`` for the plots, and the
    per-cluster check runs once the total says every object might be there."""
    total = sum(expected.values())
    started = monitor.started
    next_sample = 0.0
    with Progress(total, "initial sync") as progress:
        while True:
            now = time.monotonic()
            if now >= next_sample:
                visible = (await monitor.sample(measure_bytes=False)).visible
                next_sample = now + interval_s
            else:
                monitor.sample_usage()  # peaks between the full samples
                visible = await monitor.query.object_count()
            progress.advance(min(visible, total) - progress.done)
            if visible >= total:
                await monitor.read_clusters()
                if sync_missing(expected, monitor.per_cluster) == 0:
                    done = time.monotonic() - started
                    await monitor.sample()  # the last point of the sync series
                    return done
            elapsed = time.monotonic() - started
            if elapsed > timeout_s:
                await monitor.read_clusters()
                missing = sync_missing(expected, monitor.per_cluster)
                raise BenchTimeoutError(
                    f"initial sync incomplete after {timeout_s:.0f} s: {missing} objects not visible"
                )
            # 1 % of the time so far bounds the error of the reported time; sparser looks
            # late in a long sync leave the cores to the pipeline.
            await asyncio.sleep(max(count_interval_s, 0.01 * elapsed))


class ProbeTarget(Protocol):
    """Where probes are created (the simulator's API: :class:`SimClient`)."""

    async def create_config_map(
        self, cluster: str, namespace: str, name: str, labels: Mapping[str, str]
    ) -> tuple[float, str]: ...


async def send_probes(
    sim: ProbeTarget,
    clusters: Sequence[str],
    count: int,
    duration_s: float,
    prefix: str,
    rng: random.Random,
    sent: list[Probe],
) -> None:
    """Create ``count`` probe ConfigMaps at evenly spaced, jittered instants.

    An open loop: each probe is sent at its own instant whether or not the earlier ones
    were answered. Sending the next only after the last answer (as until session 13)
    thinned the probes out exactly when the simulator was slow: at ~1.5 s per create
    the 300 probes of a 30 s churn took over 5 minutes (the churn phase with them), and
    the slow periods got fewer samples than their share (coordinated omission). Returns
    when every probe was answered; a probe whose create failed is left out of ``sent``."""
    if count <= 0:
        return
    spacing = duration_s / count
    began = time.monotonic()
    pending: list[asyncio.Task[None]] = []

    async def create(cluster: str, name: str) -> None:
        with contextlib.suppress(BenchError):
            sent_at, _rv = await sim.create_config_map(
                cluster, "default", name, {"kubedelta.bench/probe": "true"}
            )
            sent.append(Probe(cluster, name, sent_at, time.time()))

    try:
        for i in range(count):
            at = began + spacing * (i + rng.random())
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            cluster = clusters[rng.randrange(len(clusters))]
            pending.append(asyncio.create_task(create(cluster, f"{prefix}{i}")))
        await asyncio.gather(*pending)
    finally:
        for task in pending:
            task.cancel()


@dataclass(frozen=True, slots=True)
class Settled:
    """How the settle phase ended."""

    seconds: float  #: from its start until the view had every record (or the timeout)
    probes_seen: bool  #: every probe arrived on the change feed
    caught_up: bool  #: the consumer committed every record produced before the snapshot
    target_records: int | None  #: the end offsets it waited for (None: broker did not say)


async def settle(
    monitor: Monitor,
    probes_seen: Callable[[], bool],
    timeout_s: float,
    poll_s: float = 0.5,
) -> Settled:
    """After churn: wait until every probe was seen on the feed, take the topics' end
    offsets once (the records produced so far, churn included) and wait until the
    consumer has committed that many. Later records (digests) do not move the target,
    so the wait ends even while producers keep writing."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if probes_seen() or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(poll_s, 0.5))  # only a look at the feed watcher's memory
    seen = probes_seen()
    target = await end_offsets_total(monitor.pipeline.bootstrap, monitor.pipeline.topic_prefix)
    caught_up = False
    previous = -1
    while True:
        monitor.pipeline.components.check_alive()
        _visible, consumed = await monitor.read_clusters()
        # Without end offsets: caught up once a look finds nothing new consumed.
        caught_up = consumed >= target if target is not None else consumed == previous
        if caught_up or time.monotonic() >= deadline:
            break
        previous = consumed
        await asyncio.sleep(poll_s if target is not None else 2.0)
    return Settled(time.monotonic() - started, seen, caught_up, target)


class VersionSource(Protocol):
    """Where verification reads the view: the query API (:class:`QueryClient`)."""

    async def cluster_versions(self, cluster: str) -> dict[ObjectId, str]: ...


@dataclass(frozen=True, slots=True)
class Verification:
    """The view compared with the simulator, object by object."""

    differences: int  #: missing + extra + stale objects after the last attempt
    examples: list[str]  #: a few of them, for the log
    compared: int  #: objects the simulator had, over every cluster (first attempt)
    attempts: int  #: passes made (clusters that differ are compared again)


async def verify(
    sim: SimClient,
    query: VersionSource,
    clusters: Sequence[str],
    attempts: int = 4,
    concurrency: int = 4,
    retry_delay_s: float = 3.0,
) -> Verification:
    """Every object of every cluster: identity -> resourceVersion as the simulator LISTs
    it (one unpaginated LIST per kind) and as the query API LISTs it (``/api/v1/objects``,
    pages of 10,000), compared per cluster as soon as both arrive. ``concurrency``
    clusters are in flight, so simulator, query service and this process overlap.
    Clusters that differ are checked again a few times (a last change may still be in
    flight)."""
    kinds = await sim.kinds(clusters[0])
    limit = asyncio.Semaphore(concurrency)
    pending = list(clusters)
    differences = 0
    examples: list[str] = []
    compared = 0
    attempt = 0
    while pending and attempt < attempts:
        if attempt > 0:
            await asyncio.sleep(retry_delay_s)
        attempt += 1
        results = await asyncio.gather(
            *(_compare_cluster(sim, query, c, kinds, limit) for c in pending)
        )
        if attempt == 1:
            compared = sum(r.expected for r in results)
        pending = [r.cluster for r in results if r.differences]
        differences = sum(r.differences for r in results)
        examples = [e for r in results for e in r.examples][:10]
    return Verification(differences, examples, compared, attempt)


@dataclass(frozen=True, slots=True)
class _ClusterResult:
    cluster: str
    expected: int  #: objects in the simulator
    differences: int
    examples: list[str]


async def _compare_cluster(
    sim: SimClient,
    query: VersionSource,
    cluster: str,
    kinds: list[KindRef],
    limit: asyncio.Semaphore,
) -> _ClusterResult:
    async with limit:
        expected: dict[ObjectId, str]
        actual: dict[ObjectId, str]
        expected, actual = await asyncio.gather(
            sim.cluster_versions(cluster, kinds), query.cluster_versions(cluster)
        )
    if expected == actual:  # the usual case, decided by one C-level dict comparison
        return _ClusterResult(cluster, len(expected), 0, [])
    diff = compare_states(expected, actual, max_examples=3)
    return _ClusterResult(
        cluster, len(expected), diff.total, [f"{cluster}: {e}" for e in diff.examples]
    )
