"""Frozen settings of the producer, built at the edge (``kubedelta/cmd_produce.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from deltas import DEFAULT_TOPIC_PREFIX
from deltas.errors import ConfigError
from plumbing.backoff import Backoff
from plumbing.kafka import MAX_RECORD_BYTES, KafkaConnection

#: Kinds skipped unless included explicitly: Events are ephemeral, high-volume
#: notifications (and served twice, core and events.k8s.io); Leases renew every
#: few seconds per node and controller, pure heartbeat traffic for a resource cache.
#: Where Kubernetes mounts a Pod's ServiceAccount token and the cluster CA.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_EXCLUDED_KINDS: tuple[str, ...] = ("events", "events.events.k8s.io", "leases")


@dataclass(frozen=True, slots=True)
class ApiConnectionConfig:
    """How to reach the API server. Exactly one way wins: url, then kubeconfig, then in-cluster."""

    url: str | None = None  #: plain base URL (the simulator), no auth unless ``token`` is set
    token: str | None = field(default=None, repr=False)  #: bearer token for ``url``
    kubeconfig: str | None = None  #: path of a kubeconfig file
    context: str | None = None  #: kubeconfig context, None = current-context
    #: Where the in-cluster ServiceAccount is mounted (``token``, ``ca.crt``); used when
    #: neither url nor kubeconfig is set. The API server address comes from the
    #: KUBERNETES_SERVICE_HOST/PORT environment variables, as for every in-cluster client.
    service_account_dir: str = SERVICE_ACCOUNT_DIR


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """What to stream. Kind entries are ``name[.group]`` where name is the plural resource
    or the Kind (case-insensitive), e.g. ``pods``, ``Deployment.apps``, ``*.example.com``."""

    include_kinds: tuple[str, ...] = ()  #: empty = every listable+watchable kind
    exclude_kinds: tuple[str, ...] = DEFAULT_EXCLUDED_KINDS  #: applied after include
    include_namespaces: tuple[str, ...] = ()  #: empty = all; cluster-scoped kinds always pass
    exclude_namespaces: tuple[str, ...] = ()
    label_selector: str = ""  #: passed to the API server on every LIST and WATCH
    drop_secrets: bool = False  #: True: never list Secrets at all (not even redacted)


@dataclass(frozen=True, slots=True)
class StripConfig:
    """What is removed from objects before they are fingerprinted and sent."""

    #: Keep ``kubectl.kubernetes.io/last-applied-configuration`` (never on Secrets: it
    #: holds their data). Off by default: it duplicates the spec and doubles bytes.
    keep_last_applied: bool = False
    #: Drop ``lastHeartbeatTime`` from Node conditions: a liveness timestamp that
    #: changes every few minutes with no state change.
    strip_node_heartbeats: bool = True
    #: Key of the keyed BLAKE2b hash that replaces Secret data. Without a key the
    #: hash of a low-entropy secret can be guessed offline; set it in production.
    secret_hash_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """Reflector timing (client-go defaults unless noted)."""

    page_size: int = 500  #: LIST ``limit`` per page (client-go pager default)
    #: Server-side ``timeoutSeconds`` of each WATCH, drawn uniformly from [min, max]
    #: so thousands of watches do not reconnect in step (client-go: 5-10 min).
    watch_timeout_min_s: float = 300.0
    watch_timeout_max_s: float = 600.0
    #: A watch that delivers nothing (not even a bookmark) for this long is taken as
    #: a dead connection and reopened from its last resourceVersion.
    idle_timeout_s: float = 330.0
    request_timeout_s: float = 60.0  #: one LIST page or discovery request
    backoff: Backoff = field(default_factory=Backoff)  #: 0.8 s doubling to 30 s, jittered
    #: Kinds listed at the same time during (re)sync: bounds API server load and our
    #: memory (a page of 500 Pods is ~1 MB of JSON).
    list_concurrency: int = 2
    #: LISTs at the same time across all clusters of a process (multiplexed mode).
    #: Each holds a page (up to ~1.7 MB of JSON) and fills its sink faster than Kafka
    #: acknowledges: 250 clusters x ``list_concurrency`` at once took the process to
    #: ~1.4 GB RSS (250 x 1,000 objects). Measured at 100 x 1,000: 64 keeps the CPU
    #: of no bound and most of the memory saving of 16 (which cost ~10 % more CPU).
    process_list_concurrency: int = 64
    discovery_interval_s: float = 30.0  #: how often new/removed kinds (CRDs) are noticed

    def __post_init__(self) -> None:
        if not 0 < self.watch_timeout_min_s <= self.watch_timeout_max_s:
            raise ConfigError("watch timeouts need 0 < min <= max")
        if self.page_size < 1 or self.list_concurrency < 1 or self.process_list_concurrency < 1:
            raise ConfigError("page_size and list concurrencies must be >= 1")


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The cluster's topic, created when absent."""

    prefix: str = DEFAULT_TOPIC_PREFIX
    #: Used only when creating; an existing topic keeps its count. One: a cluster's changes
    #: are far below a partition's throughput, and every partition costs the broker and
    #: each consumer fetch (1,000 clusters x 1,000 objects: initial sync 133 s with 3, 110 s
    #: with 1; broker CPU 41 -> 22 s). More only to split one big cluster across shards.
    partitions: int = 1
    replication: int = 1  #: 3 in production (with min.insync.replicas=2)
    #: Records younger than this are never compacted away: the window of history
    #: that point-in-time reads can see (1 h).
    min_compaction_lag_ms: int = 3_600_000
    #: How long compaction keeps tombstones, so slow consumers still see deletes (1 day).
    delete_retention_ms: int = 86_400_000
    max_message_bytes: int = MAX_RECORD_BYTES  #: largest record batch the topic accepts

    def configs(self) -> dict[str, str]:
        return {
            "cleanup.policy": "compact",
            "min.compaction.lag.ms": str(self.min_compaction_lag_ms),
            "delete.retention.ms": str(self.delete_retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
        }


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """Kafka producer tuning and the bounded in-memory buffer."""

    compression: str = "zstd"  #: zstd or lz4 (docs/producer.md has the measurements)
    #: zstd level of the record batches. 1, not Kafka's 3: live batches hold one or a
    #: few records, where level 3 costs ~13.5 us per ~3 KiB object and level 1 ~11 at
    #: 1-2 % more bytes; on 300-record sync batches level 1 is ~0.7 us per object
    #: cheaper and no larger (docs/producer.md).
    zstd_level: int = 1
    linger_ms: float = 5.0  #: wait this long for more records before sending a batch
    max_batch_bytes: int = 1024 * 1024  #: uncompressed bytes per record batch
    #: Bound of records not yet acknowledged by Kafka. When reached, the watches
    #: pause (backpressure); nothing is dropped.
    buffer_max_records: int = 100_000
    buffer_max_bytes: int = 32 * 1024 * 1024  #: same, in encoded record bytes
    flush_timeout_s: float = 30.0  #: at SIGTERM, wait this long for acknowledgements
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial_s=0.2, cap_s=10.0)
    )  #: between failed sends

    def __post_init__(self) -> None:
        if self.compression not in ("zstd", "lz4", "gzip", "snappy", "none"):
            raise ConfigError(f"unknown compression {self.compression!r}")
        if not -7 <= self.zstd_level <= 22:
            raise ConfigError(f"zstd_level must be in [-7, 22], got {self.zstd_level}")
        if self.buffer_max_records < 1 or self.buffer_max_bytes < 1:
            raise ConfigError("buffer bounds must be >= 1")


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    """Everything one cluster's producer needs."""

    cluster: str  #: cluster id: names the topic ``<prefix>.<cluster>``
    kafka: KafkaConnection = field(default_factory=KafkaConnection)
    api: ApiConnectionConfig = field(default_factory=ApiConnectionConfig)
    topic: TopicConfig = field(default_factory=TopicConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    strip: StripConfig = field(default_factory=StripConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    #: Seconds between DIGEST records (one per partition); also sent after initial sync.
    digest_interval_s: float = 60.0
    #: Read the topic back at start so a restart sends only what changed.
    restore_from_topic: bool = True
