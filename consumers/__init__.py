"""Consumers: materialize the cluster topics into the RocksDB view.

``Consumer`` is the live loop (replica or shard mode), ``Replayer`` rebuilds a
view from Kafka, ``ViewFollower`` keeps a read-only view of another process's
store fresh. docs/consumers.md explains the guarantees.
"""

from consumers.apply import BatchApplier, BatchOutcome
from consumers.config import ConsumerConfig, ConsumerMode
from consumers.deadletter import DeadLetterSink
from consumers.errors import (
    ConsumerConfigError,
    ConsumerError,
    DeadLetterError,
    KafkaFetchError,
    ReplayTargetError,
)
from consumers.metrics import ConsumerMetrics
from consumers.readers import FollowerConfig, ViewFollower
from consumers.replay import (
    ClusterSummary,
    ReplayConfig,
    Replayer,
    ReplaySummary,
    parse_instant,
)
from consumers.runner import Consumer
from consumers.tuning import tune_gc

__all__ = [
    "BatchApplier",
    "BatchOutcome",
    "ClusterSummary",
    "Consumer",
    "ConsumerConfig",
    "ConsumerConfigError",
    "ConsumerError",
    "ConsumerMetrics",
    "ConsumerMode",
    "DeadLetterError",
    "DeadLetterSink",
    "FollowerConfig",
    "KafkaFetchError",
    "ReplayConfig",
    "ReplaySummary",
    "ReplayTargetError",
    "Replayer",
    "ViewFollower",
    "parse_instant",
    "tune_gc",
]
