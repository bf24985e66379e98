"""The whole system, brought up from its CLIs as separate processes for one benchmark run:
simulator -> producers (multiplexed: several clusters per process) -> local Kafka
broker -> consumer -> RocksDB store -> query service.

Each scenario run gets its own topic prefix (a fresh set of cluster topics on the
shared broker), its own store and its own ports, so runs never see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from bench.errors import BenchError
from bench.kafkadisk import topic_bytes
from bench.procs import MIB, Component, Components, dir_bytes
from bench.queryclient import QueryClient
from deltas.errors import KubedeltaError
from deltas.keys import topic_for
from plumbing import broker
from plumbing.kafka import KafkaConnection, TopicSpec, ensure_topics
from producers.config import TopicConfig


class PipelineError(BenchError):
    """A component of the pipeline did not come up or did not keep up."""


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Sizes and knobs of one benchmark deployment."""

    clusters: int  #: simulated clusters (one topic each)
    objects: int  #: objects per cluster, all kinds together
    work_dir: Path  #: store, logs, token file of this run
    #: Producer processes; clusters are dealt round-robin between them. A few are
    #: enough: each multiplexes hundreds of clusters on one event loop.
    producer_processes: int = 1
    partitions: int = 3  #: partitions per cluster topic
    seed: int = 1  #: simulator generator seed
    cluster_prefix: str = "c"  #: clusters are <prefix>1 .. <prefix>N
    #: Topic prefix; "" picks a fresh one per run (``kdloadbench-<random>``).
    topic_prefix: str = ""
    #: Seconds between watch BOOKMARKs from the simulator. The real API server sends one
    #: about every minute; every second (the simulator's default) would be 14 events/s
    #: per cluster of pure overhead at 1,000 clusters.
    bookmark_interval_s: float = 60.0
    sim_history: int = 5_000  #: watch events kept per cluster for watch resumption
    linger_ms: float | None = None  #: producer batch linger; None = the producer default
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  #: query API bearer token

    def cluster_names(self) -> list[str]:
        return [f"{self.cluster_prefix}{i}" for i in range(1, self.clusters + 1)]

    def producer_groups(self) -> list[list[str]]:
        """Clusters per producer process (round-robin, no empty groups)."""
        names = self.cluster_names()
        count = max(1, min(self.producer_processes, len(names)))
        return [names[i::count] for i in range(count)]


def default_producer_processes(clusters: int) -> int:
    """One process per 250 clusters: few enough for two cores, small enough event loops."""
    return max(1, math.ceil(clusters / 250))


def ensure_broker() -> tuple[str, broker.LocalBrokerConfig]:
    """The local broker (started if none runs): bootstrap address and its config."""
    config = broker.LocalBrokerConfig.from_env(os.environ)
    state = broker.status(config)
    if state.running:
        return state.bootstrap, config
    return broker.start(config), config


def broker_pid(config: broker.LocalBrokerConfig) -> int | None:
    return broker.status(config).pid


