"""``kubedelta produce``: run the producer agent for one cluster (in-cluster or via a
kubeconfig) or, multiplexed, for many simulated clusters in one process.

Settings: pydantic-settings with env prefix ``KUBEDELTA_`` (e.g. ``KUBEDELTA_CLUSTER``,
``KUBEDELTA_BOOTSTRAP``, ``KUBEDELTA_KAFKA_PASSWORD``); command-line options override
the environment. They become a frozen ``producers.config.ProducerConfig`` per cluster.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, ClassVar

import click
import uvloop
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from deltas import DEFAULT_TOPIC_PREFIX, KubedeltaError
from kubedelta.kafka_settings import KafkaSettings, bootstrap_option
from plumbing.gctune import freeze_heap
from plumbing.health import HealthServer, HealthServerConfig
from plumbing.zstd import reuse_zstd_contexts
from producers.agent import ClusterProducer, run_producers, tune_gc
from producers.config import (
    DEFAULT_EXCLUDED_KINDS,
    ApiConnectionConfig,
    FilterConfig,
    ProducerConfig,
    SinkConfig,
    StripConfig,
    TopicConfig,
    WatchConfig,
)
from producers.metrics import ProducerMetrics


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


class ProduceSettings(KafkaSettings):
    """Every producer setting (Kafka ones from ``KafkaSettings``); see
    ``producers/config.py`` for units and reasons."""

    kafka_client_id: ClassVar[str] = "kubedelta-producer"

    cluster: str = ""
    clusters: str = ""  #: comma list, multiplexed mode (needs api_url_template)
    api_url: str = ""
    api_url_template: str = ""  #: e.g. http://127.0.0.1:8001/clusters/{cluster}
    api_token: SecretStr | None = None
    kubeconfig: str = ""
    kube_context: str = ""
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    partitions: int = 1
    replication: int = 1
    min_compaction_lag_ms: int = 3_600_000
    compression: str = "zstd"
    zstd_level: int = 1  #: SinkConfig.zstd_level
    linger_ms: float = 5.0
    batch_bytes: int = 1024 * 1024
    buffer_records: int = 100_000
    buffer_bytes: int = 32 * 1024 * 1024
    include_kinds: str = ""
    exclude_kinds: str = ",".join(DEFAULT_EXCLUDED_KINDS)
    include_namespaces: str = ""
    exclude_namespaces: str = ""
    label_selector: str = ""
    drop_secrets: bool = False
    keep_last_applied: bool = False
    secret_hash_key: SecretStr | None = None
    digest_interval_s: float = 60.0
    discovery_interval_s: float = 30.0
    watch_timeout_min_s: float = 300.0
    watch_timeout_max_s: float = 600.0
    idle_timeout_s: float = 330.0
    page_size: int = 500
    restore: bool = True
    health_host: str = "127.0.0.1"
    health_port: int = 8080
    log_level: str = "INFO"

    def cluster_names(self) -> tuple[str, ...]:
        names = _csv(self.clusters) or ((self.cluster,) if self.cluster else ())
        if not names:
            raise click.UsageError(
                "give --cluster NAME (or --clusters a,b,c with --api-url-template)"
            )
        if len(names) > 1 and not self.api_url_template:
            raise click.UsageError("several clusters need --api-url-template ...{cluster}...")
        return names

    def api_for(self, cluster: str) -> ApiConnectionConfig:
        token = self.api_token.get_secret_value() if self.api_token else None
        if self.api_url_template:
            return ApiConnectionConfig(
                url=self.api_url_template.format(cluster=cluster), token=token
            )
        if self.api_url:
            return ApiConnectionConfig(url=self.api_url, token=token)
        if self.kubeconfig:
            return ApiConnectionConfig(
                kubeconfig=self.kubeconfig, context=self.kube_context or None
            )
        return ApiConnectionConfig()  # in-cluster ServiceAccount

    def producer_configs(self) -> list[ProducerConfig]:
        kafka = self.kafka()
        topic = TopicConfig(
            prefix=self.topic_prefix,
            partitions=self.partitions,
            replication=self.replication,
            min_compaction_lag_ms=self.min_compaction_lag_ms,
        )
        filters = FilterConfig(
            include_kinds=_csv(self.include_kinds),
            exclude_kinds=_csv(self.exclude_kinds),
            include_namespaces=_csv(self.include_namespaces),
            exclude_namespaces=_csv(self.exclude_namespaces),
            label_selector=self.label_selector,
            drop_secrets=self.drop_secrets,
        )
        strip = StripConfig(
            keep_last_applied=self.keep_last_applied,
            secret_hash_key=(
                self.secret_hash_key.get_secret_value().encode() if self.secret_hash_key else b""
            ),
        )
        watch = WatchConfig(
            page_size=self.page_size,
            watch_timeout_min_s=self.watch_timeout_min_s,
            watch_timeout_max_s=self.watch_timeout_max_s,
            idle_timeout_s=self.idle_timeout_s,
            discovery_interval_s=self.discovery_interval_s,
        )
        sink = SinkConfig(
            compression=self.compression,
            zstd_level=self.zstd_level,
            linger_ms=self.linger_ms,
            max_batch_bytes=self.batch_bytes,
            buffer_max_records=self.buffer_records,
            buffer_max_bytes=self.buffer_bytes,
        )
        return [
            ProducerConfig(
                cluster=name,
                kafka=kafka,
                api=self.api_for(name),
                topic=topic,
                filters=filters,
                strip=strip,
                watch=watch,
                sink=sink,
                digest_interval_s=self.digest_interval_s,
                restore_from_topic=self.restore,
            )
            for name in self.cluster_names()
        ]


async def serve(settings: ProduceSettings) -> None:
    """Run until SIGTERM/SIGINT; then stop watching, flush to Kafka and exit."""
    configs = settings.producer_configs()
    registry = CollectorRegistry()
    metrics = ProducerMetrics(registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running: list[ClusterProducer] = []
    health = HealthServer(
        HealthServerConfig(settings.health_host, settings.health_port),
        registry,
        ready=lambda: bool(running) and all(p.ready() for p in running),
    )
    url = await health.start()
    # On stderr whatever the log level: with --health-port 0 this is how to find it.
    click.echo(f"produce: metrics and health on {url}", err=True)

    async def freeze_when_synced() -> None:
        # The ledger is built by then: keep the cyclic GC from rescanning it forever.
        while not (running and all(p.ready() for p in running)):  # noqa: ASYNC110 (a predicate)
            await asyncio.sleep(1.0)
        freeze_heap()

    freezer = asyncio.create_task(freeze_when_synced())
    try:
        await run_producers(configs, metrics, stop, started=running.extend)
    finally:
        freezer.cancel()
        await health.stop()


#: (flag, help, type) of the options before and after the shared ``--bootstrap``.
_API_OPTIONS: list[tuple[str, str, Any]] = [
    ("--cluster", "Cluster id (names the topic <prefix>.<cluster>).", str),
    ("--clusters", "Comma list of clusters: multiplexed mode (with --api-url-template).", str),
    ("--api-url", "API server URL without auth (e.g. the simulator's /clusters/NAME).", str),
    (
        "--api-url-template",
        "URL with {cluster}, e.g. http://127.0.0.1:8001/clusters/{cluster}.",
        str,
    ),
    ("--kubeconfig", "Kubeconfig path (default: in-cluster ServiceAccount).", str),
    ("--kube-context", "Kubeconfig context.", str),
]
_PRODUCER_OPTIONS: list[tuple[str, str, Any]] = [
    ("--topic-prefix", "Topic prefix (topic = <prefix>.<cluster>).", str),
    ("--partitions", "Partitions when creating the topic.", int),
    ("--replication", "Replication factor when creating the topic.", int),
    ("--min-compaction-lag-ms", "History kept uncompacted (ms).", int),
    ("--compression", "zstd or lz4.", str),
    ("--zstd-level", "zstd level of the record batches (default 1).", int),
    ("--linger-ms", "Batch linger (ms).", float),
    ("--include-kinds", "Comma list: only these kinds (name[.group]).", str),
    ("--exclude-kinds", "Comma list of kinds to skip (default: events, leases).", str),
    ("--include-namespaces", "Comma list: only these namespaces.", str),
    ("--exclude-namespaces", "Comma list of namespaces to skip.", str),
    ("--label-selector", "Label selector for every LIST/WATCH.", str),
    ("--digest-interval-s", "Seconds between DIGEST records.", float),
    ("--discovery-interval-s", "Seconds between discovery refreshes.", float),
    ("--health-host", "Bind address of /metrics /healthz /readyz.", str),
    ("--health-port", "Port of /metrics /healthz /readyz (0: any).", int),
    ("--log-level", "Logging level.", str),
]


def _with_options(func: Any) -> Any:
    # Applied last to first, so --help lists them in table order.
    for flag, help_text, kind in reversed(_PRODUCER_OPTIONS):
        func = click.option(flag, type=kind, default=None, help=help_text)(func)
    func = bootstrap_option(func)
    for flag, help_text, kind in reversed(_API_OPTIONS):
        func = click.option(flag, type=kind, default=None, help=help_text)(func)
    func = click.option(
        "--drop-secrets/--redact-secrets", default=None, help="Skip Secrets entirely."
    )(func)
    func = click.option(
        "--restore/--no-restore", default=None, help="Read the topic back at start."
    )(func)
    return func


@click.command("produce")
@_with_options
def produce(**options: Any) -> None:
    """Stream a cluster's objects to Kafka (list+watch every kind, deltas only)."""
    given = {k: v for k, v in options.items() if v is not None}
    try:
        settings = ProduceSettings(**given)
    except ValidationError as exc:  # a bad KUBEDELTA_* value: a usage error, like consume
        raise click.UsageError(f"bad setting: {exc}") from exc
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tune_gc()
    try:
        reuse_zstd_contexts(settings.zstd_level)
        uvloop.run(serve(settings))
    except KubedeltaError as exc:  # not retriable (e.g. no way to reach the API server)
        raise click.ClickException(str(exc)) from exc
