"""The alternatives, measured on the same topics: how fast can the cluster topics be read
and materialized by

- a bare aiokafka consume loop that only counts records (the ceiling of any aiokafka
  consumer, ours included): ``aiokafka_baseline_per_s``;
- Quix Streams, an Application with one StreamingDataFrame per cluster topic that keeps
  the latest value of each key in its RocksDB state: ``quix_per_s``;
- our own materialization, ``kubedelta replay``'s code (``consumers.Replayer`` with the
  CLI's default settings) into a fresh store: ``ours_per_s``.

Each runs in its own process, one after the other, over every cluster topic under one
prefix from the beginning to the end offsets taken at its start. Rates are records
per second over the span of the work, client start-up excluded: aiokafka from its
first fetch to its last record; Quix from its first record (its group join takes
seconds) until its run returns with the state flushed; ours from the moment replay has
planned its offsets and opened the store until it returns with the store flushed.
``<name>_total_s`` is each one's whole run, start-up included.

Quix runs without changelog topics unless ``--quix-changelog`` (its own default writes
every state update back to Kafka): that keeps its work to what ours does (the Kafka log
*is* our changelog) and is the fastest Quix can materialize. Changelog topics it
creates are deleted afterwards. It stores the raw record value; it does not
decode our header, so it does less per record than we do.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import traceback
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.errors import BenchError
from bench.procs import MIB, Components, interrupt_on_sigterm
from bench.report import Machine, Report, emit, json_option
from consumers import ConsumerConfig, ReplayConfig, Replayer, tune_gc
from plumbing import broker
from plumbing.kafka import KafkaConnection, beginning_offsets, end_offsets
from plumbing.zstd import reuse_zstd_contexts
from store import StoreOptions

#: Fetch sizes as our consumer uses them (consumers/config.py), so the ceiling is fair.
FETCH_MAX_BYTES = 64 * MIB
MAX_PARTITION_FETCH_BYTES = 16 * MIB
#: A baseline that sees no new record for this long while records remain gives up.
STALL_TIMEOUT_S = 30.0


class BaselineError(BenchError):
    """A baseline could not consume the topics."""


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """What one baseline did."""

    name: str  #: aiokafka, quix or ours
    records: int  #: records consumed (and, for quix and ours, stored)
    seconds: float  #: the span of the work (see the module docstring), seconds
    total_seconds: float  #: process start to finish, seconds (start-up included)

    @property
    def per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def cluster_topics(all_topics: set[str], topic_prefix: str) -> list[str]:
    """The cluster topics under ``topic_prefix`` (``<prefix>.<cluster>``), sorted."""
    pattern = re.compile(re.escape(topic_prefix) + r"\.[a-z0-9]([-a-z0-9]*[a-z0-9])?")
    return sorted(t for t in all_topics if pattern.fullmatch(t))


async def partitions_of(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of ``topics`` from a fresh metadata request (``partitions_for_topic``
    knows only topics the client already tracks)."""
    cluster = await consumer._client.fetch_all_metadata()
    return [
        TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())
    ]


