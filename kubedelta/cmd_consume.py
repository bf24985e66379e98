"""``kubedelta consume`` (materialize the cluster topics into a view) and ``kubedelta
replay`` (rebuild a view from Kafka, optionally as of a past instant).

Settings: pydantic-settings with env prefix ``KUBEDELTA_`` (``KUBEDELTA_DATA_DIR``,
``KUBEDELTA_BOOTSTRAP``, ``KUBEDELTA_MODE``, ``KUBEDELTA_GROUP``,
``KUBEDELTA_KAFKA_PASSWORD`` ...); command-line options override the environment.
They become a frozen ``consumers.ConsumerConfig`` and ``store.StoreOptions``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import click
import uvloop
from pydantic import ValidationError

from consumers import (
    Consumer,
    ConsumerConfig,
    ConsumerConfigError,
    ConsumerMode,
    ReplayConfig,
    Replayer,
    ReplaySummary,
    ReplayTargetError,
    parse_instant,
    tune_gc,
)
from consumers.config import DEFAULT_BATCH_MAX_RECORDS
from deltas import DEFAULT_TOPIC_PREFIX, KubedeltaError
from deltas.keys import DEAD_LETTER_TOPIC
from kubedelta.kafka_settings import KafkaSettings, bootstrap_option
from plumbing.zstd import reuse_zstd_contexts
from store import StoreOptions, View

log = logging.getLogger("kubedelta.consume")


class ConsumeSettings(KafkaSettings):
    """Consumer and replay settings (Kafka ones from ``KafkaSettings``);
    ``consumers/config.py`` documents units and reasons."""

    kafka_client_id: ClassVar[str] = "kubedelta-consumer"

    data_dir: Path | None = None
    mode: ConsumerMode = ConsumerMode.REPLICA
    group: str = ""
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    dead_letter_replication: int = 1
    batch_max_records: int = DEFAULT_BATCH_MAX_RECORDS
    batch_max_mb: int = 64
    metadata_refresh_ms: int = 2_000
    fetch_sessions: bool = True
    fast_records: bool = True
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    history_retention_s: int = StoreOptions().history_retention_s
    log_level: str = "INFO"

    def consumer_config(self) -> ConsumerConfig:
        if self.data_dir is None:
            raise click.UsageError("give --data-dir DIR (or KUBEDELTA_DATA_DIR)")
        try:
            return ConsumerConfig(
                data_dir=self.data_dir,
                connection=self.kafka(),
                mode=self.mode,
                group_id=self.group or None,
                topic_prefix=self.topic_prefix,
                dead_letter_topic=self.dead_letter_topic,
                dead_letter_replication=self.dead_letter_replication,
                batch_max_records=self.batch_max_records,
                batch_max_bytes=self.batch_max_mb * 1024 * 1024,
                metadata_refresh_ms=self.metadata_refresh_ms,
                fetch_sessions=self.fetch_sessions,
                fast_records=self.fast_records,
                metrics_host=self.metrics_host,
                metrics_port=self.metrics_port,
            )
        except ConsumerConfigError as exc:
            raise click.UsageError(str(exc)) from exc

    def store_options(self) -> StoreOptions:
        try:
            return StoreOptions(
                topic_prefix=self.topic_prefix, history_retention_s=self.history_retention_s
            )
        except KubedeltaError as exc:
            raise click.UsageError(str(exc)) from exc


def settings_from(**cli: Any) -> ConsumeSettings:
    """Command-line values (those given) over ``KUBEDELTA_*`` variables over defaults."""
    try:
        return ConsumeSettings(**{k: v for k, v in cli.items() if v is not None})
    except ValidationError as exc:
        raise click.UsageError(f"bad setting: {exc}") from exc


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--data-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="The view's folder [env KUBEDELTA_DATA_DIR].",
            ),
            bootstrap_option,
            click.option(
                "--topic-prefix",
                help=f"Cluster topics are PREFIX.<cluster> [{DEFAULT_TOPIC_PREFIX}].",
            ),
            click.option(
                "--history-retention",
                "history_retention_s",
                type=click.IntRange(min=0),
                help="Seconds of superseded versions kept for point-in-time reads [3600].",
            ),
            click.option("--log-level", help="Python log level [INFO]."),
        ]
    ):
        command = option(command)
    return command


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# -- consume -------------------------------------------------------------------------------


@click.command("consume")
@_common
@click.option(
    "--mode",
    type=click.Choice([m.value for m in ConsumerMode]),
    help="replica: every consumer holds every cluster; shard: a consumer group splits them.",
)
@click.option("--group", help="Consumer group (shard mode).")
@click.option("--dead-letter-topic", help=f"Where refused records go [{DEAD_LETTER_TOPIC}].")
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    help="Serve /metrics, /healthz and /readyz on this port (0: any free port).",
)
@click.option("--batch-max-records", type=click.IntRange(min=1), help="Records per WriteBatch.")
@click.option(
    "--fetch-sessions/--no-fetch-sessions",
    default=None,
    help="Incremental fetch sessions (KIP-227): requests and answers name only the "
    "partitions with news, not every cluster topic every time [on].",
)
@click.option(
    "--fast-records/--no-fast-records",
    default=None,
    help="Fetched record batches become records in C instead of aiokafka's per-record "
    "Python; off is the escape hatch if an aiokafka upgrade moved its internals [on].",
)
def consume(**cli: Any) -> None:
    """Materialize every cluster topic into the view at --data-dir, until SIGTERM/SIGINT."""
    settings = settings_from(**cli)
    _setup_logging(settings.log_level)
    config = settings.consumer_config()
    options = settings.store_options()
    tune_gc()
    reuse_zstd_contexts()
    try:
        uvloop.run(_consume(config, options))
    except KubedeltaError as exc:
        raise click.ClickException(str(exc)) from exc


async def _consume(config: ConsumerConfig, options: StoreOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    view = View.open(config.data_dir, options)
    try:
        consumer = Consumer(config, view)
        try:
            await consumer.start()
            if consumer.metrics_url:
                click.echo(f"consume: metrics at {consumer.metrics_url}/metrics", err=True)
            click.echo(
                f"consume: {config.mode.value} mode, topics {config.topic_prefix}.*, "
                f"view {config.data_dir}",
                err=True,
            )
            await consumer.run(stop)
        finally:
            await consumer.close()
        t = consumer.totals
        click.echo(
            f"consume: stopped after {t.records} records ({t.rejected} dead-lettered)", err=True
        )
    finally:
        view.close()


# -- replay --------------------------------------------------------------------------------


@click.command("replay")
@_common
@click.option(
    "--until",
    help="Rebuild the state as of this instant: ISO-8601 (2024-05-01T12:00:00Z) or Unix ms.",
)
@click.option(
    "--cluster",
    "clusters",
    multiple=True,
    help="Only this cluster (repeatable; default: every cluster topic).",
)
@click.option("--force", is_flag=True, default=False, help="Empty a non-empty --data-dir first.")
def replay(until: str | None, clusters: tuple[str, ...], force: bool, **cli: Any) -> None:
    """Rebuild a view from Kafka into --data-dir, up to now or up to --until."""
    settings = settings_from(**cli)
    _setup_logging(settings.log_level if cli.get("log_level") else "WARNING")
    try:
        until_ms = parse_instant(until) if until is not None else None
    except KubedeltaError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from exc
    config = ReplayConfig(
        consumer=settings.consumer_config(), until_ms=until_ms, clusters=clusters, force=force
    )
    bar = _ProgressBar()
    tune_gc()
    reuse_zstd_contexts()
    try:
        summary = uvloop.run(Replayer(config, settings.store_options(), bar.update).run())
    except (ReplayTargetError, ConsumerConfigError) as exc:
        raise click.UsageError(str(exc)) from exc
    except KubedeltaError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bar.close()
    click.echo(format_summary(summary))


class _ProgressBar:
    """click's progress bar on stderr, created once the total is known."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._done = 0

    def update(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = click.progressbar(
                length=max(total, 1), label="replaying records", file=sys.stderr
            )
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def format_summary(summary: ReplaySummary) -> str:
    """One row per cluster: objects, partitions, last digest verdict, time of its last record."""
    header = ("cluster", "objects", "partitions", "digest", "last record")
    rows = [
        (r.cluster, f"{r.objects:,}", str(r.partitions), r.verdict, _iso(r.last_record_ms))
        for r in summary.clusters
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(
            str(v).ljust(w) if i in (0, 3, 4) else str(v).rjust(w)
            for i, (v, w) in enumerate(zip(cells, widths, strict=True))
        )
        for cells in (header, *rows)
    ]
    lines.append(
        f"replayed {summary.records:,} records ({summary.rejected:,} refused) "
        f"from {len(summary.clusters)} cluster(s) in {summary.seconds:.1f} s"
    )
    return "\n".join(lines)
