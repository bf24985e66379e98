"""One cluster's producer: topic, read-back, discovery, a reflector per kind,
digests, readiness and a clean stop. ``run_producers`` runs one or many
(multiplexed mode for simulated clusters) over one shared Kafka producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from deltas import topic_for
from deltas.errors import KubedeltaError
from plumbing.errors import KafkaUnavailableError
from plumbing.gctune import raise_gc_thresholds
from plumbing.kafka import TopicSpec
from producers.apiclient import HttpPool, KubeApi
from producers.config import ProducerConfig
from producers.discovery import Discovery, discover
from producers.emitter import KindEmitter
from producers.kinds import GroupKind, KindRef, NamespaceFilter, select_kinds
from producers.ledger import Ledger
from producers.metrics import ProducerMetrics
from producers.records import OutRecord, RecordFactory, new_session_id
from producers.reflector import Reflector
from producers.restore import RestoreStats
from producers.shared import SharedKafka
from producers.sink import KafkaSink, KafkaTransport

log = logging.getLogger(__name__)

T = TypeVar("T")
AckHook = Callable[[list[OutRecord], float], None]


class ClusterProducer:
    def __init__(
        self,
        config: ProducerConfig,
        kafka: SharedKafka,
        metrics: ProducerMetrics,
        on_ack: AckHook | None = None,
        http: HttpPool | None = None,
        process_list_gate: asyncio.Semaphore | None = None,
        api: KubeApi | None = None,
    ) -> None:
        self.config = config
        self.cluster = config.cluster
        self.topic = topic_for(config.cluster, config.topic.prefix)
        self.session = new_session_id()
        self._kafka = kafka
        #: The Kafka side this cluster shares with the others of its identity.
        self.kafka_side = kafka
        self._http = http  #: shared by the clusters of a process (None: a pool of its own)
        self._metrics = metrics
        self._on_ack = on_ack
        self._stop = asyncio.Event()
        self._rng = random.Random()
        self._reflectors: dict[GroupKind, Reflector] = {}
        self._tasks: dict[GroupKind, asyncio.Task[None]] = {}
        self._list_gate = asyncio.Semaphore(config.watch.list_concurrency)
        self._process_list_gate = process_list_gate  #: shared by the clusters of a process
        self._namespaces = NamespaceFilter.of(config.filters)
        self._sync_target = 0  #: highest RELIST_END seq of the kinds' first lists
        self._discovered = False
        self._ready = False
        self.ledger: Ledger | None = None
        self.sink: KafkaSink | None = None
        self.factory: RecordFactory | None = None
        #: Given when the caller already connected it (run_producers checks every
        #: cluster's API configuration before Kafka); else connected by ``run``.
        self.api: KubeApi | None = api
        self.restore_stats = RestoreStats()
        self.restored_objects = 0  #: live objects the topic held at start
        self.started_at = 0.0  #: monotonic time the first LIST began
        self.ready_at = 0.0  #: monotonic time readiness was first reached
        #: time.process_time() at ``started_at`` and ``ready_at``: the process's CPU
        #: seconds for the initial sync (benchmarks: wall time on a shared machine
        #: is not the producer's alone).
        self.started_cpu_s = 0.0
        self.ready_cpu_s = 0.0

    # -- state -----------------------------------------------------------------------

    def ready(self) -> bool:
        """Initial sync of every kind done and acknowledged by Kafka (latched)."""
        if self._ready:
            return True
        if not self._discovered or self.sink is None:
            return False
        if any(r.synced_seq is None for r in self._reflectors.values()):
            return False
        if self.sink.acked_through() < self._sync_target:
            return False
        self._ready = True
        self.ready_at = time.monotonic()
        self.ready_cpu_s = time.process_time()
        return True

    def watched_kinds(self) -> list[KindRef]:
        return [r.ref for r in self._reflectors.values()]

    def request_stop(self) -> None:
        self._stop.set()

    # -- run -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``request_stop``; then stop the watches and flush to Kafka."""
        try:
            # Before the topic: an unusable API configuration (no ServiceAccount, bad
            # kubeconfig) is a human's problem, not retried.
            if self.api is None:
                self.api = await KubeApi.connect(self.config.api, self._http)
            partitions = await self._retry("preparing the topic", self._prepare_topic)
            if partitions is None:
                return
            ledger = self.ledger = Ledger(partitions)
            if self.config.restore_from_topic:
                stats = await self._retry(
                    "reading back the topic",
                    lambda: self._kafka.read_back(self.topic, ledger),
                )
                if stats is None:
                    return
                self.restore_stats = stats
                self.restored_objects = len(ledger)
                self._metrics.restored_objects.labels(self.cluster).set(len(ledger))
            self.factory = RecordFactory(self.cluster, partitions, self.session)
            self.sink = KafkaSink(
                self.cluster,
                self.topic,
                partitions,
                self._kafka.transport,
                self.config.sink,
                self._metrics,
                self._on_ack,
            )
            self.sink.start()
            self.started_at = time.monotonic()
            self.started_cpu_s = time.process_time()
            loops = [
                asyncio.create_task(self._discovery_loop(), name=f"discovery-{self.cluster}"),
                asyncio.create_task(self._digest_loop(), name=f"digests-{self.cluster}"),
            ]
            try:
                await self._stop.wait()
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for gk in list(self._tasks):
            await self._stop_reflector(gk)
        if self.sink is not None:
            if not await self.sink.drain(self.config.sink.flush_timeout_s):
                log.error(
                    "%s: %d records not acknowledged by Kafka at exit",
                    self.cluster,
                    self.sink.pending,
                )
            await self.sink.stop()
        if self.api is not None:
            await self.api.close()

    async def _retry(self, what: str, step: Callable[[], Awaitable[T]]) -> T | None:
        """Retry ``step`` with backoff until it succeeds or stop is requested."""
        backoff = self.config.sink.backoff
        attempt = 0
        while not self._stop.is_set():
            try:
                return await step()
            except KubedeltaError as exc:
                if not exc.retriable:
                    raise
                delay = backoff.delay(attempt, self._rng)
                attempt += 1
                log.warning(
                    "%s: %s failed (%s); retrying in %.1f s", self.cluster, what, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        return None

    async def _prepare_topic(self) -> int:
        t = self.config.topic
        return await self._kafka.prepare_topic(
            TopicSpec(self.topic, t.partitions, t.replication, t.configs())
        )

    # -- discovery -------------------------------------------------------------------

    async def _discovery_loop(self) -> None:
        assert self.api is not None
        attempt = 0
        backoff = self.config.watch.backoff
        while True:
            try:
                found = await discover(self.api, self.config.watch.request_timeout_s)
            except KubedeltaError as exc:
                delay = backoff.delay(attempt, self._rng)
                attempt += 1
                log.warning(
                    "%s: discovery failed (%s); retrying in %.1f s", self.cluster, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            await self.reconcile(found)
            await asyncio.sleep(self.config.watch.discovery_interval_s)

    async def reconcile(self, found: Discovery) -> None:
        """Start watches for new kinds, stop (and tombstone) removed ones."""
        wanted = {ref.group_kind: ref for ref in select_kinds(found.kinds, self.config.filters)}
        for gk in list(self._reflectors):
            ref = wanted.get(gk)
            if ref is None and gk[0] not in found.failed_groups:
                log.info("%s: kind %s/%s is gone; deleting its objects", self.cluster, *gk)
                await self._stop_reflector(gk, forget=True)
            elif ref is not None and ref != self._reflectors[gk].ref:
                await self._stop_reflector(gk)  # preferred version changed: restart
        assert self.ledger is not None
        for gk in self.ledger.kinds():
            if gk not in wanted and gk not in self._reflectors and gk[0] not in found.failed_groups:
                self._forget_unwatched(gk)
        for gk, ref in wanted.items():
            if gk not in self._reflectors:
                self._start_reflector(ref)
        self._metrics.kinds_watched.labels(self.cluster).set(len(self._reflectors))
        self._discovered = True

    def _emitter(self, ref: KindRef) -> KindEmitter:
        assert self.ledger is not None and self.factory is not None and self.sink is not None
        return KindEmitter(
            ref,
            self.ledger.kind(ref.group_kind),
            self.factory,
            self.sink,
            self.config.strip,
            self._namespaces,
            self._metrics.for_kind(self.cluster, ref.label),
        )

    def _start_reflector(self, ref: KindRef) -> None:
        assert self.api is not None and self.sink is not None
        reflector = Reflector(
            self.cluster,
            self.api,
            self._emitter(ref),
            self.sink,
            self.config.watch,
            self._metrics,
            self._list_gate,
            self.config.filters.label_selector,
            on_synced=self._synced,
            rng=self._rng,
            process_gate=self._process_list_gate,
        )
        self._reflectors[ref.group_kind] = reflector
        self._tasks[ref.group_kind] = asyncio.create_task(
            self._guard(reflector), name=f"reflector-{self.cluster}-{ref.label}"
        )

    async def _guard(self, reflector: Reflector) -> None:
        try:
            await reflector.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: reflector %s died", self.cluster, reflector.ref.label)
            raise

    def _synced(self, reflector: Reflector, end_seq: int) -> None:
        self._sync_target = max(self._sync_target, end_seq)
        if not self._ready and all(r.synced_seq is not None for r in self._reflectors.values()):
            self.send_digests()  # consumers can verify right after the initial sync

    async def _stop_reflector(self, gk: GroupKind, forget: bool = False) -> None:
        task = self._tasks.pop(gk, None)
        reflector = self._reflectors.pop(gk, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if forget and reflector is not None and self.ledger is not None:
            reflector.emitter.forget_all()
            self.ledger.drop_kind(gk)

    def _forget_unwatched(self, gk: GroupKind) -> None:
        """Objects the topic holds for a kind we no longer stream (removed CRD, or a
        kind now excluded by configuration): delete them so the topic matches."""
        assert self.ledger is not None
        ledger = self.ledger.kind(gk)
        version = ledger.version or "v1"
        ref = KindRef(gk[0], version, gk[1], gk[1].lower(), True)
        self._emitter(ref).forget_all()
        self.ledger.drop_kind(gk)

    # -- digests ---------------------------------------------------------------------

    def send_digests(self) -> None:
        """One DIGEST per partition describing every record handed over before it."""
        assert self.ledger is not None and self.factory is not None and self.sink is not None
        for partition, digest in enumerate(self.ledger.digests):
            self.sink.submit(self.factory.digest(partition, digest.count, digest.hash))

    async def _digest_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.digest_interval_s)
            if self._discovered:
                self.send_digests()


async def run_producers(
    configs: Sequence[ProducerConfig],
    metrics: ProducerMetrics,
    stop: asyncio.Event,
    on_ack: AckHook | None = None,
    started: Callable[[list[ClusterProducer]], None] | None = None,
) -> list[ClusterProducer]:
    """Run one producer per config until ``stop`` is set; then each stops its watches
    and flushes. Returns the producers (for their stats).

    Clusters with the same Kafka identity and sink settings share one Kafka producer
    and batch their start-up round trips (``SharedKafka``); clusters with different
    identities never share a connection (each writes with its own credentials). All
    share one HTTP session pool (``HttpPool``): connections are still per API server
    and TLS setup; and one bound on LISTs in progress (``process_list_concurrency``)."""
    if not configs:
        return []
    groups: dict[tuple[object, ...], list[ProducerConfig]] = {}
    for config in configs:
        groups.setdefault((config.kafka, config.sink), []).append(config)
    shared: list[SharedKafka] = []
    http = HttpPool()
    try:
        # A way to every API server first (local: files and environment only): a missing
        # ServiceAccount or a bad kubeconfig is reported at once, not after Kafka answers.
        apis = [await KubeApi.connect(config.api, http) for config in configs]
        for members in groups.values():
            transport = await _start_transport(members[0], stop)
            if transport is None:
                return []
            shared.append(SharedKafka(members[0].kafka, transport))
        by_key = dict(zip(groups, shared, strict=True))
        gate = asyncio.Semaphore(configs[0].watch.process_list_concurrency)
        producers = [
            ClusterProducer(c, by_key[(c.kafka, c.sink)], metrics, on_ack, http, gate, api)
            for c, api in zip(configs, apis, strict=True)
        ]
        if started is not None:
            started(producers)
        tasks = [asyncio.create_task(p.run(), name=f"producer-{p.cluster}") for p in producers]
        stopper = asyncio.create_task(stop.wait())
        try:
            # A producer only returns early by failing: then stop them all and re-raise.
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            for p in producers:
                p.request_stop()
            results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for side in shared:
            await side.close()
            await side.transport.stop()
        await http.close()
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
    return producers


async def _start_transport(config: ProducerConfig, stop: asyncio.Event) -> KafkaTransport | None:
    """The Kafka producer, retried until Kafka answers; None if stopped first."""
    transport = KafkaTransport(config.kafka, config.sink)
    backoff = config.sink.backoff
    attempt = 0
    while True:
        try:
            await transport.start()
            return transport
        except KafkaUnavailableError as exc:
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("Kafka not reachable (%s); retrying in %.1f s", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return None


def tune_gc() -> None:
    """Process-wide: the producer allocates millions of short-lived dicts (parsed JSON)
    and keeps a large, acyclic ledger. The default gen-0 threshold (700) makes the
    cyclic GC rescan it constantly (measured: orjson.loads of a LIST page 2-5x slower).
    Call from the composition root only; then ``freeze_heap`` once the ledger is
    restored."""
    raise_gc_thresholds()
