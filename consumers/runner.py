"""The live consumer: a trivial retry loop around one testable pass.

run()       retry loop: pass, pass, ...; on a retriable error close the Kafka
            consumer, back off, and start again from the offsets in the view
run_pass()  fetch -> (hold the batch lock) plan -> dead letters -> commit
TopicSource / DeadLetterSink / View    the thin I/O underneath
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from consumers.apply import BatchApplier, BatchOutcome, CommitObserver, _ClusterNames
from consumers.config import ConsumerConfig
from consumers.deadletter import DeadLetterSink
from consumers.metrics import ConsumerMetrics
from consumers.progress import CatchUp, Partition, lag_by_cluster, wants_bulk
from consumers.source import TopicSource
from consumers.tuning import malloc_trimmer
from deltas.errors import KubedeltaError
from plumbing.health import HealthServer, HealthServerConfig
from store import View

log = logging.getLogger(__name__)


class Consumer:
    """Materializes the cluster topics into one view. Owns the view while it runs."""

    def __init__(
        self,
        config: ConsumerConfig,
        view: View,
        *,
        metrics: ConsumerMetrics | None = None,
        observer: CommitObserver | None = None,
    ) -> None:
        self.config = config
        self.view = view
        self.metrics = metrics if metrics is not None else ConsumerMetrics()
        self.dead_letters = DeadLetterSink(
            config.connection,
            config.dead_letter_topic,
            replication=config.dead_letter_replication,
            max_record_bytes=config.max_record_bytes,
        )
        self.source = TopicSource(config, view.resume_offsets, self._forget)
        self.applier = BatchApplier(
            view,
            self.metrics,
            topic_prefix=config.topic_prefix,
            dead_letters=self.dead_letters,
            max_records=config.batch_max_records,
            max_bytes=config.batch_max_bytes,
            live_max_records=config.live_batch_max_records,
            observer=observer,
        )
        self.catch_up = CatchUp()
        self._was_ready = False  #: readiness at the last status refresh
        self._cluster_of = _ClusterNames(config.topic_prefix)
        self._next_status_at = 0.0
        self._trim = malloc_trimmer() if config.malloc_trim_interval_s > 0 else None
        self._next_trim_at = 0.0
        self._health: HealthServer | None = None
        self.totals = BatchOutcome()  #: everything committed since start

    @property
    def ready(self) -> bool:
        return self.catch_up.ready

    @property
    def metrics_url(self) -> str | None:
        return f"http://{self.config.metrics_host}:{self._health.port}" if self._health else None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve metrics, create the dead-letter topic, connect to Kafka."""
        if self.config.metrics_port is not None and self._health is None:
            self._health = HealthServer(
                HealthServerConfig(self.config.metrics_host, self.config.metrics_port),
                self.metrics.registry,
                ready=lambda: self.catch_up.ready,
            )
            await self._health.start()
        await self.dead_letters.start()
        await self.source.start()

    async def close(self) -> None:
        """Leave the group (the in-flight batch commits first), stop serving. The view
        stays open: its owner closes it."""
        await self.source.stop()
        await self.dead_letters.stop()
        if self._health is not None:
            await self._health.stop()
            self._health = None

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; retriable errors back off and resume
        from the view's offsets. The pass in progress when ``stop`` is set completes."""
        attempt = 0
        while not stop.is_set():
            try:
                await self.start()
                await self.run_pass()
                attempt = 0
            except KubedeltaError as exc:
                if not exc.retriable:
                    raise
                delay = self.config.backoff.delay(attempt)
                attempt += 1
                self.metrics.retries.inc()
                log.warning("consumer pass failed, retrying in %.1fs: %s", delay, exc)
                # Positions in the Kafka client may be past what the view holds:
                # drop the client, the next start seeks to the stored offsets.
                await self.source.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    # -- one pass -------------------------------------------------------------------------

    async def run_pass(self) -> BatchOutcome:
        """Fetch once and commit what was fetched."""
        cpu = self.applier.cpu
        cpu_started = time.thread_time()
        records = await self.source.fetch()
        cpu.fetch_s += time.thread_time() - cpu_started
        outcome = BatchOutcome()
        if records:
            async with self.source.hold():
                outcome = await self.applier.apply(records)
            self._add_totals(outcome)
        status_started = time.thread_time()
        await self._refresh_status()
        self._maybe_trim()
        cpu.other_s += time.thread_time() - status_started
        return outcome

    def _add_totals(self, outcome: BatchOutcome) -> None:
        t = self.totals
        t.records += outcome.records
        t.applied += outcome.applied
        t.skipped += outcome.skipped
        t.rejected += outcome.rejected
        t.commits += outcome.commits
        t.offsets.update(outcome.offsets)
        if outcome.verdicts:
            t.verdicts = outcome.verdicts[-1:]

    def _choose_write_mode(self, ready: bool, remaining: int, behind: int) -> None:
        """Bulk (no WAL) during a first catch-up of ``bulk_catch_up_records`` or more;
        everything persisted and the WAL on again the moment the consumer is ready (no
        await in between: /readyz cannot report ready before readers see the data).
        After that, bulk only while ``bulk_behind_records`` or more behind: a live
        consumer that falls behind by a burst stays visible record by record (at 10k
        changes/s on a saturated machine, bulk at 20k behind held changes back for
        seconds), one facing a flood catches up faster (``progress.wants_bulk``)."""
        view = self.view
        became_ready = ready and not self._was_ready
        self._was_ready = ready
        bulk = wants_bulk(
            bulk=view.bulk,
            became_ready=became_ready,
            ready=ready,
            remaining=remaining,
            behind=behind,
            catch_up_records=self.config.bulk_catch_up_records,
            behind_records=self.config.bulk_behind_records,
        )
        if bulk and not view.bulk:
            view.begin_bulk()
            self.metrics.bulk.set(1)
            if ready:
                log.info("%d records behind: committing without the write-ahead log", behind)
            else:
                log.info(
                    "%d records to catch up: committing without the write-ahead log", remaining
                )
        elif view.bulk and not bulk:
            view.end_bulk()
            self.metrics.bulk.set(0)
            log.info("caught up: bulk writes persisted, write-ahead log on")

    def _maybe_trim(self) -> None:
        if self._trim is None:
            return
        now = time.monotonic()
        if now >= self._next_trim_at:
            self._next_trim_at = now + self.config.malloc_trim_interval_s
            self._trim()

    def _forget(self, partitions: set[Partition]) -> None:
        """Shard mode: drop the data of partitions another member now owns."""
        log.info("forgetting %d partition(s) moved to other shards", len(partitions))
        self.view.forget_partitions(sorted(partitions))
        self.metrics.forgotten_partitions.inc(len(partitions))

    async def _refresh_status(self) -> None:
        """Readiness, lag and the store's L0 files, at most every ``lag_refresh_s``."""
        now = time.monotonic()
        if now < self._next_status_at or not self.source.assigned_event.is_set():
            return
        self._next_status_at = now + self.config.lag_refresh_s
        assigned = self.source.assigned
        owned = {(tp.topic, tp.partition) for tp in assigned}
        if not self.catch_up.has_targets:
            ends = await self.source.end_offsets(assigned)
            self.catch_up.set_targets({(tp.topic, tp.partition): o for tp, o in ends.items()})
        self.catch_up.keep_only(owned)
        stored = self.view.resume_offsets()  # in memory: no store read
        ready = self.catch_up.update(stored)
        highwaters: Mapping[Partition, int | None] = {
            (tp.topic, tp.partition): self.source.highwater(tp) for tp in assigned
        }
        lags = lag_by_cluster(highwaters, stored, self._cluster_of)
        behind = sum(lags.values())
        self._choose_write_mode(ready, self.catch_up.remaining(stored), behind)
        self.applier.caught_up = ready and behind < self.config.live_batch_behind_records
        self.metrics.caught_up.set(1 if ready else 0)
        for cluster, lag in lags.items():
            self.metrics.lag.labels(cluster).set(lag)
        for cf, files in self.view.l0_files().items():
            self.metrics.l0_files.labels(cf).set(files)
        if self.source.fetch_client is not None:
            self.metrics.observe_fetch_sessions(self.source.fetch_client.counts())
