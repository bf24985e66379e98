"""Rebuild a view from Kafka: every cluster topic (or some) up to now, or up to an instant.

The stop offset of each partition is fixed when replay starts: the end offset
then (so records produced during the replay are not chased), or, with
``until``, the first offset whose timestamp is later than ``until``. Records are
applied with the same code as the live consumer, so a replay of the log the
live consumer read ends in the same view. Records the view refuses are counted,
not re-sent: the live consumer already put them in the dead-letter topic.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers import fast_records
from consumers.apply import BatchApplier, BatchOutcome
from consumers.config import ConsumerConfig
from consumers.errors import ConsumerConfigError, ReplayTargetError
from consumers.fetch_sessions import use_fetch_sessions
from consumers.metrics import ConsumerMetrics
from consumers.source import (
    consumer_kwargs,
    kafka_failure,
    list_partitions,
    to_source_records,
)
from deltas.errors import DeltaFormatError
from deltas.keys import cluster_from_topic, topic_for, topic_pattern
from plumbing.kafka import beginning_offsets, end_offsets, offsets_in_chunks, track_topics
from store import StoreOptions, View
from store.records import SourceRecord

#: Called with (records done, records total) as replay advances; offsets, so a
#: compacted partition's gaps count as done.
ProgressCallback = Callable[[int, int], None]

_DIGITS = re.compile(r"^[0-9]+$")


def parse_instant(text: str) -> int:
    """An instant as Unix milliseconds: digits are Unix ms, anything else ISO-8601
    (a time without an offset is UTC). Raises ConsumerConfigError on anything else."""
    raw = text.strip()
    if _DIGITS.match(raw):
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ConsumerConfigError(
            f"{text!r} is not a time: use ISO-8601 (2024-05-01T12:00:00Z) or Unix milliseconds"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    if ms < 0:
        raise ConsumerConfigError(f"{text!r} is before 1970: Kafka timestamps start there")
    return ms


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """What to rebuild and where."""

    consumer: ConsumerConfig  #: connection, fetch sizes, topic prefix; ``data_dir`` is the target
    #: Keep records with a Kafka timestamp <= this (Unix ms); None = everything up to now.
    until_ms: int | None = None
    clusters: tuple[str, ...] = ()  #: only these clusters; () = every cluster topic
    force: bool = False  #: empty a non-empty target folder instead of refusing


@dataclass(frozen=True, slots=True)
class ClusterSummary:
    """One row of the replay summary."""

    cluster: str
    objects: int  #: live objects in the rebuilt view
    partitions: int  #: partitions of the cluster's topic that were replayed
    verdict: str  #: last DIGEST check: "match", "mismatch" or "none"
    last_record_ms: int | None  #: Kafka timestamp of the last record applied


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    clusters: list[ClusterSummary]
    records: int  #: records read (applied + refused)
    rejected: int  #: records the view refused
    seconds: float  #: wall time of the whole replay
    stop_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def prepare_target(path: Path, force: bool) -> None:
    """Refuse to replay over existing data unless forced; forced: empty the folder."""
    if path.exists() and not path.is_dir():
        raise ReplayTargetError(f"{path} exists and is not a folder")
    if path.exists() and any(path.iterdir()):
        if not force:
            raise ReplayTargetError(
                f"{path} is not empty; replay builds a fresh view (pass --force to empty it)"
            )
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)


def select_topics(topics: Iterable[str], prefix: str, clusters: Sequence[str]) -> list[str]:
    """Cluster topics under ``prefix``, restricted to ``clusters`` when given."""
    pattern = re.compile(topic_pattern(prefix))
    ours = sorted(t for t in topics if pattern.match(t))
    if not clusters:
        return ours
    try:
        wanted = [topic_for(c, prefix) for c in clusters]
    except DeltaFormatError as exc:
        raise ConsumerConfigError(str(exc)) from exc
    missing = sorted(set(wanted) - set(ours))
    if missing:
        raise ConsumerConfigError(f"no topic for cluster(s): {', '.join(missing)}")
    return sorted(set(wanted))


def cut_at_stop(records: list[SourceRecord], stop: int) -> tuple[list[SourceRecord], bool]:
    """Records of one partition below ``stop`` and whether the stop was reached."""
    if not records or records[-1].offset < stop - 1:
        return records, False
    kept = [r for r in records if r.offset < stop]
    return kept, True


class Replayer:
    """One replay run: plan the offsets, read up to them, apply, summarize."""

    def __init__(
        self,
        config: ReplayConfig,
        store_options: StoreOptions,
        progress: ProgressCallback | None = None,
    ) -> None:
        self._config = config
        self._options = store_options
        self._progress = progress or (lambda done, total: None)

    async def run(self) -> ReplaySummary:
        started = time.monotonic()
        cfg = self._config.consumer
        prepare_target(cfg.data_dir, self._config.force)
        if cfg.fast_records:
            fast_records.install()
        consumer = AIOKafkaConsumer(
            **consumer_kwargs(cfg), **fast_records.consumer_options(cfg.fast_records)
        )
        try:
            await consumer.start()
            use_fetch_sessions(consumer, cfg.fetch_sessions)
            plan = await self._plan_offsets(consumer)
            view = View.open(cfg.data_dir, self._options)
            try:
                outcome = await self._read(consumer, view, plan)
                rows = self._summarize(view, plan)
            finally:
                view.close()
        except KafkaError as exc:
            raise kafka_failure(exc, "replay could not read from Kafka") from exc
        finally:
            await consumer.stop()
        return ReplaySummary(
            clusters=rows,
            records=outcome.records,
            rejected=outcome.rejected,
            seconds=time.monotonic() - started,
            stop_offsets={(tp.topic, tp.partition): s for tp, (_, s) in plan.items()},
        )

    async def _plan_offsets(
        self, consumer: AIOKafkaConsumer
    ) -> dict[TopicPartition, tuple[int, int]]:
        """(first offset, stop offset) per partition, fixed before reading anything."""
        cfg = self._config.consumer
        partitions = await list_partitions(consumer)
        topics = select_topics(partitions, cfg.topic_prefix, self._config.clusters)
        tps = [TopicPartition(t, p) for t in topics for p in sorted(partitions[t])]
        if not tps:
            return {}
        await track_topics(consumer, topics)
        begins = await beginning_offsets(consumer, tps)
        ends = await end_offsets(consumer, tps)
        stops = dict(ends)
        if self._config.until_ms is not None:
            # First record strictly after `until`: everything before it is kept.
            after = self._config.until_ms + 1
            found = await offsets_in_chunks(
                lambda c: consumer.offsets_for_times(dict.fromkeys(c, after)), tps
            )
            for tp, hit in found.items():
                if hit is not None:
                    stops[tp] = min(stops[tp], hit.offset)
        return {tp: (begins[tp], max(begins[tp], stops[tp])) for tp in tps}

    async def _read(
        self,
        consumer: AIOKafkaConsumer,
        view: View,
        plan: dict[TopicPartition, tuple[int, int]],
    ) -> BatchOutcome:
        cfg = self._config.consumer
        applier = BatchApplier(
            view,
            ConsumerMetrics(),
            topic_prefix=cfg.topic_prefix,
            dead_letters=None,
            max_records=cfg.batch_max_records,
            max_bytes=cfg.batch_max_bytes,
        )
        # A rebuild reads everything once: no WAL (half the write cost); closing the view
        # persists it (atomic flush), and a crash leaves a consistent earlier prefix.
        view.begin_bulk()
        total = sum(stop - begin for begin, stop in plan.values())
        done = 0
        self._progress(done, total)
        pending = {tp for tp, (begin, stop) in plan.items() if stop > begin}
        consumer.assign(sorted(pending))
        for tp in pending:
            consumer.seek(tp, plan[tp][0])
        positions = {tp: plan[tp][0] for tp in pending}
        outcome = BatchOutcome()
        while pending:
            batches = await consumer.getmany(
                timeout_ms=cfg.getmany_timeout_ms, max_records=cfg.batch_max_records
            )
            records: list[SourceRecord] = []
            for tp, messages in batches.items():
                if tp not in pending:
                    continue
                stop = plan[tp][1]
                kept, reached = cut_at_stop(to_source_records({tp: messages}), stop)
                records.extend(kept)
                if kept:
                    done += kept[-1].offset + 1 - positions[tp]
                    positions[tp] = kept[-1].offset + 1
                if reached:
                    self._finish(consumer, tp, positions, stop, pending)
                    done += stop - positions[tp]
                    positions[tp] = stop
            if records:
                part = await applier.apply(records)
                outcome.records += part.records
                outcome.rejected += part.rejected
                outcome.applied += part.applied
            # Compaction can leave no record at stop - 1: ask where the client is.
            for tp in [tp for tp in pending if tp not in batches]:
                position = await consumer.position(tp)
                if position >= plan[tp][1]:
                    self._finish(consumer, tp, positions, plan[tp][1], pending)
                    done += plan[tp][1] - positions[tp]
                    positions[tp] = plan[tp][1]
            self._progress(done, total)
        return outcome

    @staticmethod
    def _finish(
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        positions: dict[TopicPartition, int],
        stop: int,
        pending: set[TopicPartition],
    ) -> None:
        consumer.pause(tp)
        pending.discard(tp)

    def _summarize(
        self, view: View, plan: dict[TopicPartition, tuple[int, int]]
    ) -> list[ClusterSummary]:
        prefix = self._config.consumer.topic_prefix
        partitions: dict[str, int] = {}
        for tp in plan:
            cluster = cluster_from_topic(tp.topic, prefix)
            partitions[cluster] = partitions.get(cluster, 0) + 1
        rows = []
        for cluster in sorted(partitions):
            status = view.cluster_status(cluster)
            if status is None:
                rows.append(ClusterSummary(cluster, 0, partitions[cluster], "none", None))
                continue
            verdict = status.last_verdict
            rows.append(
                ClusterSummary(
                    cluster=cluster,
                    objects=status.object_count,
                    partitions=partitions[cluster],
                    verdict="none"
                    if verdict is None
                    else ("match" if verdict.matches else "mismatch"),
                    last_record_ms=status.last_record_time_ms or None,
                )
            )
        return rows
