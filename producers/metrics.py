"""Prometheus metrics of the producer, on a registry the caller owns (no globals).

Per-cluster metrics are prometheus_client children. Per-kind ones (18 series per
cluster and kind) are plain :class:`Tally` values that a collector reads at scrape
time: the event loop that updates them is single-threaded, and building 18 labelled
children per kind (validation, a lock and a value object each) was a large part of a
multiplexed producer's start-up, at 1,000 clusters, and of its scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
        self._kinds = _KindCollector()
        registry.register(self._kinds)

    def for_kind(self, cluster: str, kind: str) -> KindMetrics:
        """The per-kind series of ``kind`` in ``cluster``; the same object on every call
        (the emitter and the reflector of a kind share it)."""
        return self._kinds.for_kind(cluster, kind)


class Tally:
    """One series' value. Updated by the event loop, read by the collector (a float
    read or write is atomic under the GIL)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


RELIST_REASONS = ("initial", "gone", "retry")
RESTART_REASONS = ("timeout", "idle", "error", "throttled", "gone")


def _tallies(names: tuple[str, ...]) -> dict[str, Tally]:
    return {name: Tally() for name in names}


@dataclass(frozen=True, slots=True)
class KindMetrics:
    """The series of one kind of one cluster."""

    listed: Tally = field(default_factory=Tally)
    added: Tally = field(default_factory=Tally)
    modified: Tally = field(default_factory=Tally)
    deleted: Tally = field(default_factory=Tally)
    sent_upsert: Tally = field(default_factory=Tally)
    sent_delete: Tally = field(default_factory=Tally)
    unchanged: Tally = field(default_factory=Tally)
    filtered: Tally = field(default_factory=Tally)
    unknown_delete: Tally = field(default_factory=Tally)
    objects: Tally = field(default_factory=Tally)  #: a gauge
    #: LISTs by reason (RELIST_REASONS) and watch restarts by reason (RESTART_REASONS)
    relists: Mapping[str, Tally] = field(default_factory=lambda: _tallies(RELIST_REASONS))
    restarts: Mapping[str, Tally] = field(default_factory=lambda: _tallies(RESTART_REASONS))


class _KindCollector(Collector):
    """Exposes every KindMetrics as the families prometheus_client children would give."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, str], KindMetrics] = {}

    def for_kind(self, cluster: str, kind: str) -> KindMetrics:
        found = self._kinds.get((cluster, kind))
        if found is None:
            found = self._kinds[(cluster, kind)] = KindMetrics()
        return found

    def collect(self) -> Iterator[Metric]:
        kinds = list(self._kinds.items())  # a scrape may run beside the event loop
        for name, text, label, series in _COUNTERS:
            family = CounterMetricFamily(name, text, labels=["cluster", "kind", label])
            for (cluster, kind), m in kinds:
                for value, attribute in series:
                    family.add_metric([cluster, kind, value], getattr(m, attribute).value)
            yield family
        for name, text, attribute in _COUNTERS_BY_REASON:
            family = CounterMetricFamily(name, text, labels=["cluster", "kind", "reason"])
            for (cluster, kind), m in kinds:
                for reason, tally in getattr(m, attribute).items():
                    family.add_metric([cluster, kind, reason], tally.value)
            yield family
        objects = GaugeMetricFamily(
            "kubedelta_producer_objects",
            "Live objects the topic holds, by kind",
            labels=["cluster", "kind"],
        )
        for (cluster, kind), m in kinds:
            objects.add_metric([cluster, kind], m.objects.value)
        yield objects


#: Counter families of KindMetrics: (name, help, third label, ((label value, attribute))).
_COUNTERS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "kubedelta_producer_events_observed",
        "Objects seen from the API server (listed or watched), by event type",
        "event",
        (("LISTED", "listed"), ("ADDED", "added"), ("MODIFIED", "modified"),
         ("DELETED", "deleted")),
    ),
    (
        "kubedelta_producer_records_sent",
        "Records handed to the Kafka sink (never dropped afterwards), by op",
        "op",
        (("upsert", "sent_upsert"), ("delete", "sent_delete")),
    ),
    (
        "kubedelta_producer_events_suppressed",
        "Observed changes not sent: unchanged content, filtered namespace, unknown delete",
        "reason",
        (("unchanged", "unchanged"), ("filtered", "filtered"),
         ("unknown_delete", "unknown_delete")),
    ),
)  # fmt: skip
#: Counter families kept as reason -> Tally mappings: (name, help, attribute).
_COUNTERS_BY_REASON = (
    ("kubedelta_producer_relists", "LISTs of a kind: initial, after 410 Gone, ...", "relists"),
    (
        "kubedelta_producer_watch_restarts",
        "Watches reopened, by reason (timeout, idle, error, throttled, gone)",
        "restarts",
    ),
)