async def end_offsets_chunked(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """End offsets of many partitions (topics tracked at once, then chunked lookups)."""
    return await end_offsets(consumer, tps)


async def list_cluster_topics(bootstrap: str, topic_prefix: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return cluster_topics(await consumer.topics(), topic_prefix)
    finally:
        await consumer.stop()


async def topic_record_counts(bootstrap: str, topics: list[str]) -> int:
    """Offsets between beginning and end over every partition: records to read."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topics)
        begins = await beginning_offsets(consumer, tps)
        ends = await end_offsets_chunked(consumer, tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        await consumer.stop()


# -- aiokafka ---------------------------------------------------------------------------------


async def aiokafka_baseline(bootstrap: str, topics: list[str]) -> BaselineResult:
    """Read every partition of ``topics`` from the beginning to its end offset; count."""
    began = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        fetch_max_bytes=FETCH_MAX_BYTES,
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
    )
    await consumer.start()
    try:
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await end_offsets_chunked(consumer, tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        records = 0
        first = last = time.monotonic()  # the clock starts at the first fetch
        last_progress = first
        while pending:
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            now = time.monotonic()
            for tp, messages in batches.items():
                if not messages:
                    continue
                records += len(messages)
                last = now
                last_progress = now
                if messages[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            for tp in [tp for tp in pending if tp not in batches]:
                if await consumer.position(tp) >= ends[tp]:  # compaction gap at the end
                    pending.discard(tp)
            if pending and now - last_progress > STALL_TIMEOUT_S:
                raise BaselineError(
                    f"aiokafka baseline stalled with {len(pending)} partitions left"
                )
        return BaselineResult("aiokafka", records, last - first, time.monotonic() - began)
    finally:
        await consumer.stop()


# -- Quix Streams ------------------------------------------------------------------------------


def quix_baseline(
    bootstrap: str, topics: list[str], state_dir: Path, expected: int, changelog: bool = False
) -> BaselineResult:
    """Materialize ``topics`` into Quix's RocksDB state (latest value per key)."""
    try:
        from quixstreams import Application
        from quixstreams.state import State
        from quixstreams.state.rocksdb import RocksDBOptions
    except ImportError as exc:
        raise BaselineError(
            "quixstreams is not installed: pip install -e '.[bench]' to run the Quix baseline"
        ) from exc

    began = time.monotonic()
    seen = {"records": 0, "first": 0.0, "last": 0.0}

    def keep_latest(value: bytes, state: State[Any, Any]) -> None:
        now = time.monotonic()
        if seen["records"] == 0:
            seen["first"] = now
        seen["records"] += 1
        seen["last"] = now
        state.set("latest", value)

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"kubedelta-bench-quix-{uuid.uuid4().hex[:10]}",
        auto_offset_reset="earliest",
        state_dir=str(state_dir),
        use_changelog_topics=changelog,
        auto_create_topics=changelog,  # changelog topics are created by Quix
        loglevel="WARNING",
        # Values are stored as the raw record bytes (Quix's default is JSON).
        rocksdb_options=RocksDBOptions(dumps=_raw_bytes, loads=_identity),
        consumer_extra_config={
            "fetch.max.bytes": FETCH_MAX_BYTES,
            "max.partition.fetch.bytes": MAX_PARTITION_FETCH_BYTES,
        },
    )
    for name in topics:
        topic = app.topic(name, value_deserializer="bytes", key_deserializer="bytes")
        app.dataframe(topic).update(keep_latest, stateful=True)
    group = app.config.consumer_group
    try:
        app.run(count=expected, timeout=STALL_TIMEOUT_S, collect=False)
    finally:
        ended = time.monotonic()
        if changelog:
            asyncio.run(_delete_topics_containing(bootstrap, group))
    records = int(seen["records"])
    # Quix's clock starts at its first record (its group join and assignment take
    # seconds), so that record is not counted. It ends when run() returns: state is
    # written to RocksDB at the checkpoint on close, which belongs to the work. If the
    # count was not reached, run() idled for the stall timeout: end at the last record.
    end = ended if records >= expected else seen["last"]
    return BaselineResult("quix", max(records - 1, 0), end - seen["first"], ended - began)


async def _delete_topics_containing(bootstrap: str, text: str) -> None:
    """Remove the changelog topics Quix created for this run's consumer group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if text in t]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def _raw_bytes(value: Any) -> bytes:
    """State serializer: record values stay raw bytes; state keys are short strings."""
    return value if isinstance(value, bytes) else str(value).encode()


def _identity(value: bytes) -> bytes:
    return value


# -- ours ----------------------------------------------------------------------------------


async def ours_baseline(bootstrap: str, topic_prefix: str, data_dir: Path) -> BaselineResult:
    """``kubedelta replay``'s code path (consumers.Replayer, the CLI's default settings)
    into a fresh store; the clock starts when replay has planned its offsets and opened
    the store (its first progress call), and stops when it returns (store flushed)."""
    began = time.monotonic()
    clock = {"start": 0.0}

    def progress(done: int, total: int) -> None:
        if clock["start"] == 0.0:
            clock["start"] = time.monotonic()

    config = ReplayConfig(
        consumer=ConsumerConfig(
            data_dir=data_dir,
            # Replay lists the end offsets of every partition in one request; at 1,000
            # topics the loaded 2-core broker took longer than the 30 s default.
            connection=KafkaConnection(bootstrap_servers=bootstrap, request_timeout_ms=120_000),
            topic_prefix=topic_prefix,
            dead_letter_topic=f"{topic_prefix}-deadletter",
        ),
        force=True,
    )
    summary = await Replayer(config, StoreOptions(topic_prefix=topic_prefix), progress).run()
    ended = time.monotonic()
    return BaselineResult("ours", summary.records, ended - clock["start"], ended - began)


# -- orchestration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BaselineRun:
    """Which baselines to run and where their files go."""

    bootstrap: str
    topic_prefix: str
    work_dir: Path  #: state directories and logs of the baseline processes
    quix: bool = True
    ours: bool = True
    aiokafka: bool = True
    quix_changelog: bool = False  #: Quix with changelog topics (its default setting)


def run_baselines(run: BaselineRun, components: Components) -> dict[str, float]:
    """Run the chosen baselines one after the other; returns their metrics."""
    metrics: dict[str, float] = {}
    results: dict[str, BaselineResult] = {}
    run.work_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in ("aiokafka", "quix", "ours") if getattr(run, n)]
    for name in names:
        result_file = run.work_dir / f"baseline-{name}.json"
        result_file.unlink(missing_ok=True)
        component = components.start(
            f"baseline-{name}",
            [
                "bench",
                "baseline-worker",
                name,
                "--bootstrap",
                run.bootstrap,
                "--topic-prefix",
                run.topic_prefix,
                "--state-dir",
                str(run.work_dir / f"{name}-state"),
                "--result",
                str(result_file),
                *(["--quix-changelog"] if run.quix_changelog else []),
            ],
        )
        while component.alive():
            components.sample()
            time.sleep(0.5)
        metrics[f"rss_mb_baseline_{name}"] = component.usage.peak_rss_bytes / MIB
        outcome = (
            BaselineResult(**orjson.loads(result_file.read_bytes()))
            if component.process.returncode == 0 and result_file.exists()
            else None
        )
        if outcome is None or outcome.records == 0:
            metrics[f"{name}_failed"] = 1
            click.echo(f"{name} baseline failed; log tail:\n{component.log_tail()}", err=True)
            continue
        results[name] = outcome
    for name, key in (
        ("aiokafka", "aiokafka_baseline_per_s"),
        ("quix", "quix_per_s"),
        ("ours", "ours_per_s"),
    ):
        if name in results:
            metrics[key] = results[name].per_s
            metrics[f"{name}_records"] = results[name].records
            metrics[f"{name}_total_s"] = results[name].total_seconds
    if "ours" in results and "quix" in results and results["quix"].per_s > 0:
        metrics["ours_to_quix_ratio"] = results["ours"].per_s / results["quix"].per_s
    if "ours" in results and "aiokafka" in results and results["aiokafka"].per_s > 0:
        metrics["ours_to_aiokafka_ratio"] = results["ours"].per_s / results["aiokafka"].per_s
    return metrics


# -- commands ----------------------------------------------------------------------------------


@click.command("baseline-worker", hidden=True)
@click.argument("name", type=click.Choice(["aiokafka", "quix", "ours"]))
@click.option("--bootstrap", required=True)
@click.option("--topic-prefix", required=True)
@click.option("--state-dir", type=click.Path(path_type=Path), required=True)
@click.option("--result", type=click.Path(path_type=Path), required=True)
@click.option("--quix-changelog", is_flag=True, default=False)
def worker_command(
    name: str,
    bootstrap: str,
    topic_prefix: str,
    state_dir: Path,
    result: Path,
    quix_changelog: bool,
) -> None:
    """Run one baseline in this process and write its result as JSON (internal)."""
    topics = asyncio.run(list_cluster_topics(bootstrap, topic_prefix))
    if not topics:
        raise click.ClickException(f"no cluster topics under {topic_prefix!r}")
    began = time.monotonic()
    try:
        if name == "aiokafka":
            outcome = asyncio.run(aiokafka_baseline(bootstrap, topics))
        elif name == "ours":
            tune_gc()  # as `kubedelta replay` does
            reuse_zstd_contexts()
            outcome = asyncio.run(ours_baseline(bootstrap, topic_prefix, state_dir))
        else:
            expected = asyncio.run(topic_record_counts(bootstrap, topics))
            state_dir.mkdir(parents=True, exist_ok=True)
            outcome = quix_baseline(bootstrap, topics, state_dir, expected, quix_changelog)
    except Exception:
        # One baseline failing must not cost the others (nor the run's other numbers):
        # no records means no rate, and the orchestrator reports it as failed.
        traceback.print_exc()
        outcome = BaselineResult(name, 0, 0.0, time.monotonic() - began)
    result.write_bytes(orjson.dumps(asdict(outcome)))
    click.echo(f"{name}: {outcome.records} records in {outcome.seconds:.2f} s")


@click.command("baselines")
@click.option("--topic-prefix", required=True, help="Cluster topics are <prefix>.<cluster>.")
@click.option("--bootstrap", default=None, help="Kafka bootstrap (default: the local broker).")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".kubedelta/bench/baselines"),
    show_default=True,
)
@click.option("--quix/--no-quix", default=True, show_default=True)
@click.option(
    "--quix-changelog/--no-quix-changelog",
    default=False,
    show_default=True,
    help="Quix with its changelog topics (its default) instead of without.",
)
@json_option
def command(
    topic_prefix: str,
    bootstrap: str | None,
    work_dir: Path,
    quix: bool,
    quix_changelog: bool,
    json_path: Path | None,
) -> None:
    """Read the cluster topics under a prefix with aiokafka, Quix Streams and kubedelta replay."""
    interrupt_on_sigterm()
    bootstrap = bootstrap or ensure_broker()
    work_dir.mkdir(parents=True, exist_ok=True)
    components = Components(work_dir / "logs")
    try:
        metrics = run_baselines(
            BaselineRun(
                bootstrap, topic_prefix, work_dir, quix=quix, quix_changelog=quix_changelog
            ),
            components,
        )
    finally:
        components.stop_all()
    params: dict[str, Any] = {
        "topic_prefix": topic_prefix,
        "quix": quix,
        "quix_changelog": quix_changelog,
    }
    emit(Report("baselines", params, metrics, Machine.current()), json_path)


def ensure_broker() -> str:
    """The local broker's bootstrap address, starting it when none runs."""
    import os

    config = broker.LocalBrokerConfig.from_env(os.environ)
    with contextlib.suppress(broker.BrokerError):
        state = broker.status(config)
        if state.running:
            return state.bootstrap
    return broker.start(config)