class Pipeline:
    """Starts and stops the components of one run; knows where their data lives."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.topic_prefix = config.topic_prefix or f"kdloadbench-{uuid.uuid4().hex[:10]}"
        self.bootstrap, self.broker_config = ensure_broker()
        self.components = Components(config.work_dir / "logs")
        pid = broker_pid(self.broker_config)
        if pid is not None:
            self.components.watch_external("broker", pid)
        self.store_dir = config.work_dir / "store"
        self.sim_url = ""
        self.query_url = ""
        self.simulator: Component | None = None
        self.consumer: Component | None = None
        self.query: Component | None = None
        self.producers: list[Component] = []

    # -- start -------------------------------------------------------------------------------
    async def start_simulator(self, timeout_s: float) -> str:
        cfg = self.config
        self.simulator = self.components.start(
            "simulator",
            [
                "simulate",
                "--clusters",
                str(cfg.clusters),
                "--objects",
                str(cfg.objects),
                "--port",
                "0",
                "--seed",
                str(cfg.seed),
                "--prefix",
                cfg.cluster_prefix,
                "--bookmark-interval",
                str(cfg.bookmark_interval_s),
                "--history",
                str(cfg.sim_history),
            ],
        )
        match = await self.simulator.wait_for_line(r"base URL: (http://\S+)", timeout_s)
        self.sim_url = match.group(1)
        return self.sim_url

    async def start_consumer(self, timeout_s: float = 60.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.consumer = self.components.start(
            "consumer",
            [
                "consume",
                "--bootstrap",
                self.bootstrap,
                "--topic-prefix",
                self.topic_prefix,
                "--data-dir",
                str(self.store_dir),
                # Not <prefix>.<name>: that would match the cluster topic pattern.
                "--dead-letter-topic",
                f"{self.topic_prefix}-deadletter",
                # Its stage latencies (bench/promscrape.py); the port is in its log.
                "--metrics-port",
                "0",
                "--log-level",
                "WARNING",
            ],
        )
        # The store exists once the consumer opened it; the query service needs it.
        deadline = time.monotonic() + timeout_s
        while not any(self.store_dir.iterdir()):
            self.components.check_alive()
            if time.monotonic() > deadline:
                raise PipelineError(f"the consumer did not create its store in {timeout_s:.0f} s")
            await asyncio.sleep(0.2)

    async def start_query(self, timeout_s: float = 60.0) -> str:
        tokens = self.config.work_dir / "tokens.json"
        tokens.write_bytes(
            orjson.dumps({"tokens": {self.config.token: {"clusters": ["*"], "namespaces": ["*"]}}})
        )
        self.query = self.components.start(
            "query",
            [
                "serve",
                "--data-dir",
                str(self.store_dir),
                "--port",
                "0",
                "--tokens",
                str(tokens),
                "--topic-prefix",
                self.topic_prefix,
            ],
        )
        match = await self.query.wait_for_line(r"query: (http://\S+)", timeout_s)
        self.query_url = match.group(1)
        deadline = time.monotonic() + timeout_s
        async with QueryClient(self.query_url, self.config.token) as client:
            while not await client.ready():
                self.components.check_alive()
                if time.monotonic() > deadline:
                    raise PipelineError(f"the query service did not answer in {timeout_s:.0f} s")
                await asyncio.sleep(0.2)
        return self.query_url

    def metrics_urls(self) -> dict[str, list[str]]:
        """/metrics pages of the consumer and the producers by role, as their logs name
        them so far (a process that has not printed it yet is left out)."""
        found: dict[str, list[str]] = {"consumer": [], "producers": []}
        if self.consumer is not None:
            match = self.consumer.find_line(r"consume: metrics at (http://\S+/metrics)")
            if match is not None:
                found["consumer"].append(match.group(1))
        for producer in self.producers:
            match = producer.find_line(r"produce: metrics and health on (http://\S+)")
            if match is not None:
                found["producers"].append(match.group(1) + "/metrics")
        return found

    def start_producers(self) -> None:
        cfg = self.config
        template = f"{self.sim_url}/clusters/{{cluster}}"
        for index, group in enumerate(cfg.producer_groups()):
            args = [
                "produce",
                "--api-url-template",
                template,
                "--bootstrap",
                self.bootstrap,
                "--topic-prefix",
                self.topic_prefix,
                "--partitions",
                str(cfg.partitions),
                "--health-port",
                "0",
                "--log-level",
                "WARNING",
            ]
            if cfg.linger_ms is not None:
                args += ["--linger-ms", str(cfg.linger_ms)]
            # The cluster list goes through the environment: thousands of names.
            self.producers.append(
                self.components.start(
                    f"producer-{index + 1}", args, env={"KUBEDELTA_CLUSTERS": ",".join(group)}
                )
            )

    async def create_topics(self, timeout_s: float, chunk: int = 100) -> None:
        """Create every cluster topic up front, exactly as a producer would (its topic
        spec), 100 per CreateTopics request. A producer finds its topic there and moves
        on: a thousand producers each listing all topics and creating its own one at the
        same instant time out on a loaded broker, and the consumer can start before
        the producers (it subscribes to topics that exist)."""
        spec = TopicConfig(prefix=self.topic_prefix, partitions=self.config.partitions)
        specs = [
            TopicSpec(
                topic_for(name, self.topic_prefix),
                spec.partitions,
                spec.replication,
                spec.configs(),
            )
            for name in self.config.cluster_names()
        ]
        # Creating hundreds of partitions in one request takes the broker a while.
        conn = KafkaConnection(bootstrap_servers=self.bootstrap, request_timeout_ms=120_000)
        deadline = time.monotonic() + timeout_s
        start = 0
        while start < len(specs):
            try:
                await ensure_topics(conn, specs[start : start + chunk])
                start += chunk
            except KubedeltaError as exc:
                if time.monotonic() > deadline:
                    raise PipelineError(
                        f"creating the cluster topics failed for {timeout_s:.0f} s: {exc}"
                    ) from exc
                await asyncio.sleep(1.0)  # already created ones are skipped next time

    async def wait_for_topics(self, timeout_s: float) -> None:
        """Until the producers have created every cluster topic. The consumer starts after
        that: started on an empty prefix it would wait for an assignment forever (its
        getmany blocks while aiokafka has no assignment at all)."""
        wanted = {f"{self.topic_prefix}.{name}" for name in self.config.cluster_names()}
        deadline = time.monotonic() + timeout_s
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            while True:
                self.components.check_alive()
                if wanted <= set(await admin.list_topics()):
                    return
                if time.monotonic() > deadline:
                    raise PipelineError(
                        f"the producers did not create their topics in {timeout_s:.0f} s"
                    )
                await asyncio.sleep(0.5)
        finally:
            await admin.close()

    # -- measure -----------------------------------------------------------------------------
    def topic_log_bytes(self) -> int:
        return topic_bytes(self.broker_config.data, self.topic_prefix + ".").log_bytes

    def disk_usage(self) -> dict[str, int]:
        topics = topic_bytes(self.broker_config.data, self.topic_prefix + ".")
        store = dir_bytes(self.store_dir)
        return {
            "store_disk_bytes": store,
            "kafka_disk_bytes": topics.allocated_bytes,
            "disk_bytes": store + topics.allocated_bytes,
        }

    def memory_metrics(self) -> dict[str, float]:
        """Peak RSS (MiB) and CPU seconds per role; producers also as max and total."""
        metrics: dict[str, float] = {}
        producer_peaks: list[float] = []
        producer_cpu = 0.0
        for role, usage in self.components.usages():
            peak = usage.peak_rss_bytes / MIB
            if role.startswith("producer-"):
                producer_peaks.append(peak)
                producer_cpu += usage.cpu_s
            elif not role.startswith(("baseline-", "replay")):
                metrics[f"rss_mb_{role}"] = peak
                metrics[f"cpu_s_{role}"] = usage.cpu_s
        if producer_peaks:
            metrics["rss_mb_producer_max"] = max(producer_peaks)
            metrics["rss_mb_producers_total"] = sum(producer_peaks)
            metrics["cpu_s_producers"] = producer_cpu
        return metrics

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds so far per role (producers summed as ``producers``), from a fresh
        sample: the difference of two calls is what each role spent in between."""
        self.components.sample()
        cpu: dict[str, float] = {}
        for role, usage in self.components.usages():
            if role.startswith(("baseline-", "replay")):
                continue
            key = "producers" if role.startswith("producer-") else role
            cpu[key] = cpu.get(key, 0.0) + usage.cpu_s
        return cpu

    # -- stop --------------------------------------------------------------------------------
    def stop_services(self) -> None:
        """Stop every started component (producers first, then consumer, query, simulator)."""
        order: Sequence[Component | None] = [
            *self.producers,
            self.query,
            self.consumer,
            self.simulator,
        ]
        for component in order:
            if component is not None:
                component.stop()

    async def delete_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            ours = (f"{self.topic_prefix}.", f"{self.topic_prefix}-deadletter")
            names = [t for t in await admin.list_topics() if t.startswith(ours)]
            for start in range(0, len(names), 200):
                with contextlib.suppress(Exception):
                    await admin.delete_topics(names[start : start + 200])
        finally:
            await admin.close()
