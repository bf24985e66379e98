"""Prometheus metrics of one consumer, on its own registry (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumers.fetch_sessions import SessionCounts

#: Batch sizes in records: from a trickle to the largest batch a pass commits.
BATCH_RECORD_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000)
#: WriteBatch latencies in seconds: sub-millisecond to a stalled disk.
WRITE_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
#: Seconds; past a minute the consumer is catching up, where the lag gauge says more.
COMMIT_DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30, 60)


class ConsumerMetrics:
    """What an operator needs to see: lag, throughput, batch shape, write latency, poison."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.lag = Gauge(
            "kubedelta_consumer_lag_records",
            "Records in the cluster topic not yet in the view (high watermark - next offset)",
            ["cluster"],
            registry=self.registry,
        )
        self.applied = Counter(
            "kubedelta_consumer_deltas_applied",
            "Records committed to the view (upserts, deletes and control records)",
            ["cluster"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "kubedelta_consumer_deltas_skipped",
            "Records the view skipped: already applied, or superseded within the batch",
            registry=self.registry,
        )
        self.batch_records = Histogram(
            "kubedelta_consumer_batch_records",
            "Records per committed WriteBatch",
            buckets=BATCH_RECORD_BUCKETS,
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "kubedelta_consumer_write_seconds",
            "Time to plan and commit one WriteBatch (data, indexes and offsets)",
            buckets=WRITE_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.commit_delay_seconds = Histogram(
            "kubedelta_consumer_commit_delay_seconds",
            "Per WriteBatch: from its oldest record's Kafka timestamp (the producer's send)"
            " to the commit, i.e. how stale the freshest view was before it",
            buckets=COMMIT_DELAY_BUCKETS,
            registry=self.registry,
        )
        self.dead_letter = Counter(
            "kubedelta_consumer_dead_letter",
            "Records rejected by the view and acknowledged by the dead-letter topic",
            ["cluster"],
            registry=self.registry,
        )
        self.digest_checks = Counter(
            "kubedelta_consumer_digest_checks",
            "DIGEST records compared with the view",
            ["cluster"],
            registry=self.registry,
        )
        self.digest_mismatches = Counter(
            "kubedelta_consumer_digest_mismatches",
            "DIGEST records whose count/hash differ from what the view holds",
            ["cluster"],
            registry=self.registry,
        )
        self.forgotten_partitions = Counter(
            "kubedelta_consumer_forgotten_partitions",
            "Partitions dropped from this shard's view after a rebalance moved them away",
            registry=self.registry,
        )
        self.retries = Counter(
            "kubedelta_consumer_retries",
            "Passes that failed with a retriable error and were retried after a backoff",
            registry=self.registry,
        )
        self.caught_up = Gauge(
            "kubedelta_consumer_caught_up",
            "1 once the view holds every record that was in the topics when the consumer started",
            registry=self.registry,
        )
        self.l0_files = Gauge(
            "kubedelta_store_l0_files",
            "SST files in level 0 of the view's column family: compactions not done yet "
            "(writes slow down 16 files above StoreOptions.bulk_l0_compaction_trigger)",
            ["cf"],
            registry=self.registry,
        )
        self.fetch_requests = Counter(
            "kubedelta_consumer_fetch_requests",
            "Fetch requests sent: full (naming every partition) or incremental (a fetch"
            " session's, naming only partitions whose offset changed)",
            ["kind"],
            registry=self.registry,
        )
        self.fetch_partitions_named = Counter(
            "kubedelta_consumer_fetch_partitions_named",
            "Partitions named in fetch requests (a full request names every partition)",
            registry=self.registry,
        )
        self.fetch_session_resets = Counter(
            "kubedelta_consumer_fetch_session_resets",
            "Fetch sessions dropped after an error and made anew with a full request",
            registry=self.registry,
        )
        self._session_counts = SessionCounts()
        self.bulk = Gauge(
            "kubedelta_consumer_bulk_writes",
            "1 while commits skip the write-ahead log to catch up (readers see flushed data only)",
            registry=self.registry,
        )

    def observe_fetch_sessions(self, counts: SessionCounts) -> None:
        """Advance the fetch counters to ``counts`` (totals since the consumer started)."""
        last, self._session_counts = self._session_counts, counts
        if counts.full_requests + counts.incremental_requests < (
            last.full_requests + last.incremental_requests
        ):
            last = SessionCounts()  # a new Kafka client: its counts start from zero
        self.fetch_requests.labels("full").inc(counts.full_requests - last.full_requests)
        self.fetch_requests.labels("incremental").inc(
            counts.incremental_requests - last.incremental_requests
        )
        self.fetch_partitions_named.inc(counts.partitions_named - last.partitions_named)
        self.fetch_session_resets.inc(counts.resets - last.resets)
