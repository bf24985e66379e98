"""Consumer settings: one frozen value built at the edge (``kubedelta/``) and passed down."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from consumers.errors import ConsumerConfigError
from deltas.keys import DEAD_LETTER_TOPIC, DEFAULT_TOPIC_PREFIX
from plumbing.backoff import Backoff
from plumbing.kafka import MAX_RECORD_BYTES, KafkaConnection

MIB = 1024 * 1024
#: Records per pass; see ConsumerConfig.batch_max_records for the measurement behind it.
DEFAULT_BATCH_MAX_RECORDS = 2_000


class ConsumerMode(enum.StrEnum):
    """How consumers share the cluster topics."""

    #: No consumer group: every consumer reads every partition of every cluster
    #: topic and holds the whole view (scale reads by adding replicas).
    REPLICA = "replica"
    #: A real consumer group: partitions are split between the members, each
    #: holds the part of the view its partitions carry (scale writes).
    SHARD = "shard"


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Everything a consumer process needs. Sizes in bytes, durations in milliseconds."""

    data_dir: Path  #: the RocksDB view this consumer owns (single writer)
    connection: KafkaConnection = field(default_factory=KafkaConnection)  #: brokers + security
    mode: ConsumerMode = ConsumerMode.REPLICA  #: see ConsumerMode
    #: Kafka consumer group; required in shard mode. In replica mode it is unused:
    #: replicas take no group, so they never split or commit anything.
    group_id: str | None = None
    topic_prefix: str = DEFAULT_TOPIC_PREFIX  #: cluster topics are ``<prefix>.<cluster>``
    dead_letter_topic: str = DEAD_LETTER_TOPIC  #: where rejected records go (created if absent)
    #: Replication of the dead-letter topic when we create it (3 in production).
    dead_letter_replication: int = 1
    #: Most records one pass fetches and commits: bounds one WriteBatch and the memory of
    #: a pass. Measured with ~2.5 KB Pods: CPU per record is flat from 1,000 to 20,000
    #: records, peak RSS is not (~510 MB at 20,000; at 1M records ~395-410 MB at 5,000,
    #: ~348 MB at 2,000: a record in flight costs ~17 KB of peak, its value copied into
    #: the growing WriteBatch among others; docs/benchmarks.md, Consume, session 6).
    batch_max_records: int = DEFAULT_BATCH_MAX_RECORDS
    #: Most records per WriteBatch once commits go through the WAL (a live consumer, not
    #: a bulk catch-up): a fetch of up to ``batch_max_records`` is committed in pieces
    #: this size, so its first changes reach readers before the rest is planned.
    live_batch_max_records: int = 500
    #: ... while fewer than this many records are behind (summed over the consumer's
    #: partitions, refreshed every ``lag_refresh_s``). Further behind, a fetch is one
    #: WriteBatch again: pieces cost per commit (at 1,000 clusters a piece touches the
    #: metadata of hundreds of clusters), and throughput is what a backlog needs.
    live_batch_behind_records: int = 10_000
    #: Most value bytes in one WriteBatch; a pass splits a larger fetch into several commits.
    batch_max_bytes: int = 64 * MIB
    #: Most bytes one fetch response may carry (all partitions together).
    fetch_max_bytes: int = 16 * MIB
    #: Most bytes per partition per fetch. aiokafka keeps a fetched response per partition
    #: until it is consumed, so while catching up it buffers up to
    #: partitions x this (compressed): 128 partitions x 8 MiB took a 1M-record catch-up to
    #: 700 MB RSS, 512 KiB kept it under 400 MB and was faster. A record batch larger than
    #: this still arrives whole (brokers return the first batch of a partition regardless).
    max_partition_fetch_bytes: int = 512 * 1024
    #: Bytes the broker gathers before answering a fetch, unless ``fetch_max_wait_ms``
    #: passes first. Every fetch names every assigned partition: at 3,000 partitions a
    #: fetch costs milliseconds of CPU whatever it carries. 64 KiB was tried: at 1,000
    #: clusters x 200 objects it cut consumer/broker CPU (34.7 -> 28.8 s, 39 -> 28 s),
    #: at 1,000 x 1,000 it did not (consumer 163 -> 169 s) while the e2e p50 rose by the
    #: wait (169 -> 257 ms). Kept at 1 byte (aiokafka's default); raise it for a
    #: consumer that serves many quiet partitions and can afford the wait.
    fetch_min_bytes: int = 1
    #: Longest the broker holds a fetch for ``fetch_min_bytes``, ms: the most a trickle
    #: of changes waits in the broker.
    fetch_max_wait_ms: int = 100
    #: Incremental fetch sessions (KIP-227, consumers/fetch_sessions.py): a request
    #: names only partitions whose offset changed and the broker answers only for those
    #: with news, instead of every partition both ways every time. At 1,000 quiet
    #: cluster topics the full requests were ~90 % of the consumer's CPU. Off: aiokafka's
    #: own full requests.
    fetch_sessions: bool = True
    #: Fetched record batches become SourceRecords in C (consumers/fast_records.py)
    #: instead of aiokafka's per-record ConsumerRecords converted in Python: ~2 us less
    #: of the consumer's one thread per record. Off: aiokafka's record path.
    fast_records: bool = True
    #: How long getmany waits for data when the prefetch buffer is empty.
    getmany_timeout_ms: int = 500
    #: How often the topic list is refreshed, so a new cluster's topic is picked up
    #: without a restart (Kafka's default of 5 minutes is too slow to onboard a cluster).
    metadata_refresh_ms: int = 2_000
    #: Shard mode: a member silent this long is dropped from the group.
    session_timeout_ms: int = 30_000
    #: Shard mode: heartbeat interval (a third of the session timeout, Kafka's advice).
    heartbeat_interval_ms: int = 3_000
    #: Shard mode: most time between two polls before the member is considered stuck.
    max_poll_interval_ms: int = 300_000
    #: Metrics/health port on ``metrics_host``; None serves nothing, 0 picks a free port.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  #: bind address of the metrics endpoint
    #: Seconds between refreshes of lag, readiness and the stored offsets it reads
    #: (no broker round trip: high watermarks come with every fetch response).
    lag_refresh_s: float = 1.0
    #: Records still to read for the first catch-up (the end offsets seen at start) at or
    #: above which the view commits without the WAL (``View.begin_bulk``: about half the
    #: write cost) until the consumer is ready; then everything is persisted and the WAL
    #: is on for good, so readiness implies readers see the data. 0 never skips the WAL.
    bulk_catch_up_records: int = 20_000
    #: Once ready, records behind (summed over this consumer's partitions) at or above
    #: which it commits without the WAL again, until it is back within a tenth of this.
    #: Only a flood gets there (at 10,000 changes/s, 10 s behind): a burst of a few seconds
    #: stays logged and visible record by record. So far behind, readers already lag by
    #: seconds; bulk writes reach them at each flush (~15k Pods) and cost the writer ~25 %
    #: less, and readers nothing to replay (a 1M-object initial sync on 2 cores: the
    #: consumer's backlog after the producers' LIST phase, docs/benchmarks.md). 0: never.
    bulk_behind_records: int = 100_000
    #: Seconds between glibc ``malloc_trim`` calls (0: never). Batches of ~2.5 KB values
    #: and RocksDB memtables churn the C heap; trimming returns the freed pages
    #: (measured at 1M records: peak RSS 412 -> 375 MB). No effect without glibc.
    malloc_trim_interval_s: float = 2.0
    backoff: Backoff = field(default_factory=Backoff)  #: retry delays of the run loop
    #: Largest record value accepted from or sent to Kafka.
    max_record_bytes: int = MAX_RECORD_BYTES

    def __post_init__(self) -> None:
        if self.mode is ConsumerMode.SHARD and not self.group_id:
            raise ConsumerConfigError("shard mode needs a consumer group (--group)")
        for name in (
            "batch_max_records",
            "live_batch_max_records",
            "live_batch_behind_records",
            "batch_max_bytes",
            "fetch_max_bytes",
            "fetch_min_bytes",
            "fetch_max_wait_ms",
            "max_partition_fetch_bytes",
            "metadata_refresh_ms",
        ):
            if getattr(self, name) < 1:
                raise ConsumerConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.getmany_timeout_ms < 0:
            raise ConsumerConfigError("getmany_timeout_ms must not be negative")
        if self.bulk_catch_up_records < 0:
            raise ConsumerConfigError("bulk_catch_up_records must not be negative")
        if self.bulk_behind_records < 0:
            raise ConsumerConfigError("bulk_behind_records must not be negative")
