"""Prometheus metrics of the producer, on a registry the caller owns (no globals).

Label children are bound once per kind so the hot path does no label lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_observed = Counter(
            "kubedelta_producer_events_observed",
            "Objects seen from the API server (listed or watched), by event type",
            ["cluster", "kind", "event"],
            registry=registry,
        )
        self.records_sent = Counter(
            "kubedelta_producer_records_sent",
            "Records handed to the Kafka sink (never dropped afterwards), by op",
            ["cluster", "kind", "op"],
            registry=registry,
        )
        self.events_suppressed = Counter(
            "kubedelta_producer_events_suppressed",
            "Observed changes not sent: unchanged content, filtered namespace, unknown delete",
            ["cluster", "kind", "reason"],
            registry=registry,
        )
        self.relists = Counter(
            "kubedelta_producer_relists",
            "LISTs of a kind: initial, after 410 Gone, ...",
            ["cluster", "kind", "reason"],
            registry=registry,
        )
        self.watch_restarts = Counter(
            "kubedelta_producer_watch_restarts",
            "Watches reopened, by reason (timeout, idle, error, throttled, gone)",
            ["cluster", "kind", "reason"],
            registry=registry,
        )
        self.records_acked = Counter(
            "kubedelta_producer_records_acked",
            "Records acknowledged by Kafka",
            ["cluster"],
            registry=registry,
        )
        self.bytes_sent = Counter(
            "kubedelta_producer_record_bytes_acked",
            "Key+value bytes of acknowledged records, before compression",
            ["cluster"],
            registry=registry,
        )
        self.batch_bytes = Counter(
            "kubedelta_producer_batch_bytes_acked",
            "Bytes of acknowledged record batches as sent on the wire (compressed)",
            ["cluster"],
            registry=registry,
        )
        self.send_failures = Counter(
            "kubedelta_producer_send_failures",
            "Record batches that failed and were queued again",
            ["cluster"],
            registry=registry,
        )
        self.records_rejected = Counter(
            "kubedelta_producer_records_rejected",
            "Records Kafka refused for good (e.g. larger than max.message.bytes); logged",
            ["cluster"],
            registry=registry,
        )
        self.ack_latency = Histogram(
            "kubedelta_producer_ack_latency_seconds",
            "From observing a change (watch event, list item) to Kafka's acknowledgement; "
            "one observation per record batch, its oldest record",
            ["cluster"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.buffer_records = Gauge(
            "kubedelta_producer_buffer_records",
            "Records waiting for or in flight to Kafka",
            ["cluster"],
            registry=registry,
        )
        self.buffer_bytes = Gauge(
            "kubedelta_producer_buffer_bytes",
            "Encoded bytes waiting for or in flight to Kafka",
            ["cluster"],
            registry=registry,
        )
        self.backpressure_waits = Counter(
            "kubedelta_producer_backpressure_waits",
            "Times a watch paused because the buffer was full",
            ["cluster"],
            registry=registry,
        )
        self.objects = Gauge(
            "kubedelta_producer_objects",
            "Live objects the topic holds, by kind",
            ["cluster", "kind"],
            registry=registry,
        )
        self.kinds_watched = Gauge(
            "kubedelta_producer_kinds_watched",
            "Kinds being listed and watched",
            ["cluster"],
            registry=registry,
        )
        self.restored_objects = Gauge(
            "kubedelta_producer_restored_objects",
            "Objects read back from the topic at start",
            ["cluster"],
            registry=registry,
        )

    def for_kind(self, cluster: str, kind: str) -> KindMetrics:
        return KindMetrics(
            listed=self.events_observed.labels(cluster, kind, "LISTED"),
            added=self.events_observed.labels(cluster, kind, "ADDED"),
            modified=self.events_observed.labels(cluster, kind, "MODIFIED"),
            deleted=self.events_observed.labels(cluster, kind, "DELETED"),
            sent_upsert=self.records_sent.labels(cluster, kind, "upsert"),
            sent_delete=self.records_sent.labels(cluster, kind, "delete"),
            unchanged=self.events_suppressed.labels(cluster, kind, "unchanged"),
            filtered=self.events_suppressed.labels(cluster, kind, "filtered"),
            unknown_delete=self.events_suppressed.labels(cluster, kind, "unknown_delete"),
            objects=self.objects.labels(cluster, kind),
        )


@dataclass(frozen=True, slots=True)
class KindMetrics:
    """Pre-bound children for one kind of one cluster."""

    listed: Counter
    added: Counter
    modified: Counter
    deleted: Counter
    sent_upsert: Counter
    sent_delete: Counter
    unchanged: Counter
    filtered: Counter
    unknown_delete: Counter
    objects: Gauge
